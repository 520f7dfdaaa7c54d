"""run_trial on a small hand-made dataset: learning, determinism, callbacks, artifacts, failures."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from hcld.config import TrialConfig, TrialData, TrialResult
from hcld.errors import TrialFailed
from hcld.losses.variants import TERM_NAMES
from hcld.train import run_trial

N_SPK, T, D = 4, 16, 12


def make_data(n=96, seed=0, test_speakers=None, noise=1.0):
    """Emotion shifts feature dims 0..3, speaker dims 4..7; both plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    emotion = np.tile(np.arange(4), n // 4)
    speaker = np.repeat(np.arange(N_SPK), n // N_SPK)
    rng.shuffle(speaker)
    x = rng.normal(scale=noise, size=(n, T, D)).astype(np.float32)
    x[np.arange(n), :, emotion] += 2.0
    x[np.arange(n), :, 4 + speaker] += 2.0
    if test_speakers is None:
        test = np.arange(n) % 5 == 0
    else:
        test = np.isin(speaker, test_speakers)
    return TrialData(
        features=x.astype(np.float16), emotion=emotion.astype(np.int64), speaker=speaker.astype(np.int64),
        train_idx=np.flatnonzero(~test), test_idx=np.flatnonzero(test),
        speaker_names=[f"spk{i}" for i in range(N_SPK)], utt_ids=[f"u{i}" for i in range(n)], description="toy data",
    )


def tiny(**changes):
    base = dict(model_size="tiny", embed_dim=16, epochs=3, batch_size=16, warmup_epochs=1, threads=1)
    return TrialConfig(**{**base, **changes})


def test_hcld_learns_emotion_on_separable_data():
    result = run_trial(tiny(epochs=12, lr=3e-3), make_data())
    assert result.metrics["emo_ua"] > 0.6  # chance is 0.25
    assert result.metrics["spk_ua"] > 0.4
    assert result.anchor_source == "fallback:orthogonal" and result.loss_impl == "torch"
    losses = [row["loss_total"] for row in result.curves]
    assert losses[-1] < losses[0]


def test_trials_are_deterministic_on_cpu_and_depend_on_the_seed():
    data = make_data()
    a, b = run_trial(tiny(), data), run_trial(tiny(), data)
    c = run_trial(tiny(seed=1), data)

    def strip(r):  # JSON text compares NaN equal to NaN; wall times differ by nature
        return json.dumps([{k: v for k, v in row.items() if k != "seconds"} for row in r.curves] + [r.metrics])

    assert strip(a) == strip(b)
    assert strip(a) != strip(c)


def test_on_epoch_gets_every_epoch_with_the_documented_keys():
    seen = []
    result = run_trial(tiny(epochs=2), make_data(), on_epoch=seen.append)
    assert [row["epoch"] for row in seen] == [1, 2]
    keys = {"epoch", "loss_total", *TERM_NAMES, "emo_wa", "emo_ua", "spk_wa", "spk_ua", "seconds"}
    assert keys <= set(seen[0])
    assert result.reported_epoch == 2 and len(result.curves) == 2 and result.seconds > 0
    assert all(0 <= row["emo_ua"] <= 1 and row["seconds"] > 0 for row in seen)
    assert math.isnan(seen[0]["loss_orth"])  # not a term of hcld
    assert set(result.metrics) == {"emo_wa", "emo_ua", "spk_wa", "spk_ua", "probe_spk_from_xe", "probe_emo_from_xs"}


def test_artifacts_hold_the_result_and_test_embeddings(tmp_path):
    data = make_data()
    result = run_trial(tiny(epochs=1), data, artifacts_dir=tmp_path / "trial")
    stored = json.loads((tmp_path / "trial" / "result.json").read_text())
    assert set(stored) == {f.name for f in fields(TrialResult)}
    assert stored["confusion_emotion"] == result.confusion_emotion
    assert np.sum(stored["confusion_emotion"]) == len(data.test_idx)
    assert len(stored["confusion_speaker"]) == N_SPK
    emb = np.load(tmp_path / "trial" / "embeddings.npz")
    assert emb["xe"].shape == (len(data.test_idx), 16) and emb["xe"].dtype == np.float16
    assert emb["xs"].shape == (len(data.test_idx), 16)
    np.testing.assert_array_equal(emb["emotion"], data.emotion[data.test_idx])
    np.testing.assert_array_equal(emb["speaker"], data.speaker[data.test_idx])


def test_emo_only_is_a_single_task_model(tmp_path):
    result = run_trial(tiny(variant="emo_only", epochs=1), make_data(), artifacts_dir=tmp_path)
    m = result.metrics
    assert math.isnan(m["spk_wa"]) and math.isnan(m["spk_ua"]) and math.isnan(m["probe_emo_from_xs"])
    assert not math.isnan(m["probe_spk_from_xe"])
    assert result.anchor_source == "unused" and result.confusion_speaker == []
    assert math.isnan(result.curves[0]["loss_spk_ce"]) and not math.isnan(result.curves[0]["loss_emo_ce"])
    assert np.load(tmp_path / "embeddings.npz")["xs"].shape[1] == 0


@pytest.mark.parametrize("variant", ["orth", "wo_supcon", "wo_lcl", "icld_only"])
def test_every_variant_runs_with_mixed_backbones(variant):
    config = tiny(variant=variant, epochs=1, backbone="cnn", trunk="separate", speaker_backbone="transformer")
    result = run_trial(config, make_data(n=48))
    assert all(math.isfinite(result.metrics[k]) for k in ("emo_ua", "spk_ua", "probe_spk_from_xe", "probe_emo_from_xs"))


def test_unseen_test_speakers_give_nan_speaker_scores_and_a_held_out_probe():
    data = make_data(test_speakers=[3])
    result = run_trial(tiny(epochs=1), data)
    assert math.isnan(result.metrics["spk_wa"]) and math.isnan(result.metrics["spk_ua"])
    assert result.confusion_speaker == []
    assert 0 <= result.metrics["probe_spk_from_xe"] <= 1  # probe scored on held-out training rows


def test_non_finite_loss_stops_the_trial_naming_epoch_batch_and_term():
    data = make_data(n=48)
    data.features = data.features.copy()
    data.features[:, :, 0] = np.inf  # LayerNorm of an inf frame is NaN everywhere
    with pytest.raises(TrialFailed, match=r"toy data.*loss_emo_ce=nan.*epoch 1, batch 1"):
        run_trial(tiny(), data)


def test_an_empty_fold_fails_clearly():
    data = make_data(n=48)
    data.test_idx = data.test_idx[:0]
    with pytest.raises(TrialFailed, match="empty fold"):
        run_trial(tiny(), data)




def test_triton_loss_impl_matches_torch_through_the_interpreter():
    # TRITON_INTERPRET must be set before triton is imported: run in a fresh interpreter
    code = (
        "import os, sys, json; os.environ['TRITON_INTERPRET'] = '1'\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n"
        "from test_train import make_data, tiny\n"
        "from hcld.train import run_trial\n"
        "data = make_data(n=32)\n"
        "a = run_trial(tiny(epochs=1, loss_impl='torch'), data)\n"
        "b = run_trial(tiny(epochs=1, loss_impl='triton'), data)\n"
        "print(json.dumps([a.loss_impl, b.loss_impl, a.curves[0], b.curves[0]]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    impl_a, impl_b, a, b = json.loads(done.stdout.strip().splitlines()[-1])
    assert (impl_a, impl_b) == ("torch", "triton-interpreter")
    for term in ("loss_icld", "loss_supcon", "loss_lcl", "loss_total"):
        assert b[term] == pytest.approx(a[term], rel=1e-4, abs=1e-5)


def test_thread_setting_does_not_leak_out_of_the_trial():
    import torch

    before = torch.get_num_threads()
    run_trial(tiny(epochs=1, threads=1), make_data(n=32))
    assert torch.get_num_threads() == before
