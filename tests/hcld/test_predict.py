"""Any corpus and upstream end to end: `hcld-grid run smoke` on a manifest of six emotions (fbank,
then a tiny random 4-layer WavLM with --layers 2,4 mixed by LayerMix), models kept with
--save-models, and `hcld-grid predict` giving back exactly what the trial's own evaluation gave;
`hcld-grid features --corpus` making ahead of time the features such a run then reuses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner
from test_ssl import SMALL, save_model

from grid.cli.features import features
from grid.cli.predict import predict
from grid.cli.run import run
from hcld.saved_model import load_model

SIX = ("ang", "dis", "fea", "hap", "neu", "sad")
SR = 16_000


def write_six_corpus(folder: Path) -> Path:
    """60 one-second wavs (6 speakers x 10, every emotion 10 times: a pitch per emotion, a level per
    speaker) and the manifest CSV listing them, paths relative to it."""
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    lines = ["path,emotion,speaker"]
    for i in range(60):
        speaker, emotion = f"s{i % 6}", SIX[(i // 6) % 6]
        wave = (0.1 + 0.05 * (i % 6)) * np.sin(2 * np.pi * (110 + 60 * SIX.index(emotion)) * t)
        wave += 0.02 * rng.standard_normal(SR)
        path = folder / "wavs" / speaker / f"u{i:02d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), wave.astype(np.float32), SR, subtype="PCM_16")
        lines.append(f"wavs/{speaker}/u{i:02d}.wav,{emotion},{speaker}")
    manifest = folder / "list.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_six_corpus(tmp_path_factory.mktemp("six"))


def run_smoke(tmp_path: Path, corpus: Path, *extra) -> tuple[dict, Path]:
    """The smoke grid (one trial) on the manifest, models kept; its row and its artifacts folder."""
    results = tmp_path / "results"
    args = ["smoke", "--executor", "local", "--epochs", "2", "--backbones", "cnn", "--variants", "hcld",
            "--corpus", "manifest", "--root", corpus, "--data-dir", tmp_path / "data", "--results-dir", results,
            "--save-models", *extra]
    done = CliRunner().invoke(run, [str(a) for a in args], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    [row] = pq.read_table(results / "smoke" / "trials.parquet").to_pylist()
    assert row["status"] == "done", row
    return row, results / "smoke" / row["artifacts"]


def wav_of(corpus: Path, utt_id: str) -> Path:
    """The manifest reader's utterance ids are the relative path, '/' -> '_', without .wav."""
    speaker, name = utt_id.removeprefix("wavs_").split("_")
    return corpus.parent / "wavs" / speaker / f"{name}.wav"


def predicted(*args) -> tuple[int, list[dict], str]:
    done = CliRunner().invoke(predict, [str(a) for a in args], catch_exceptions=False)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return done.exit_code, lines, done.output


def check_predict_matches_the_trial(trial: Path, corpus: Path, *extra) -> None:
    kept = np.load(trial / "predictions.npz")
    ids, probs = list(kept["utt_id"][:4]), kept["prob"][:4]
    code, lines, out = predicted("--model", trial, "--json", *extra, *[wav_of(corpus, u) for u in ids])
    assert code == 0, out
    assert len(lines) == 4
    for line, prob in zip(lines, probs):
        assert list(line["probabilities"]) == list(SIX)
        got = np.array(list(line["probabilities"].values()))
        assert got.sum() == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_allclose(got, prob, atol=1e-6)  # the trial's own test evaluation of this utterance
        assert line["emotion"] == SIX[int(np.argmax(prob))]


def test_smoke_on_a_manifest_of_six_emotions_then_predict_gives_the_trials_numbers(tmp_path, corpus):
    row, trial = run_smoke(tmp_path, corpus)
    assert row["corpus"] == "manifest" and row["emotions"] == ",".join(SIX) and row["features"] == "fbank"
    assert 0.0 <= row["emo_f1"] <= 1.0 and 0.0 <= row["emo_ua"] <= 1.0
    assert np.load(trial / "predictions.npz")["prob"].shape[1] == 6
    saved = load_model(trial)
    assert saved.emotion_names == list(SIX) and saved.extractor["name"] == "fbank"
    assert saved.model.layer_mix is None  # one feature stream: no mixing
    check_predict_matches_the_trial(trial, corpus)

    # --embeddings: X_e and X_s of every file, in order; a bad file is named and the rest still predicted
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    one = wav_of(corpus, str(np.load(trial / "predictions.npz")["utt_id"][0]))
    code, lines, out = predicted("--model", trial / "model", "--json", "--embeddings", tmp_path / "emb.npz",
                                 one, empty)
    assert code == 2
    assert f"{empty}: audio file is empty (0 bytes)" in out and "1 of 2 file(s) not usable" in out
    assert [line["file"] for line in lines] == [str(one)]
    emb = np.load(tmp_path / "emb.npz")
    assert emb["xe"].shape == (1, saved.model.emo_embed.out_features) and emb["xs"].shape == emb["xe"].shape
    assert emb["files"].tolist() == [str(one)]


def test_no_model_folder_says_how_to_keep_one(tmp_path, corpus):
    code, _, out = predicted("--model", tmp_path, wav_of(corpus, "wavs_s0_u00"))
    assert code == 2 and "no saved model here" in out and "--save-models" in out


def test_ssl_layers_grid_on_a_tiny_wavlm_mixes_layers_and_predicts(tmp_path, corpus):
    upstream = tmp_path / "wavlm"
    save_model(upstream, "wavlm", config={**SMALL, "num_hidden_layers": 4})
    row, trial = run_smoke(tmp_path, corpus, "--features", "ssl", "--upstream", upstream, "--layers", "2,4")
    assert row["features"] == "ssl" and row["emotions"] == ",".join(SIX)

    saved = load_model(trial)
    assert saved.extractor["layers"] == [2, 4] and saved.model.layer_mix is not None
    weights = saved.model.layer_mix.weights()
    assert weights.shape == (2,) and float(weights.detach().sum()) == pytest.approx(1.0)
    assert not torch.equal(saved.model.layer_mix.logits, torch.zeros(2))  # trained: it moved off the mean
    check_predict_matches_the_trial(trial, corpus)

    # the upstream moved: predict says what to pass, and takes it
    moved = tmp_path / "moved-wavlm"
    shutil.move(upstream, moved)
    code, _, out = predicted("--model", trial, wav_of(corpus, "wavs_s0_u00"))
    assert code == 2 and f"upstream {upstream}, which is not there: pass --upstream PATH" in out
    check_predict_matches_the_trial(trial, corpus, "--upstream", moved)
    # another upstream is refused: its features would not be the model's
    other = tmp_path / "other"
    save_model(other, "wavlm", seed=1, config={**SMALL, "num_hidden_layers": 4})
    code, _, out = predicted("--model", trial, "--upstream", other, wav_of(corpus, "wavs_s0_u00"))
    assert code == 2 and "differs from the trial's" in out


def test_features_of_a_corpus_made_ahead_are_the_ones_run_reuses(tmp_path, corpus):
    args = ["--corpus", "manifest", "--root", str(corpus), "--data-dir", str(tmp_path / "data"), "--no-progress"]
    first = CliRunner().invoke(features, args, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert "Manifest: 60 utterances" in first.output and "extracted in" in first.output
    key = next(line.split()[1] for line in first.output.splitlines() if line.startswith("key:"))
    again = CliRunner().invoke(features, args, catch_exceptions=False)
    assert f"key:   {key}" in again.output and "reused" in again.output
    store = tmp_path / "data" / "features"
    entries = sorted(p.name for p in store.iterdir() if p.is_dir())
    assert len(entries) == 1 and key in entries[0]
    run_smoke(tmp_path, corpus)  # the same --data-dir: no second entry, the run took the one made ahead
    assert sorted(p.name for p in store.iterdir() if p.is_dir()) == entries

    misuse = CliRunner().invoke(features, [*args, "--manifest", str(corpus)])
    assert misuse.exit_code == 2 and "leave out --manifest" in misuse.output
