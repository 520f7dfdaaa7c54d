"""`hcld-grid bench steps` on tiny shapes: the split adds up, every placement and precision runs,
the epoch (what `bench epochs` reported before it folded in here) follows from the step times, the
step is the trial's (hcld.train.make_optimizer), and the grid projection follows from the per-trial
times."""

from __future__ import annotations

import csv

import pytest
from click.testing import CliRunner

from benchmarks.steps import STAGES, StepBench, project_grid, steps
from hcld.config import BACKBONES

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


def test_the_step_uses_the_trials_optimizer(monkeypatch):
    """One definition of a step: the benchmark's optimizer is hcld.train.make_optimizer's (Adam with
    the config's weight decay), as in a trial."""
    import torch

    import hcld.train

    made = []
    real = hcld.train.make_optimizer
    monkeypatch.setattr(hcld.train, "make_optimizer", lambda *a: made.append(real(*a)) or made[-1])
    bench = StepBench("cnn", device=torch.device("cpu"), precision="fp32", model_size="tiny", variant="hcld",
                      loss_impl="torch", batch=4, dim=6, seed=0)
    assert made == [bench.optimizer]
    assert bench.optimizer.defaults["weight_decay"] == bench.config.weight_decay


def test_the_epoch_time_is_reported_per_backbone(tmp_path):
    """Seconds per epoch for each backbone (the old `bench epochs` figure, now with data and evaluation),
    printed and in the CSV; rows append to an existing table with the same columns."""
    out = tmp_path / "steps.csv"
    for _ in range(2):
        done = CliRunner().invoke(steps, [*TINY, "--backbone", "cnn,lstm", "--placement", "device", "--out", str(out)])
        assert done.exit_code == 0, done.output
    rows = list(csv.DictReader(out.open()))
    assert [r["backbone"] for r in rows] == ["cnn", "lstm", "cnn", "lstm"]
    for r in rows:
        assert float(r["epoch_s"]) == pytest.approx(3 * float(r["loop_step_s"]) + float(r["eval_epoch_s"]))
    for r in rows[2:]:  # the second run's rows, in its output
        assert f"epoch {float(r['epoch_s']):.1f} s (3 steps + eval {float(r['eval_epoch_s']):.1f} s)" in done.output


def test_appending_to_a_table_with_other_columns_is_refused(tmp_path):
    out = tmp_path / "steps.csv"
    out.write_text("backbone,seconds_per_epoch\ncnn,1.0\n")
    done = CliRunner().invoke(steps, [*TINY, "--backbone", "cnn", "--placement", "device", "--out", str(out)])
    assert done.exit_code != 0 and "has other columns" in done.output
    assert out.read_text() == "backbone,seconds_per_epoch\ncnn,1.0\n"
