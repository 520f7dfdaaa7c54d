"""A trial's store row: what `outcome_of` takes from a TrialResult and `trial_row` writes, typed
by SCHEMA, for finished and failed attempts, and older tables without the newer columns."""

import math
import pickle

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from test_runner import FakeExperiment

from grid.result_store import ResultStore
from grid.trials import SCHEMA, TrialSpec, outcome_of, trial_row
from hcld.config import TrialConfig, TrialResult
from hcld.metrics import METRICS, VALIDATION_METRICS

NEW_COLUMNS = ("selection", "n_train", "n_val", "n_test", "val_emo_wa", "val_emo_ua")


def spec(config):
    return TrialSpec("t1", "g", config, 0, "k", "v", "trials/t1")  # artifacts_dir: nothing is written there


def result(**extra):
    metrics = {m: 0.5 for m in METRICS} | {"val_emo_wa": 0.75, "val_emo_ua": 0.7}
    predictions = {"utt_id": ["a", "b"], "true": np.zeros(2, np.int64), "pred": np.ones(2, np.int64),
                   "prob": np.full((2, 4), 0.25, np.float32)}
    return TrialResult(metrics, [], [], [], 3, 1.0, "cpu", "unused", "torch",
                       sizes={"train": 60, "validation": 7, "test": 20}, predictions=predictions, **extra)


def test_a_finished_row_carries_selection_part_sizes_and_validation_scores():
    config = TrialConfig(selection="best_val")
    outcome = outcome_of(result())
    assert pickle.loads(pickle.dumps(outcome)) == outcome  # what a Ray worker sends back
    assert "predictions" not in outcome and all(not isinstance(v, np.ndarray) for v in outcome.values())
    row = trial_row(spec(config), FakeExperiment(), attempt=1, seconds=1.0, outcome=outcome)
    assert row["selection"] == "best_val"
    assert (row["n_train"], row["n_val"], row["n_test"]) == (60, 7, 20)
    assert (row["val_emo_wa"], row["val_emo_ua"]) == (0.75, 0.7)
    assert set(SCHEMA.names) >= set(NEW_COLUMNS) and set(row) <= set(SCHEMA.names)
    for name in NEW_COLUMNS:
        assert SCHEMA.field(name).type == (pa.string() if name == "selection" else
                                           pa.float64() if name in VALIDATION_METRICS else pa.int64())


def test_a_failed_row_leaves_the_outcome_columns_null(tmp_path):
    row = trial_row(spec(TrialConfig()), FakeExperiment(), attempt=1, seconds=1.0, error="boom")
    assert row["selection"] == "final"  # from the config, like epochs and seed
    store = ResultStore(tmp_path / "g", "g")
    store.append([row])
    stored = store.rows()[0]
    assert all(stored[name] is None for name in ("n_train", "n_val", "n_test", *VALIDATION_METRICS))


def test_a_result_without_sizes_gives_null_sizes():
    bare = TrialResult({m: math.nan for m in METRICS}, [], [], [], 0, 0.0, "none", "unused", "torch")
    outcome = outcome_of(bare)
    assert (outcome["n_train"], outcome["n_val"], outcome["n_test"]) == (None, None, None)
    assert math.isnan(outcome["val_emo_ua"])


def test_an_older_table_without_the_new_columns_still_loads(tmp_path):
    from grid.report.load import load_trials

    old = pa.schema([f for f in SCHEMA if f.name not in NEW_COLUMNS])
    path = tmp_path / "g" / "trials.parquet"
    path.parent.mkdir()
    pq.write_table(pa.Table.from_pylist([{"trial_id": "a", "status": "done", "backbone": "cnn",
                                          "variant": "hcld", "fold": 0, "emo_ua": 0.5}], schema=old), path)
    assert ResultStore(tmp_path / "g", "g").rows()[0]["n_val"] is None
    loaded = load_trials(path)
    assert loaded["selection"].to_list() == [None] and loaded["val_emo_ua"].to_list() == [None]
