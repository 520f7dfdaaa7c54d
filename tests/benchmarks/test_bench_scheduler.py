"""`hcld-grid bench scheduler` (benchmarks/scheduler.py): the full grid's trials with a no-op trial
function through the real executor and store, and the overhead per trial that follows."""

import csv

import pytest
from click.testing import CliRunner

from benchmarks.scheduler import measure, scheduler


def test_scheduler_benchmark_measures_a_no_op_grid_without_losing_trials():
    row = measure("local", 80, 0.0, 1.0)  # more than the 75 full-grid cells: ids stay unique
    assert row["trials"] == 80 and row["slots"] == 1
    assert 0 < row["overhead_per_trial_s"] < 1.0
    assert row["overhead_per_trial_s"] == pytest.approx(row["wall_s"] / 80, rel=0.05)
    assert 0.9 < row["fraction_outside_trials"] <= 1.0


def test_scheduler_cli_writes_a_row_per_executor_and_sleep(tmp_path):
    out = tmp_path / "scheduler.csv"
    done = CliRunner().invoke(scheduler, ["--trials", "3", "--executors", "local", "--sleeps", "0,0.01",
                                          "--out", str(out)])
    assert done.exit_code == 0, done.output
    rows = list(csv.DictReader(out.open()))
    assert [(r["executor"], float(r["sleep_s"]), int(r["trials"])) for r in rows] == [("local", 0.0, 3),
                                                                                      ("local", 0.01, 3)]
    assert all(0 < float(r["projected_fraction_full"]) < 1 for r in rows)


@pytest.mark.parametrize("option,value,message", [("--executors", "dask", "unknown ['dask']"),
                                                  ("--sleeps", "0,soon", "expected comma-separated floats")])
def test_scheduler_cli_refuses_bad_lists(tmp_path, option, value, message):
    done = CliRunner().invoke(scheduler, [option, value, "--out", str(tmp_path / "s.csv")])
    assert done.exit_code != 0 and message in done.output
