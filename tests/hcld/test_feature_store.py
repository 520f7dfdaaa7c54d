"""Feature store: content-addressed reuse, resume after interruption, never reading a partial entry."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil

import numpy as np
import polars as pl
import pytest
import soundfile as sf

from hcld.errors import DataError
from hcld.features import extract_features
from hcld.features.fbank import FbankExtractor
from hcld.features.store import MARKER_FILE, FeatureSet

SR = 16_000
EMOS = ["ang", "hap", "neu", "sad"]


def write_manifest(root, n=7, seed=0):
    """Tiny wavs of varied length (some longer than 7.5 s) and a manifest in the data contract."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        seconds = [1.0, 2.5, 8.0, 4.0, 0.5, 7.5, 3.3][i % 7]
        t = np.arange(int(seconds * SR)) / SR
        wave = (0.2 * np.sin(2 * np.pi * (100 + 30 * i) * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
        session = f"Ses0{1 + i % 5}"
        utt = f"{session}F_impro0{i}_{'FM'[i % 2]}00{i}"
        path = root / "wav" / f"{utt}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, wave, SR, subtype="PCM_16")
        rows.append({"utt_id": utt, "path": str(path), "emotion": EMOS[i % 4], "speaker": session + "FM"[i % 2],
                     "session": session, "gender": "FM"[i % 2], "duration_s": seconds, "sample_rate": SR,
                     "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
    manifest = root / "manifest.parquet"
    pl.DataFrame(rows).write_parquet(manifest)
    return manifest


@pytest.fixture
def manifest(tmp_path):
    return write_manifest(tmp_path / "corpus")


def count_compute(monkeypatch, fail_on_call=None):
    """Count FbankExtractor batches; optionally raise on the given call to simulate a crash."""
    calls = {"n": 0}
    original = FbankExtractor._compute

    def wrapped(self, waves, lengths):
        calls["n"] += 1
        if calls["n"] == fail_on_call:
            raise KeyboardInterrupt("simulated interruption")
        return original(self, waves, lengths)

    monkeypatch.setattr(FbankExtractor, "_compute", wrapped)
    return calls


def test_extracts_one_contiguous_fp16_array_with_index_and_meta(manifest, tmp_path):
    fs = extract_features(manifest, "fbank", tmp_path / "store", progress=False)
    assert fs.features.shape == (7, 374, 80) and fs.features.dtype == np.float16
    assert fs.path.parent == tmp_path / "store" and (fs.path / MARKER_FILE).is_file()
    assert fs.index.columns == ["utt_id", "emotion", "speaker", "session", "n_frames"]
    assert fs.index["utt_id"].to_list() == pl.read_parquet(manifest)["utt_id"].to_list()
    # 1 s -> 49 real frames; 8 s is trimmed to 7.5 s -> all 374
    assert fs.index["n_frames"].to_list()[:3] == [49, 124, 374]
    assert np.all(np.asarray(fs.features[0, 49:]) == 0) and np.any(np.asarray(fs.features[0, :49]) != 0)
    assert fs.meta["extractor"] == "fbank" and fs.meta["shape"] == [7, 374, 80]
    assert fs.meta["config"]["num_mel_bins"] == 80 and fs.meta["config"]["norm"] == "scalar"
    assert not list((tmp_path / "store").glob("*.partial"))


def test_second_call_reuses_without_recomputing(manifest, tmp_path, monkeypatch):
    first = extract_features(manifest, "fbank", tmp_path / "store", progress=False)
    calls = count_compute(monkeypatch)
    second = extract_features(manifest, "fbank", tmp_path / "store", progress=False)
    assert calls["n"] == 0
    assert second.key == first.key and second.path == first.path


def test_key_changes_with_config_and_manifest(manifest, tmp_path):
    store = tmp_path / "store"
    base = extract_features(manifest, "fbank", store, progress=False)
    fewer_bins = extract_features(manifest, "fbank", store, progress=False, num_mel_bins=40)
    assert fewer_bins.key != base.key and fewer_bins.features.shape == (7, 374, 40)
    df = pl.read_parquet(manifest)
    relabelled = manifest.with_name("relabelled.parquet")
    df.with_columns(pl.when(pl.col("utt_id") == df["utt_id"][0]).then(pl.lit("sad")).otherwise(pl.col("emotion"))
                    .alias("emotion")).write_parquet(relabelled)
    assert extract_features(relabelled, "fbank", store, progress=False).key != base.key
    reordered = manifest.with_name("reordered.parquet")
    df.reverse().write_parquet(reordered)
    assert extract_features(reordered, "fbank", store, progress=False).key != base.key
    # the manifest's location is not part of the key
    moved = tmp_path / "elsewhere.parquet"
    shutil.copy(manifest, moved)
    assert extract_features(moved, "fbank", store, progress=False).key == base.key


def test_interrupted_extraction_resumes_to_the_same_array(manifest, tmp_path, monkeypatch):
    reference = np.array(extract_features(manifest, "fbank", tmp_path / "ref", progress=False, batch_size=2).features)
    store = tmp_path / "store"
    calls = count_compute(monkeypatch, fail_on_call=3)  # batches 1, 2 written; crash in the 3rd
    with pytest.raises(KeyboardInterrupt):
        extract_features(manifest, "fbank", store, progress=False, batch_size=2)
    (partial,) = store.glob("*.partial")
    assert json.loads((partial / "progress.json").read_text())["done"] == 4
    assert not [p for p in store.iterdir() if p.is_dir() and not p.name.endswith(".partial")]
    with pytest.raises(DataError, match="incomplete"):
        FeatureSet(partial)

    calls["n"] = 0
    resumed = extract_features(manifest, "fbank", store, progress=False, batch_size=2)
    assert calls["n"] == 2  # rows 4-5 and 6 only
    np.testing.assert_array_equal(np.asarray(resumed.features), reference)
    assert not partial.exists()


def test_inconsistent_partial_restarts_cleanly(manifest, tmp_path, monkeypatch):
    reference = np.array(extract_features(manifest, "fbank", tmp_path / "ref", progress=False).features)
    store = tmp_path / "store"
    count_compute(monkeypatch, fail_on_call=2)
    with pytest.raises(KeyboardInterrupt):
        extract_features(manifest, "fbank", store, progress=False, batch_size=3)
    (partial,) = store.glob("*.partial")
    record = json.loads((partial / "progress.json").read_text())
    (partial / "progress.json").write_text(json.dumps({**record, "shape": [99, 374, 80]}))
    calls = count_compute(monkeypatch)
    fs = extract_features(manifest, "fbank", store, progress=False, batch_size=3)
    assert calls["n"] == 3  # all rows again
    np.testing.assert_array_equal(np.asarray(fs.features), reference)


def test_entry_without_marker_is_never_read_and_gets_reextracted(manifest, tmp_path, monkeypatch):
    fs = extract_features(manifest, "fbank", tmp_path / "store", progress=False)
    reference = np.array(fs.features)
    (fs.path / MARKER_FILE).unlink()
    (fs.path / "features.f16").write_bytes(b"\0" * 10)  # as if a copy stopped half-way
    with pytest.raises(DataError, match="incomplete"):
        FeatureSet(fs.path)
    calls = count_compute(monkeypatch)
    again = extract_features(manifest, "fbank", tmp_path / "store", progress=False)
    assert calls["n"] > 0 and again.path == fs.path
    np.testing.assert_array_equal(np.asarray(again.features), reference)


def test_features_are_read_only_and_pickle_as_a_path(manifest, tmp_path):
    fs = extract_features(manifest, "fbank", tmp_path / "store", progress=False)
    assert isinstance(fs.features, np.memmap) and not fs.features.flags.writeable
    with pytest.raises(ValueError):
        fs.features[0, 0, 0] = 1
    blob = pickle.dumps(fs)
    assert len(blob) < 1000  # the array does not travel
    clone = pickle.loads(blob)
    assert clone.key == fs.key
    np.testing.assert_array_equal(np.asarray(clone.features), np.asarray(fs.features))


def test_bad_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="manifest not found"):
        extract_features(tmp_path / "missing.parquet", "fbank", tmp_path / "store", progress=False)


def test_features_command_extracts_then_reuses(manifest, tmp_path):
    from click.testing import CliRunner

    from grid.cli.features import features

    args = ["--manifest", str(manifest), "--store", str(tmp_path / "store"), "--no-progress"]
    first = CliRunner().invoke(features, args)
    assert first.exit_code == 0, first.output
    assert "shape: [7, 374, 80]" in first.output and "extracted in" in first.output
    second = CliRunner().invoke(features, args)
    assert second.exit_code == 0 and "reused" in second.output
    key = next(line.split()[1] for line in first.output.splitlines() if line.startswith("key:"))
    assert f"key:   {key}" in second.output and (tmp_path / "store" / key / MARKER_FILE).is_file()


def test_features_command_reports_a_missing_checkpoint_without_traceback(manifest, tmp_path):
    from click.testing import CliRunner

    from grid.cli.features import features

    result = CliRunner().invoke(features, ["--manifest", str(manifest), "--extractor", "hubert",
                                           "--store", str(tmp_path / "store")])
    assert result.exit_code == 2 and "error: " in result.output and "hubert_fairseq_base_ls960.pth" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "store").exists()


def test_finished_partial_is_published_without_recomputing(manifest, tmp_path, monkeypatch):
    store = tmp_path / "store"
    fs = extract_features(manifest, "fbank", store, progress=False)
    fs.path.rename(store / f"{fs.key}.partial")  # as if the process died between marker and rename
    calls = count_compute(monkeypatch)
    again = extract_features(manifest, "fbank", store, progress=False)
    assert calls["n"] == 0 and again.path == fs.path and not (store / f"{fs.key}.partial").exists()
