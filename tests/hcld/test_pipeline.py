"""prepare_experiment end to end on a small built-in synthetic corpus, and what trials get from it."""

from __future__ import annotations

import multiprocessing
import pickle

import numpy as np
import polars as pl
import pytest

from hcld.data import folds, synth
from hcld.data.corpora import registry
from hcld.errors import DataError
from hcld.features.fbank import FbankExtractor
from hcld.labels import EMOTIONS
from hcld.pipeline import Experiment, prepare_experiment

N = 50


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def built(data_dir):
    messages: list[str] = []
    exp = prepare_experiment(data_dir=data_dir, synth_utterances=N, progress=False, log=messages.append)
    return exp, messages


@pytest.fixture
def experiment(built):
    return built[0]


def test_builds_corpus_manifest_folds_and_features(built, data_dir):
    experiment, messages = built
    assert experiment.corpus == f"synthetic(seed=0,n={N})" and experiment.features_name == "fbank"
    assert experiment.fold_scheme == "random5" and experiment.n_folds == 5
    assert any("built-in synthetic corpus" in m for m in messages)
    assert (data_dir / "corpora" / f"synthetic-s0-n{N}" / "Session1").is_dir()
    assert (data_dir / "prepared" / f"synthetic-s0-n{N}" / "folds-random5.parquet").is_file()
    assert experiment.feature_path.startswith(str(data_dir / "features" / experiment.feature_key))
    assert experiment.description.startswith(experiment.corpus)


def test_trial_data_folds_partition_the_corpus(experiment):
    seen_test = []
    for fold in range(experiment.n_folds):
        td = experiment.trial_data(fold)
        assert td.features.shape == (N, 374, 80) and td.features.dtype == np.float16
        assert not set(td.train_idx) & set(td.test_idx)
        assert len(td.train_idx) + len(td.test_idx) == N
        assert f"fold {fold}" in td.description
        assert td.feature_key == experiment.feature_key  # a worker keeps resident features by it
        seen_test.extend(td.test_idx.tolist())
    assert sorted(seen_test) == list(range(N))


def test_folds_of_one_store_entry_share_one_resident_table(experiment):
    import torch

    from hcld import placement

    placement.clear_resident()
    try:
        cpu = torch.device("cpu")
        tables = [placement.feature_source(td.features, cpu, "device", key=td.feature_key).table
                  for td in (experiment.trial_data(0), experiment.trial_data(1))]
        assert tables[0] is tables[1]
        np.testing.assert_array_equal(tables[0].numpy(), experiment.trial_data(0).features)
    finally:
        placement.clear_resident()


def test_labels_follow_the_manifest_in_feature_row_order(experiment):
    td = experiment.trial_data(0)
    manifest = pl.read_parquet(experiment.manifest_path)
    by_utt = {r["utt_id"]: r for r in manifest.iter_rows(named=True)}
    assert td.speaker_names == sorted(manifest["speaker"].unique().to_list()) and len(td.speaker_names) == 10
    for row, utt in enumerate(td.utt_ids):
        assert EMOTIONS[td.emotion[row]] == by_utt[utt]["emotion"]
        assert td.speaker_names[td.speaker[row]] == by_utt[utt]["speaker"]
    table = pl.read_parquet(experiment.folds_path)
    test_utts = set(table.filter(pl.col("fold") == 0)["utt_id"].to_list())
    assert {td.utt_ids[i] for i in td.test_idx} == test_utts


def test_second_call_reuses_every_stage(experiment, data_dir, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("recomputed a stage that was already on disk")

    monkeypatch.setattr(synth, "write_synthetic_corpus", fail)
    monkeypatch.setattr(registry, "prepare_corpus", fail)
    monkeypatch.setattr(folds, "make_folds", fail)
    monkeypatch.setattr(FbankExtractor, "_compute", fail)
    again = prepare_experiment(data_dir=data_dir, synth_utterances=N, progress=False, log=lambda m: None)
    assert again == experiment and again.data_key == experiment.data_key


def _sum_fold(exp: Experiment, fold: int) -> float:
    td = exp.trial_data(fold)
    return float(np.asarray(td.features[td.test_idx], dtype=np.float64).sum())


def test_experiment_pickles_small_and_works_in_another_process(experiment):
    blob = pickle.dumps(experiment)
    assert len(blob) < 2000
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter, like a Ray worker
    with ctx.Pool(1) as pool:
        remote = pool.apply(_sum_fold, (experiment, 1))
    assert remote == pytest.approx(_sum_fold(pickle.loads(blob), 1))


def test_loso_folds_hold_out_whole_sessions(experiment, data_dir):
    loso = prepare_experiment(data_dir=data_dir, synth_utterances=N, fold_scheme="loso", progress=False,
                              log=lambda m: None)
    assert loso.feature_key == experiment.feature_key and loso.data_key != experiment.data_key
    assert loso.n_folds == 5
    td = loso.trial_data(0)
    test_spk = {td.speaker_names[s] for s in td.speaker[td.test_idx]}
    train_spk = {td.speaker_names[s] for s in td.speaker[td.train_idx]}
    assert test_spk == {"Ses01F", "Ses01M"} and not test_spk & train_spk


def test_bad_folds_are_errors_naming_the_fold(experiment, data_dir):
    with pytest.raises(DataError, match="fold 5 does not exist"):
        experiment.trial_data(5)
    # a folds file on disk in which fold 2 lost all its utterances (hand-edited, or another tool)
    folds_path = data_dir / "prepared" / f"synthetic-s0-n{N}" / "folds-random5-seed7.parquet"
    table = pl.read_parquet(experiment.folds_path)
    table.with_columns(pl.when(pl.col("fold") == 2).then(1).otherwise(pl.col("fold")).alias("fold")) \
        .write_parquet(folds_path)
    bad = prepare_experiment(data_dir=data_dir, synth_utterances=N, fold_seed=7, progress=False, log=lambda m: None)
    with pytest.raises(DataError, match="fold 2 .* empty test set"):
        bad.trial_data(2)


def test_hubert_without_checkpoint_stops_before_extracting(data_dir):
    from hcld.errors import MissingAssetError

    with pytest.raises(MissingAssetError, match="hubert_fairseq_base_ls960.pth"):
        prepare_experiment(data_dir=data_dir, synth_utterances=N, features="hubert", progress=False,
                           log=lambda m: None)


def test_hubert_features_from_a_small_local_checkpoint(data_dir, tmp_path):
    import torch
    from torchaudio.models import wav2vec2_model

    from hcld.features.hubert import base_params

    small = {"extractor_conv_layer_config": [(8, 10, 5)] + [(8, 3, 2)] * 4 + [(8, 2, 2)] * 2,
             "encoder_embed_dim": 16, "encoder_num_layers": 1, "encoder_num_heads": 2,
             "encoder_ff_interm_features": 32, "encoder_pos_conv_kernel": 8, "encoder_pos_conv_groups": 4}
    torch.manual_seed(0)
    ckpt = tmp_path / "tiny-hubert.pth"
    torch.save({"config": small, "state_dict": wav2vec2_model(**{**base_params(), **small}).state_dict()}, ckpt)
    exp = prepare_experiment(data_dir=data_dir, synth_utterances=N, features="hubert", hubert_checkpoint=ckpt,
                             progress=False, log=lambda m: None)
    td = exp.trial_data(0)
    assert exp.features_name == "hubert" and exp.feature_key.startswith("hubert-")
    assert td.features.shape == (N, 374, 16) and np.isfinite(np.asarray(td.features)).all()
