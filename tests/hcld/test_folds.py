"""Folds: disjoint test sets that cover the corpus; stratified random k-fold, loso = sessions (or
speakers where a corpus has none), speaker-independent k-fold."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from grid.cli.data import data as data_cli
from hcld.data.folds import FOLD_SCHEMES, N_FOLDS, folds_filename, make_folds, read_folds, write_folds
from hcld.data.manifest import read_manifest
from hcld.errors import DataError
from hcld.labels import EMOTIONS, SESSIONS


@pytest.fixture(scope="module")
def manifest(synth_manifest):
    return read_manifest(synth_manifest)


@pytest.mark.parametrize("scheme", FOLD_SCHEMES)
def test_test_sets_are_disjoint_and_cover_the_corpus(manifest, scheme):
    folds = make_folds(manifest, scheme)
    assert folds.columns == ["utt_id", "fold"]
    assert sorted(folds["utt_id"].to_list()) == sorted(manifest["utt_id"].to_list())  # each utterance once
    k = N_FOLDS[scheme]
    assert sorted(folds["fold"].unique().to_list()) == list(range(k))
    tests = [set(folds.filter(pl.col("fold") == f)["utt_id"]) for f in range(k)]
    for a in range(k):
        for b in range(a + 1, k):
            assert not tests[a] & tests[b]
    assert set().union(*tests) == set(manifest["utt_id"])


def test_random5_is_an_80_20_split_stratified_by_emotion(manifest):
    joined = make_folds(manifest, "random5", seed=0).join(manifest.select("utt_id", "emotion"), on="utt_id")
    sizes = joined.group_by("fold").len()["len"].to_numpy()
    assert sizes.max() - sizes.min() <= 1 and sizes.sum() == manifest.height
    for emotion in EMOTIONS:
        per_fold = np.bincount(joined.filter(pl.col("emotion") == emotion)["fold"].to_numpy(), minlength=5)
        assert per_fold.max() - per_fold.min() <= 1, (emotion, per_fold)


def test_random5_is_seeded(manifest):
    a = make_folds(manifest, "random5", seed=0)
    assert a.equals(make_folds(manifest, "random5", seed=0))
    assert a.equals(make_folds(manifest.reverse(), "random5", seed=0))  # row order does not matter
    b = make_folds(manifest, "random5", seed=1)
    assert (a["fold"] != b["fold"]).sum() > manifest.height // 2


def test_loso_fold_is_the_session_and_keeps_speakers_out_of_training(manifest):
    joined = make_folds(manifest, "loso").join(manifest.select("utt_id", "session", "speaker"), on="utt_id")
    assert all(SESSIONS[fold] == session for fold, session in joined.select("fold", "session").iter_rows())
    for k in range(5):
        test = set(joined.filter(pl.col("fold") == k)["speaker"])
        train = set(joined.filter(pl.col("fold") != k)["speaker"])
        assert test == {SESSIONS[k] + "F", SESSIONS[k] + "M"} and not test & train


def test_loso_leaves_out_speakers_where_the_corpus_has_no_sessions(manifest):
    no_sessions = manifest.with_columns(pl.lit(None, dtype=pl.String).alias("session"))
    joined = make_folds(no_sessions, "loso").join(manifest.select("utt_id", "speaker"), on="utt_id")
    speakers = sorted(manifest["speaker"].unique())
    assert joined["fold"].n_unique() == len(speakers) == 10
    assert all(speakers[fold] == speaker for fold, speaker in joined.select("fold", "speaker").iter_rows())
    # a corpus missing a session has a fold fewer: the count is the data's
    four = make_folds(manifest.filter(pl.col("session") != "Ses03"), "loso")
    assert four["fold"].n_unique() == 4


@pytest.mark.parametrize("scheme", ["speaker5", "speaker10"])
def test_speaker_folds_keep_every_speaker_on_one_side_and_balance_sizes(manifest, scheme):
    k = N_FOLDS[scheme]
    joined = make_folds(manifest, scheme, seed=0).join(manifest.select("utt_id", "speaker"), on="utt_id")
    assert (joined.group_by("speaker").agg(pl.col("fold").n_unique())["fold"] == 1).all()
    per_speaker = joined.group_by("speaker").len()["len"]
    sizes = joined.group_by("fold").len()["len"]
    assert sizes.len() == k and sizes.max() - sizes.min() <= per_speaker.max()
    other = make_folds(manifest, scheme, seed=1)
    assert make_folds(manifest.reverse(), scheme, seed=0).equals(make_folds(manifest, scheme, seed=0))
    if k < 10:  # with one speaker per fold, every seed gives the same sizes but another deal
        assert not other.equals(make_folds(manifest, scheme, seed=0))


def test_an_empty_fold_is_an_error(manifest):
    with pytest.raises(DataError, match="empty test set"):
        make_folds(manifest.head(4), "random5")
    with pytest.raises(DataError, match="one session only"):
        make_folds(manifest.filter(pl.col("session") == "Ses03"), "loso")
    with pytest.raises(DataError, match="2 speakers for 5 folds"):
        make_folds(manifest.filter(pl.col("session") == "Ses03"), "speaker5")
    with pytest.raises(DataError, match="unknown fold scheme"):
        make_folds(manifest, "random7")


def test_write_read_round_trip(manifest, tmp_path):
    folds = make_folds(manifest, "random5", seed=3)
    path = write_folds(folds, tmp_path / "sub" / folds_filename("random5", 3))
    assert path.name == "folds-random5-seed3.parquet" and folds_filename("loso", 3) == "folds-loso.parquet"
    assert read_folds(path).equals(folds)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind
    with pytest.raises(DataError, match="not found"):
        read_folds(tmp_path / "missing.parquet")
    pl.DataFrame({"utt_id": ["a", "a"], "fold": [0, 1]}).write_parquet(tmp_path / "dup.parquet")
    with pytest.raises(DataError, match="twice"):
        read_folds(tmp_path / "dup.parquet")


def test_folds_cli_writes_the_scheme(synth_manifest, tmp_path):
    data_dir = tmp_path / "d"
    data_dir.mkdir()
    (data_dir / "manifest.parquet").write_bytes(synth_manifest.read_bytes())
    res = CliRunner().invoke(data_cli, ["folds", str(data_dir), "--scheme", "loso"])
    assert res.exit_code == 0, res.output
    assert read_folds(data_dir / "folds-loso.parquet").equals(make_folds(read_manifest(synth_manifest), "loso"))
    assert res.output.count("fold ") == 5
    res = CliRunner().invoke(data_cli, ["folds", str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "error: " in res.output and "manifest not found" in res.output
