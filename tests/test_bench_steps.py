"""`hcld-grid bench steps` on tiny shapes: the split adds up, every placement and precision runs,
and the grid projection follows from the per-trial times."""

from __future__ import annotations

import csv

import pytest
from click.testing import CliRunner

from grid.cli.bench_steps import BACKBONES, STAGES, project_grid, steps

TINY = ["--device", "cpu", "--model-size", "tiny", "--rows", "40", "--frames", "16", "--dim", "12", "--batch", "8",
        "--train-utterances", "20", "--test-utterances", "10", "--steps", "1", "--warmup", "0",
        "--eval-batches", "1", "--data-repeats", "2", "--grid", "smoke"]


def test_step_split_adds_up_for_every_placement_and_precision(tmp_path):
    out = tmp_path / "steps.csv"
    done = CliRunner().invoke(steps, [*TINY, "--backbone", "cnn,lstm,transformer", "--precision", "fp32,bf16",
                                      "--out", str(out)])
    assert done.exit_code == 0, done.output
    rows = list(csv.DictReader(out.open()))
    cells = {(r["backbone"], r["placement"], r["precision"]) for r in rows}
    assert cells == {(b, p, q) for b in BACKBONES for p in ("legacy", "host", "device") for q in ("fp32", "bf16")}
    for r in rows:
        value = {k: float(v) for k, v in r.items() if k.endswith("_s") or k == "data_share"}
        assert value["data_s"] == pytest.approx(value["gather_s"] + value["copy_s"] + value["convert_s"])
        assert value["split_step_s"] == pytest.approx(value["data_s"] + sum(value[f"{s}_s"] for s in STAGES[3:]))
        assert value["data_share"] == pytest.approx(value["data_s"] / value["split_step_s"])
        assert int(r["steps_per_epoch"]) == 3 and int(r["epochs"]) == 2  # ceil(20 / 8); the smoke grid's epochs
        epoch = 3 * value["loop_step_s"] + 2 * value["eval_batch_s"]  # ceil(10 / 8) evaluation batches
        assert value["epoch_s"] == pytest.approx(epoch)
        assert value["trial_s"] == pytest.approx(2 * epoch + 3 * value["eval_batch_s"])
        assert r["host_syncs_per_step"] == ""  # counted on CUDA only
    # one projection line per (device, placement, precision) with every backbone measured
    assert done.output.count("projected `smoke` grid on cpu") == 6


def test_projection_needs_every_backbone_and_divides_by_trials_per_gpu():
    rows = [{"device": "gpu", "placement": "device", "precision": "bf16", "backbone": b, "trial_s": t}
            for b, t in zip(BACKBONES, (10.0, 20.0, 30.0))]
    assert project_grid(rows, trials_per_backbone=25, trials_per_gpu=4) == {("gpu", "device", "bf16"): 60 * 25 / 4}
    assert project_grid(rows[:2], trials_per_backbone=25, trials_per_gpu=1) == {}


def test_unknown_placement_is_refused(tmp_path):
    done = CliRunner().invoke(steps, [*TINY, "--placement", "disk", "--out", str(tmp_path / "x.csv")])
    assert done.exit_code != 0 and "unknown ['disk']" in done.output
