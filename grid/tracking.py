"""Experiment trackers (`--log tensorboard`, `--log mlflow`): each trial's per-epoch loss terms and
metrics where people already watch curves.

TensorBoard: results/<grid>/tensorboard/, a run per trial. MLflow (the `mlflow` extra): an
experiment per grid in RESULTS_DIR/mlruns (or --mlflow-uri), a parent run per invocation and a
nested run per trial attempt, its params the resolved config.

Both executors feed the tracker in the driver, which sees every epoch (the local loop's on_epoch;
Ray Tune's on_trial_result) and every trial's end (its store row). A tracker never decides a
number or an id, and a tracker that fails says so in one warning line and is switched off: the
grid, and every row it stores, goes on. Trials finished in an earlier run are never re-run, so a
resumed grid logs only what it runs.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grid.trials import TrialSpec
from hcld.errors import HcldError
from hcld.metrics import METRICS, VALIDATION_METRICS

TRACKERS: tuple[str, ...] = ("tensorboard", "mlflow")
TENSORBOARD_DIR = "tensorboard"  # results/<grid>/tensorboard/<run per trial>
MLFLOW_DIR = "mlruns"  # RESULTS_DIR/mlruns: MLflow's own default name, beside the grids' folders


def scalar_tag(key: str) -> str | None:
    """Where a value of hcld.train's epoch row goes: loss terms under train/, validation scores
    under validation/, the test fold's under test/ (a trial with a validation split has none per
    epoch); None for anything else (the epoch itself, what Ray Tune adds to a result)."""
    if key == "seconds":
        return "time/epoch_seconds"
    if key.startswith("loss_"):
        return f"train/{key}"
    if key in VALIDATION_METRICS:
        return f"validation/{key.removeprefix('val_')}"
    if key in METRICS:
        return f"test/{key}"
    return None


def run_name(spec: TrialSpec) -> str:
    """One TensorBoard run / MLflow run per trial: backbone/variant/fold (a tune's stage too) and
    its swept values (`cnn/hcld/fold0,seed=1`), a path TensorBoard shows as the run's name."""
    return spec.name + ("," + spec.setting.replace(" ", ",") if spec.setting else "")


def hparams_of(spec: TrialSpec) -> dict[str, bool | str | float | int]:
    """The trial's settings as flat hparams (TensorBoard's HPARAMS tab, MLflow params)."""
    return {k: (v if isinstance(v, (bool, int, float, str)) else json.dumps(v))
            for k, v in spec.config.to_dict().items() if v is not None}


REPORTED_PREFIXES = ("emo_", "spk_", "probe_", "val_")  # a store row's scores (hcld.metrics' names)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


class Tracker:
    """What the executors call; a failure in a subclass's hook is reported once and ends tracking."""

    name = "none"

    def __init__(self, warn: Callable[[str], None] = print):
        self.warn = warn
        self.broken = False

    def _guard(self, hook: Callable[[], None]) -> None:
        if self.broken:
            return
        try:
            hook()
        except Exception as exc:  # a tracker must never stop the grid or lose a row
            self.broken = True
            self.warn(f"warning: --log {self.name} failed ({type(exc).__name__}: {exc}); "
                      f"tracking is off for the rest of this run, the grid goes on")

    def start(self, spec: TrialSpec) -> None:
        self._guard(lambda: self._start(spec))

    def epoch(self, spec: TrialSpec, metrics: dict[str, Any]) -> None:
        self._guard(lambda: self._epoch(spec, metrics))

    def end(self, spec: TrialSpec, row: dict[str, Any]) -> None:
        self._guard(lambda: self._end(spec, row))

    def close(self) -> None:
        self._guard(self._close)

    def describe(self) -> str:
        return self.name

    def _start(self, spec: TrialSpec) -> None: ...
    def _epoch(self, spec: TrialSpec, metrics: dict[str, Any]) -> None: ...
    def _end(self, spec: TrialSpec, row: dict[str, Any]) -> None: ...
    def _close(self) -> None: ...

    def __getstate__(self) -> dict:  # Tune pickles the callback that holds us: no open handles
        return {k: v for k, v in self.__dict__.items() if k != "open"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, open={})


class TensorBoardTracker(Tracker):
    """results/<grid>/tensorboard/<run_name>/: scalars per epoch (step = epoch), and when the trial
    ends its settings as hparams with its reported scores. A trial started again (a retry after a
    failed attempt) starts its run afresh, so no run shows two attempts' curves on top of each other."""

    name = "tensorboard"

    def __init__(self, root: Path, warn: Callable[[str], None] = print):
        super().__init__(warn)
        self.root = Path(root)
        self.open: dict[str, Any] = {}

    def describe(self) -> str:
        return f"logging: tensorboard -> {self.root} (watch with `tensorboard --logdir {self.root}`)"

    def _writer(self, spec: TrialSpec):
        if spec.trial_id not in self.open:
            from tensorboardX import SummaryWriter

            self.open[spec.trial_id] = SummaryWriter(str(self.root / run_name(spec)), flush_secs=10)
        return self.open[spec.trial_id]

    def _start(self, spec: TrialSpec) -> None:
        old = self.open.pop(spec.trial_id, None)
        if old is not None:
            old.close()
        folder = self.root / run_name(spec)
        if folder.is_dir():  # an earlier attempt's events
            shutil.rmtree(folder)
        self._writer(spec)

    def _epoch(self, spec: TrialSpec, metrics: dict[str, Any]) -> None:
        writer, step = self._writer(spec), int(metrics.get("epoch", 0))
        for key, value in metrics.items():
            tag, number = scalar_tag(key), _number(value)
            if tag is not None and number is not None:
                writer.add_scalar(tag, number, step)
        writer.flush()

    def _end(self, spec: TrialSpec, row: dict[str, Any]) -> None:
        writer = self._writer(spec)
        scores = {f"hparam/{k}": n for k, v in row.items()
                  if k.startswith(REPORTED_PREFIXES) and (n := _number(v)) is not None}
        scores[f"hparam/{'done' if row.get('status') in ('done', 'stopped') else 'failed'}"] = 1.0
        # add_hparams would open a second writer in a sibling file, which in the same second gets
        # the same name and clobbers the scalars: the three hparams summaries go into this file.
        from tensorboardX.summary import hparams

        for summary in hparams(hparams_of(spec), scores):
            writer.file_writer.add_summary(summary)
        step = int(row.get("reported_epoch") or 0)
        for tag, value in scores.items():
            writer.add_scalar(tag, value, step)
        writer.close()
        self.open.pop(spec.trial_id, None)

    def _close(self) -> None:
        for writer in self.open.values():
            writer.close()
        self.open.clear()


class MLflowTracker(Tracker):
    """One MLflow experiment per grid folder (`smoke`, `demo-tune`); per invocation a parent run,
    per trial attempt a nested run named as in TensorBoard, with params = the resolved config,
    tags = grid, variant, backbone, fold, seed, stage and trial id, metrics per epoch (step =
    epoch) and the reported scores at the end (`final/...`); a failed attempt's run ends FAILED."""

    name = "mlflow"

    def __init__(self, uri: str, experiment: str, warn: Callable[[str], None] = print):
        super().__init__(warn)
        self.uri, self.experiment = uri, experiment
        self.open: dict[str, Any] = {}

    def describe(self) -> str:
        return f"logging: mlflow -> {self.uri}, experiment {self.experiment!r} (watch with `mlflow ui " \
               f"--backend-store-uri {self.uri}`)"

    def _client(self):
        if "client" not in self.open:
            import os

            from mlflow import MlflowClient

            if "://" not in self.uri or self.uri.startswith("file:"):  # a folder: MLflow's file store, which
                os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps behind a switch
            client = MlflowClient(tracking_uri=self.uri)
            found = client.get_experiment_by_name(self.experiment)
            experiment = found.experiment_id if found else client.create_experiment(self.experiment)
            parent = client.create_run(experiment, run_name=f"{self.experiment} {time.strftime('%Y-%m-%d %H:%M:%S')}",
                                       tags={"grid": self.experiment})
            self.open.update(client=client, experiment=experiment, parent=parent.info.run_id, runs={})
        return self.open["client"]

    def _start(self, spec: TrialSpec) -> None:
        client = self._client()
        c = spec.config
        tags = {"mlflow.parentRunId": self.open["parent"], "grid": spec.grid, "variant": c.variant,
                "backbone": c.backbone, "fold": str(spec.fold), "seed": str(c.seed), "stage": spec.stage or "run",
                "trial_id": spec.trial_id}
        run = client.create_run(self.open["experiment"], run_name=run_name(spec), tags=tags)
        from mlflow.entities import Param

        client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in hparams_of(spec).items()])
        self.open["runs"][spec.trial_id] = run.info.run_id

    def _log(self, spec: TrialSpec, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        metrics = [Metric(k, v, stamp, step) for k, v in values.items()]
        if metrics:
            self._client().log_batch(self.open["runs"][spec.trial_id], metrics=metrics)

    def _epoch(self, spec: TrialSpec, metrics: dict[str, Any]) -> None:
        values = {tag: n for k, v in metrics.items() if (tag := scalar_tag(k)) and (n := _number(v)) is not None}
        self._log(spec, values, int(metrics.get("epoch", 0)))

    def _end(self, spec: TrialSpec, row: dict[str, Any]) -> None:
        self._log(spec, {f"final/{k}": n for k, v in row.items() if k.startswith(REPORTED_PREFIXES)
                         and (n := _number(v)) is not None}, int(row.get("reported_epoch") or 0))
        status = "FINISHED" if row.get("status") in ("done", "stopped") else "FAILED"
        self._client().set_terminated(self.open["runs"].pop(spec.trial_id), status=status)

    def _close(self) -> None:
        if "client" in self.open:
            for run_id in self.open["runs"].values():  # interrupted trials
                self.open["client"].set_terminated(run_id, status="KILLED")
            self.open["client"].set_terminated(self.open["parent"])
        self.open.clear()


class Trackers:
    """The trackers of one `--log`, called as one (none: calls that do nothing)."""

    def __init__(self, trackers: list[Tracker] | None = None):
        self.trackers = list(trackers or [])

    def describe(self) -> list[str]:
        return [tracker.describe() for tracker in self.trackers]

    def start(self, spec: TrialSpec) -> None:
        for tracker in self.trackers:
            tracker.start(spec)

    def epoch(self, spec: TrialSpec, metrics: dict[str, Any]) -> None:
        for tracker in self.trackers:
            tracker.epoch(spec, metrics)

    def end(self, spec: TrialSpec, row: dict[str, Any]) -> None:
        for tracker in self.trackers:
            tracker.end(spec, row)

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.close()


def make_trackers(names: tuple[str, ...] | None, grid_folder: Path, *, mlflow_uri: str | None = None,
                  warn: Callable[[str], None] = print) -> Trackers:
    """The trackers `--log` names (TRACKERS), writing beside the grid's store (MLflow: to
    `mlflow_uri`, by default RESULTS_DIR/mlruns). A missing optional package is an HcldError now,
    before any trial runs, not a warning later."""
    grid_folder = Path(grid_folder)
    made: list[Tracker] = []
    for name in names or ():
        if name == "tensorboard":
            made.append(TensorBoardTracker(grid_folder / TENSORBOARD_DIR, warn))
        elif name == "mlflow":
            if importlib.util.find_spec("mlflow") is None:
                raise HcldError("--log mlflow needs MLflow: pip install -e '.[mlflow]' (or pip install mlflow-skinny)")
            uri = mlflow_uri or str((grid_folder.parent / MLFLOW_DIR).absolute())
            made.append(MLflowTracker(uri, grid_folder.name, warn))
        else:
            raise HcldError(f"unknown --log {name!r}; choose from {', '.join(TRACKERS)}")
    if mlflow_uri is not None and "mlflow" not in (names or ()):
        raise HcldError("--mlflow-uri goes with --log mlflow")
    return Trackers(made)
