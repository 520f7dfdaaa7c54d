"""`--log tensorboard`: per trial a TensorBoard run of its per-epoch losses and scores and its
settings as hparams, under both executors; read back with the `tensorboard` package itself.
`--log mlflow`: a parent run per invocation, a nested run per trial, read back with MLflow's client.
Logging changes no trial id or number, a resumed grid logs nothing twice, a retried trial's run
starts afresh, and a tracker that fails is one warning line while the grid goes on."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

from grid.cli.run import run
from grid.result_store import read_snapshot
from grid.tracking import TENSORBOARD_DIR, TensorBoardTracker, run_name
from grid.trials import TrialSpec
from hcld.config import TrialConfig
from hcld.metrics import METRICS


def invoke(*args):
    result = CliRunner().invoke(run, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.output


def runs_of(folder: Path) -> EventMultiplexer:
    events = EventMultiplexer()
    events.AddRunsFromDirectory(str(folder))
    events.Reload()
    return events


def smoke(data_dir, results, *extra):
    args = ["smoke", "--backbones", "cnn", "--variants", "emo_only,hcld", "--seeds", "2", "--data-dir", data_dir,
            "--results-dir", results, "--no-dashboard", *extra]
    code, out = invoke(*args)
    assert code == 0, out
    return out, read_snapshot(results / "smoke" / "trials.parquet").to_pylist()


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_a_run_per_trial_with_its_curves_and_settings_and_nothing_else_changes(tmp_path, data_dir, executor):
    out, rows = smoke(data_dir, tmp_path / "logged", "--executor", executor, "--log", "tensorboard")
    board = tmp_path / "logged" / "smoke" / TENSORBOARD_DIR
    assert f"logging: tensorboard -> {board}" in out
    events = runs_of(board)
    names = {f"cnn/{v}/fold0,seed={s}" for v in ("emo_only", "hcld") for s in (0, 1)}
    assert set(events.Runs()) == names  # one run per trial, named by its swept values
    for row in rows:
        name = f"cnn/{row['variant']}/fold0,seed={row['seed']}"
        curves = json.loads((tmp_path / "logged" / "smoke" / row["artifacts"] / "result.json").read_text())["curves"]
        for tag, key in (("test/emo_ua", "emo_ua"), ("train/loss_total", "loss_total"),
                         ("train/loss_emo_ce", "loss_emo_ce")):
            logged = [(e.step, e.value) for e in events.Scalars(name, tag)]
            assert logged == [(c["epoch"], pytest.approx(c[key], rel=1e-6)) for c in curves], (name, tag)
        scalars = set(events.Runs()[name]["scalars"])
        assert ("train/loss_icld" in scalars) == (row["variant"] == "hcld")  # only the terms it trains
        assert not any(t.startswith(("test/training_iteration", "test/time", "test/timestamp")) for t in scalars)
        [final] = events.Scalars(name, "hparam/emo_ua")
        assert final.value == pytest.approx(row["emo_ua"], rel=1e-6)
        hparams = events.PluginRunToTagToContent("hparams")[name]
        assert {"_hparams_/experiment", "_hparams_/session_start_info", "_hparams_/session_end_info"} <= set(hparams)
        assert b"seed" in hparams["_hparams_/session_start_info"]

    # The same grid without --log: the same trial ids and numbers.
    _, plain = smoke(data_dir, tmp_path / "plain", "--executor", executor)
    assert sorted(r["trial_id"] for r in plain) == sorted(r["trial_id"] for r in rows)
    by_id = {r["trial_id"]: r for r in plain}
    for r in rows:
        for metric in METRICS:  # NaN where smoke's test fold has no seen speaker: equal as NaN
            a, b = r[metric], by_id[r["trial_id"]][metric]
            assert a == b or (math.isnan(a) and math.isnan(b)), metric

    # Resumed: nothing runs, nothing is logged twice.
    files = sorted(p.stat().st_mtime_ns for p in board.rglob("events.out.tfevents.*"))
    out, _ = smoke(data_dir, tmp_path / "logged", "--executor", executor, "--log", "tensorboard")
    assert "nothing to run" in out
    assert sorted(p.stat().st_mtime_ns for p in board.rglob("events.out.tfevents.*")) == files


def test_a_failing_tracker_is_one_warning_and_the_grid_goes_on(tmp_path, data_dir):
    results = tmp_path / "results"
    (results / "smoke").mkdir(parents=True)
    (results / "smoke" / TENSORBOARD_DIR).write_text("a file where the logs would go\n")
    result = CliRunner().invoke(run, [str(a) for a in [
        "smoke", "--backbones", "cnn", "--variants", "emo_only,hcld", "--executor", "local", "--data-dir", data_dir,
        "--results-dir", results, "--log", "tensorboard"]], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning: --log tensorboard failed")]
    assert len(warnings) == 1 and "the grid goes on" in warnings[0]
    stored = read_snapshot(results / "smoke" / "trials.parquet").to_pylist()
    assert sorted(r["status"] for r in stored) == ["done", "done"]


def spec(trial_id="t1", setting="temperature=0.5 seed=1"):
    return TrialSpec(trial_id=trial_id, grid="g", config=TrialConfig(backbone="lstm", variant="hcld"), fold=3,
                     data_key="dk", code_version="v", artifacts_dir="/nowhere", setting=setting)


def test_a_retried_trial_starts_its_run_afresh(tmp_path):
    tracker = TensorBoardTracker(tmp_path)
    s = spec()
    assert run_name(s) == "lstm/hcld/fold3,temperature=0.5,seed=1"
    tracker.start(s)
    for epoch in (1, 2, 3):
        tracker.epoch(s, {"epoch": epoch, "loss_total": 9.0, "emo_ua": 0.1, "loss_orth": math.nan})
    tracker.end(s, {"status": "failed", "emo_ua": None})
    tracker.start(s)  # the retry
    tracker.epoch(s, {"epoch": 1, "loss_total": 2.0, "emo_ua": 0.5, "val_emo_ua": 0.4})
    tracker.end(s, {"status": "done", "emo_ua": 0.5, "reported_epoch": 1})
    tracker.close()
    events = runs_of(tmp_path)
    name = run_name(s)
    assert [(e.step, e.value) for e in events.Scalars(name, "train/loss_total")] == [(1, 2.0)]
    assert [(e.step, e.value) for e in events.Scalars(name, "validation/emo_ua")] == [(1, pytest.approx(0.4))]
    assert "train/loss_orth" not in events.Runs()[name]["scalars"]  # NaN: a term this variant lacks
    assert len(list((tmp_path / name).glob("events.out.tfevents.*"))) == 1


def test_mlflow_gets_a_parent_run_per_invocation_and_a_nested_run_per_trial(tmp_path, data_dir):
    from mlflow import MlflowClient

    out, rows = smoke(data_dir, tmp_path / "results", "--executor", "local", "--log", "mlflow")
    store = tmp_path / "results" / "mlruns"
    assert f"logging: mlflow -> {store}, experiment 'smoke'" in out
    client = MlflowClient(tracking_uri=str(store))
    experiment = client.get_experiment_by_name("smoke").experiment_id
    runs = client.search_runs([experiment])
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 1 + len(rows) == 5 and parent.info.status == "FINISHED"
    by_trial = {r.data.tags["trial_id"]: r for r in children}
    for row in rows:
        run = by_trial[row["trial_id"]]
        assert run.info.status == "FINISHED" and run.info.run_name == f"cnn/{row['variant']}/fold0,seed={row['seed']}"
        tags = run.data.tags
        assert (tags["grid"], tags["variant"], tags["backbone"], tags["fold"], tags["seed"], tags["stage"]) == (
            "smoke", row["variant"], "cnn", "0", str(row["seed"]), "run")
        config = json.loads(row["config_json"])
        params = run.data.params
        assert params["variant"] == row["variant"] and params["temperature"] == str(config["temperature"])
        curves = json.loads((tmp_path / "results" / "smoke" / row["artifacts"] / "result.json").read_text())["curves"]
        history = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "test/emo_ua")]
        assert sorted(history) == [(c["epoch"], pytest.approx(c["emo_ua"])) for c in curves]
        assert run.data.metrics["final/emo_ua"] == pytest.approx(row["emo_ua"])

    # Resumed: nothing runs, so nothing is logged.
    smoke(data_dir, tmp_path / "results", "--executor", "local", "--log", "mlflow")
    assert len(client.search_runs([experiment])) == len(runs)  # nothing ran: no parent made either
