"""`hcld-grid bench scheduler`: what scheduling and recording a trial costs, apart from training.

Runs the `full` grid's trials (same configs, same store, same callbacks) with a trial function that
does nothing, or only sleeps, and measures:

  overhead per trial   o = (wall - sum(in-trial seconds) / slots) / trials
  fraction outside     1 - sum(in-trial seconds) / (slots * wall)

and projects the fraction for real trials of T seconds: o * slots / (o * slots + T). Ray's start
(a fixed cost per grid, not per trial) is measured separately. The grid modules (and with them
ray, polars) are imported when the benchmark runs, not with this module.
"""

from __future__ import annotations

import functools
import math
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import click

from benchmarks.common import write_csv
from grid.cli.options import names_option, numbers_option

EXECUTORS = ("ray", "local")  # grid.execute.EXECUTORS, without importing torch for --help (a test checks)


@dataclass
class NoData:
    """Stands in for an Experiment: no-op trials never load data."""

    corpus: str = "none"
    features_name: str = "none"
    fold_scheme: str = "random5"
    data_key: str = "bench-scheduler"
    n_folds: int = 5
    emotion_names: tuple[str, ...] = ("ang", "hap", "neu", "sad")

    def trial_data(self, fold):
        raise RuntimeError("the scheduler benchmark's trials load no data")


def sleep_trial(spec, experiment, *, on_epoch, artifacts_dir, seconds: float):
    from grid.execute import noop_trial

    time.sleep(seconds)
    return noop_trial(spec, experiment, on_epoch=on_epoch, artifacts_dir=artifacts_dir)


def quiet_progress(trials: int):
    """A grid.progress.Progress that prints nothing. Its `first_start` (time.monotonic) marks the end
    of the grid's fixed start-up cost: Tune setup and worker processes, paid once per grid, not per trial."""
    from grid.progress import Progress

    class Quiet(Progress):
        def _print(self, text: str) -> None:
            pass

    return Quiet(trials)


def measure(executor: str, trials: int, sleep_s: float, cpus_per_trial: float) -> dict:
    from grid import plan as grid_specs
    from grid.execute import noop_trial
    from grid.result_store import ResultStore
    from grid.trials import make_specs

    experiment = NoData()
    points = grid_specs.resolve(grid_specs.get_grid("full"), n_folds=experiment.n_folds)
    points = (points * math.ceil(trials / len(points)))[:trials]
    fn = noop_trial if sleep_s == 0 else functools.partial(sleep_trial, seconds=sleep_s)
    with tempfile.TemporaryDirectory(prefix="bench-scheduler-") as tmp:
        store = ResultStore(Path(tmp) / "full", "full")
        specs = make_specs(points, experiment.data_key, store)
        if len({s.trial_id for s in specs}) < len(specs):  # repeats of the 75: make ids unique
            specs = [s.__class__(**{**s.__dict__, "trial_id": f"{s.trial_id}-{i}"})
                     for i, s in enumerate(specs)]
        progress = quiet_progress(len(specs))
        ray_start = 0.0
        if executor == "ray":
            import ray

            from grid.execute import run_ray

            t0 = time.monotonic()
            ray.init(include_dashboard=False, log_to_driver=False, logging_level="WARNING")
            ray_start = time.monotonic() - t0
            slots = int(ray.cluster_resources().get("CPU", 1) // cpus_per_trial)
            try:
                t0 = time.monotonic()
                run_ray(specs, experiment, store, progress, trial_fn=fn,
                        cpus_per_trial=cpus_per_trial)
                wall = time.monotonic() - t0
            finally:
                ray.shutdown()
        else:
            from grid.execute import run_local

            slots = 1
            t0 = time.monotonic()
            run_local(specs, experiment, store, progress, trial_fn=fn)
            wall = time.monotonic() - t0
        rows = store.rows()
    assert len(rows) == len(specs) and all(r["status"] == "done" for r in rows), "trials lost"
    in_trial = sum(r["seconds"] for r in rows)
    slots = max(1, min(slots, len(specs)))
    overhead = (wall - in_trial / slots) / len(specs)
    startup = progress.first_start - t0
    steady = (wall - startup - in_trial / slots) / len(specs)
    return {
        "executor": executor, "trials": len(specs), "slots": slots, "sleep_s": sleep_s,
        "ray_start_s": round(ray_start, 3), "wall_s": round(wall, 3),
        "in_trial_s": round(in_trial, 3), "overhead_per_trial_s": round(overhead, 4),
        "startup_s": round(startup, 3), "steady_overhead_per_trial_s": round(steady, 4),
        "fraction_outside_trials": round(1 - in_trial / (slots * wall), 4),
        "host": socket.gethostname(),
    }


@click.command()
@click.option("--trials", type=click.IntRange(min=1), default=75, show_default=True,
              help="Trials per measured grid (75 = the full grid).")
@click.option("--executors", default=",".join(EXECUTORS), show_default=True, callback=names_option(EXECUTORS),
              metavar="LIST", help="Comma-separated executors to measure.")
@click.option("--sleeps", default="0,0.5", show_default=True, callback=numbers_option(float), metavar="LIST",
              help="Comma-separated in-trial sleep seconds (0 = no-op trial).")
@click.option("--cpus-per-trial", type=click.FloatRange(min=0.01), default=1.0, show_default=True)
@click.option("--full-trial-seconds", type=click.FloatRange(min=0), default=300.0,
              show_default=True,
              help="Length T of one real full-grid trial, for the projected fraction "
                   "(see `trial_s` of `hcld-grid bench steps`).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("results/bench/scheduler.csv"), show_default=True)
def scheduler(trials, executors, sleeps, cpus_per_trial, full_trial_seconds, out) -> None:
    """Grid scheduling overhead per trial and the fraction of wall time outside trial functions."""
    rows = []
    for executor in executors:
        for sleep_s in sleeps:
            row = measure(executor, trials, sleep_s, cpus_per_trial)
            o, slots = row["overhead_per_trial_s"], row["slots"]
            row["projected_fraction_full"] = round(o * slots / (o * slots + full_trial_seconds), 5)
            row["full_trial_seconds"] = full_trial_seconds
            rows.append(row)
            click.echo(f"{executor:>5}  {row['trials']} trials x {sleep_s:g}s on {slots} slot(s): "
                       f"wall {row['wall_s']:.2f}s, overhead {o * 1000:.1f} ms/trial, "
                       f"{100 * row['fraction_outside_trials']:.1f}% of wall outside trials; "
                       f"projected for {full_trial_seconds:g}s trials: "
                       f"{100 * row['projected_fraction_full']:.3f}%; of which start-up "
                       f"{row['startup_s']:.2f}s once, then "
                       f"{1000 * row['steady_overhead_per_trial_s']:.1f} ms/trial"
                       + (f" (plus ray.init {row['ray_start_s']:.1f}s)"
                          if executor == "ray" else ""))
    write_csv(out, rows)
    click.echo(f"wrote {out}")
