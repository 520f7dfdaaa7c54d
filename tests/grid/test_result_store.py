"""Result store: content ids, atomic appends, dedupe, retry budget, the run lock."""

import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from grid import trials as store_mod
from grid.result_store import ResultStore, RunLock, read_snapshot
from grid.trials import PREDICTION_SCHEMA, SCHEMA, code_version, trial_id
from hcld.config import TrialConfig
from hcld.errors import HcldError


def row(tid, status="done", attempts=1, **extra):
    base = {"trial_id": tid, "grid": "g", "status": status, "attempts": attempts,
            "emo_ua": 0.5 if status == "done" else None, "error": None if status == "done" else "boom"}
    return {**base, **extra}


def test_trial_id_is_stable_and_sensitive_to_what_decides_the_outcome():
    c = TrialConfig()
    tid = trial_id(c, 0, "data1")
    assert tid == trial_id(TrialConfig(), 0, "data1") and len(tid) == 16
    others = {trial_id(c.replace(lr=1e-3), 0, "data1"), trial_id(c, 1, "data1"),
              trial_id(c, 0, "data2"), trial_id(c, 0, "data1", version="other")}
    assert tid not in others and len(others) == 4


def test_code_version_is_package_version_plus_source_hash(monkeypatch):
    v = code_version()
    assert v.startswith("0.1.0+") and v == code_version()
    monkeypatch.setattr(store_mod, "_code_version", None)
    assert code_version() == v  # recomputed from the same sources


def test_code_version_hashes_the_code_that_decides_numbers_and_nothing_else(tmp_path):
    import shutil

    for folder in ("hcld", "benchmarks", "grid", "tests"):
        shutil.copytree(store_mod.REPO_ROOT / folder, tmp_path / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    before = store_mod.source_hash(tmp_path)
    for tool in ("benchmarks/__init__.py", "grid/cli/__init__.py", "grid/result_store.py", "tests/conftest.py"):
        with open(tmp_path / tool, "a") as f:
            f.write("\n# an edit to a benchmark, the CLI, the store or a test\n")
    assert store_mod.source_hash(tmp_path) == before  # no trial id changes, no trial re-runs
    for science in ("hcld/losses/icld.py", "hcld/kernels/reference.py", "hcld/data/folds.py"):
        text = (tmp_path / science).read_text()
        (tmp_path / science).write_text(text + "\n# an edit\n")
        assert store_mod.source_hash(tmp_path) != before, science
        (tmp_path / science).write_text(text)
    assert store_mod.source_hash(tmp_path) == before


def test_append_writes_schema_and_keeps_every_attempt(tmp_path):
    s = ResultStore(tmp_path / "g", "g")
    assert s.rows() == []
    s.append([row("a", "failed", 1)])
    s.append([row("a", "done", 2, emo_wa=float("inf")), row("b")])
    table = pq.read_table(s.path)
    assert table.schema.names == SCHEMA.names
    rows = s.rows()
    assert [(r["trial_id"], r["status"], r["attempts"]) for r in rows] == \
        [("a", "failed", 1), ("a", "done", 2), ("b", "done", 1)]
    assert rows[0]["emo_ua"] is None and rows[0]["error"] == "boom"
    assert math.isnan(rows[1]["emo_wa"])  # non-finite metrics are stored as NaN
    assert not list(s.folder.glob(".*.tmp"))  # no temporary file left behind


def test_a_second_done_row_for_a_trial_is_dropped(tmp_path):
    s = ResultStore(tmp_path / "g", "g")
    s.append([row("a")])
    s.append([row("a"), row("a")])
    assert len(s.rows()) == 1


def test_plan_splits_done_pending_and_given_up(tmp_path):
    s = ResultStore(tmp_path / "g", "g")
    s.append([row("done1"), row("failed_once", "failed", 1),
              row("failed_twice", "failed", 1), row("failed_twice", "failed", 2)])
    plan = s.plan(["done1", "failed_once", "failed_twice", "new"], max_failures=1)
    assert plan.done == ["done1"]
    assert plan.pending == ["failed_once", "new"]
    assert plan.gave_up == ["failed_twice"]
    assert plan.attempts == {"done1": 1, "failed_once": 1, "failed_twice": 2, "new": 0}
    assert s.plan(["failed_twice"], max_failures=2).pending == ["failed_twice"]


def test_attempts_lost_with_a_node_are_recorded_but_not_held_against_the_trial(tmp_path):
    from grid.trials import LOST

    s = ResultStore(tmp_path, "g")
    s.append([row("a", "failed", 1, error=f"{LOST} node 1a2b3c4d5e6f: the actor died"),
              row("a", "failed", 2, error=f"{LOST} its worker on node 1a2b3c4d5e6f: the actor died"),
              row("b", "failed", 1), row("b", "failed", 2, error=f"{LOST} node 1a2b3c4d5e6f: the actor died")])
    p = s.plan(["a", "b"], max_failures=0)
    assert p.pending == ["a"] and p.gave_up == ["b"]  # a has no failure of its own; b has one
    assert (p.attempts, p.failures) == ({"a": 2, "b": 2}, {"a": 0, "b": 1})
    spec = p.resumed(store_mod.TrialSpec(trial_id="a", grid="g", config=TrialConfig(), fold=0, data_key="d",
                                         code_version="v", artifacts_dir="/x"))
    assert (spec.attempts_before, spec.failures_before) == (2, 0)  # numbering goes on; the budget is whole


def test_unreadable_store_is_an_error_not_overwritten(tmp_path):
    s = ResultStore(tmp_path / "g", "g")
    s.folder.mkdir(parents=True)
    s.path.write_bytes(b"not parquet")
    with pytest.raises(HcldError, match="trials.parquet"):
        s.append([row("a")])
    assert s.path.read_bytes() == b"not parquet"


def test_lock_refuses_a_second_run_and_names_the_holder(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(HcldError) as info:
            RunLock(tmp_path).acquire()
        assert f"pid {os.getpid()}" in str(info.value) and "in use" in str(info.value)
    with RunLock(tmp_path):  # released on exit
        pass


def test_lock_of_a_killed_process_is_released(tmp_path):
    code = ("import sys, time; from grid.result_store import RunLock; "
            f"RunLock({str(tmp_path)!r}).acquire(); print('locked', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(HcldError, match=f"pid {proc.pid}"):
            RunLock(tmp_path).acquire()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 5
    while True:
        try:
            RunLock(tmp_path).acquire().release()
            break
        except HcldError:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def _write_predictions(store, tid, true, pred):
    folder = store.artifacts_dir(tid)
    folder.mkdir(parents=True, exist_ok=True)
    prob = np.eye(4, dtype=np.float32)[pred]
    np.savez(folder / "predictions.npz", utt_id=np.array([f"u{i}" for i in range(len(true))]),
             true=np.array(true), pred=np.array(pred), prob=prob)


def test_a_predictions_table_of_one_column_per_iemocap_class_reads_as_a_probability_list(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    s = ResultStore(tmp_path / "g", "g")
    s.folder.mkdir(parents=True)
    old = {"trial_id": ["a", "a"], "utt_id": ["u0", "u1"], "emotion_true": pa.array([0, 3], pa.int8()),
           "emotion_pred": pa.array([1, 3], pa.int8()),
           "prob_ang": pa.array([0.1, 0.0], pa.float32()), "prob_hap": pa.array([0.6, 0.2], pa.float32()),
           "prob_neu": pa.array([0.2, 0.1], pa.float32()), "prob_sad": pa.array([0.1, 0.7], pa.float32())}
    pq.write_table(pa.table(old), s.predictions_path)
    got = s.read_predictions()
    assert got.schema == PREDICTION_SCHEMA
    assert [[round(p, 6) for p in r["prob"]] for r in got.to_pylist()] == [[0.1, 0.6, 0.2, 0.1], [0.0, 0.2, 0.1, 0.7]]


def test_done_trials_bring_their_test_predictions_into_the_grid_table(tmp_path):
    s = ResultStore(tmp_path / "g", "g")
    _write_predictions(s, "a", [0, 1, 2, 3], [0, 1, 1, 3])
    _write_predictions(s, "f", [0], [0])  # a failed attempt's leftovers are never read
    s.append([row("a", artifacts="trials/a"), row("f", "failed", artifacts="trials/f")])
    table = s.read_predictions().to_pylist()
    assert [(r["trial_id"], r["utt_id"], r["emotion_true"], r["emotion_pred"]) for r in table] == [
        ("a", "u0", 0, 0), ("a", "u1", 1, 1), ("a", "u2", 2, 1), ("a", "u3", 3, 3)]
    assert table[2]["prob"] == [0.0, 1.0, 0.0, 0.0]  # the trial's class order
    # A driver killed after writing predictions but before the row leaves a copy: the re-run replaces it.
    _write_predictions(s, "b", [2, 2], [2, 0])
    s._append_predictions([row("b", artifacts="trials/b")])
    s.append([row("b", artifacts="trials/b")])
    ids = [r["trial_id"] for r in s.read_predictions().to_pylist()]
    assert ids.count("b") == 2 and ids.count("a") == 4


def test_a_trial_without_a_predictions_file_adds_no_predictions(tmp_path):
    s = ResultStore(tmp_path / "g", "g")
    s.append([row("a", artifacts="trials/a")])
    assert s.read_predictions().num_rows == 0 and not s.predictions_path.exists()



def test_a_reader_never_sees_half_a_store_while_another_process_replaces_it(tmp_path):
    # A driver replaces the whole file (os.replace) on every append while a watcher polls it, as the
    # kill -9 test does: each read is one whole version (pq.read_table(path) fails here: it opens
    # the path twice and can pair one version's footer with the next one's pages).
    small, big = ResultStore(tmp_path / "small", "g"), ResultStore(tmp_path / "big", "g")
    small.append([row("t0")])
    big.append([row(f"t{n}", error="x" * n) for n in range(200)])
    s = ResultStore(tmp_path, "g")
    swapper = subprocess.Popen([sys.executable, "-c", f"""
import os, shutil
for n in range(100000):
    src = {str(small.path)!r} if n % 2 else {str(big.path)!r}
    shutil.copyfile(src, {str(s.path)!r} + ".tmp")
    os.replace({str(s.path)!r} + ".tmp", {str(s.path)!r})
"""])
    try:
        while not s.path.exists():
            time.sleep(0.01)
        counts = {len(read_snapshot(s.path)) for _ in range(500)}
    finally:
        swapper.kill()
        swapper.wait()
    assert counts == {1, 200}
