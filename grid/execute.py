"""Run a grid's pending trials with Ray Tune or in-process (`local`), writing each outcome to the
result store the moment it is known; start or join the Ray session they run on.

Both executors call the same trial function, `trial_fn(spec, experiment, on_epoch=, artifacts_dir=)
-> TrialResult`. The default one loads the fold's data from the (memory-mapped) feature store and
calls `hcld.train.run_trial`; tests and the scheduler benchmark inject others. Nothing here imports
ray unless the Ray executor is used.

Ray >= 2.5x turns on token authentication for a new local cluster by default: the dashboard then
asks for a token in the browser. We never print the token itself (terminals end up in logs); we
print the command that shows it and where Ray keeps it.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import re
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grid.progress import Progress
from grid.result_store import ResultStore
from grid.tracking import Trackers
from grid.trials import FINISHED, LOST, ExperimentLike, TrialSpec, outcome_of, trial_row
from hcld.config import TrialConfig, TrialResult
from hcld.errors import HcldError
from hcld.metrics import METRICS, VALIDATION_METRICS

TRIAL_FN_ENV = "HCLD_GRID_TRIAL_FN"  # "module:function": swap the trial function (tests, benchmarks)
EXECUTORS = ("ray", "local")  # ray: Ray Tune, trials in parallel; local: this process, one at a time


# -- trial functions ------------------------------------------------------------------------------

TrialFn = Callable[..., TrialResult]


def hcld_trial(spec: TrialSpec, experiment: ExperimentLike, *, on_epoch, artifacts_dir: Path,
               ) -> TrialResult:
    """The real trial: this fold's data (a view on the shared memmap) through hcld.train."""
    from hcld.train import run_trial

    data = experiment.trial_data(spec.fold)
    return run_trial(spec.config, data, on_epoch=on_epoch, artifacts_dir=artifacts_dir, save_model=spec.save_model)


def noop_trial(spec: TrialSpec, experiment: ExperimentLike, *, on_epoch, artifacts_dir: Path,
               ) -> TrialResult:
    """Does no work: measures what scheduling and recording a trial costs (bench scheduler)."""
    return TrialResult({m: math.nan for m in METRICS}, [], [], [], 0, 0.0, "none", "unused",
                       spec.config.loss_impl)


BUILTIN_TRIAL_FNS = {"hcld": hcld_trial, "noop": noop_trial}


def resolve_trial_fn(ref: str | TrialFn) -> TrialFn:
    """A trial function from a builtin name ("hcld", "noop") or "module:function"."""
    if callable(ref):
        return ref
    if ref in BUILTIN_TRIAL_FNS:
        return BUILTIN_TRIAL_FNS[ref]
    module, _, name = ref.partition(":")
    if not name:
        raise ValueError(f"trial function {ref!r}: expected a builtin {list(BUILTIN_TRIAL_FNS)} "
                         f"or module:function")
    return getattr(importlib.import_module(module), name)


# -- errors ---------------------------------------------------------------------------------------


def describe_error(exc: BaseException) -> str:
    """Type and message of the root exception, then the last frames, so a row says why."""
    text = "".join(traceback.format_exception(exc, limit=-3))
    return f"{type(exc).__name__}: {exc}\n{text}"


# -- local executor -------------------------------------------------------------------------------


def run_local(specs: list[TrialSpec], experiment: ExperimentLike, store: ResultStore,
              progress: Progress, *, trial_fn: str | TrialFn = "hcld", max_failures: int = 0,
              epoch_lines: bool = False, trackers: Trackers | None = None) -> None:
    """Trials one after another in this process (no Ray): the same function, rows, retries.
    `epoch_lines` prints each epoch's metrics (-v), the only sign of life in a long trial."""
    fn = resolve_trial_fn(trial_fn)
    trackers = trackers or Trackers()
    for spec in specs:
        def on_epoch(metrics: dict, spec: TrialSpec = spec) -> None:
            if epoch_lines:
                progress.epoch(spec.label, metrics)
            trackers.epoch(spec, metrics)

        progress.start(spec.trial_id, spec.label)
        attempt, failures = spec.attempts_before, spec.failures_before
        while True:
            attempt += 1
            artifacts = Path(spec.artifacts_dir)
            artifacts.mkdir(parents=True, exist_ok=True)
            trackers.start(spec)
            start = time.perf_counter()
            try:
                result = fn(spec, experiment, on_epoch=on_epoch, artifacts_dir=artifacts)
            except Exception as exc:  # a failing trial is recorded; the grid goes on
                row = trial_row(spec, experiment, attempt=attempt,
                               seconds=time.perf_counter() - start, error=describe_error(exc))
                store.append([row])
                trackers.end(spec, row)
                failures += 1
                will_retry = failures <= max_failures
                progress.fail(spec.trial_id, spec.label, row, will_retry=will_retry)
                if will_retry:
                    continue
                break
            row = trial_row(spec, experiment, attempt=attempt,
                           seconds=time.perf_counter() - start, outcome=outcome_of(result))
            store.append([row])
            trackers.end(spec, row)
            progress.finish(spec.trial_id, spec.label, row)
            break


# -- the Ray session ---------------------------------------------------------------------------


@dataclass
class RaySession:
    address: str  # what we joined, or "local"
    dashboard_url: str | None  # http://127.0.0.1:8265 or None when off
    token_auth: bool
    cpus: float
    gpus: float

    def describe(self) -> list[str]:
        lines = [f"Ray: {self.address}, {self.cpus:g} CPU, {self.gpus:g} GPU"]
        if self.dashboard_url is None:
            lines.append("Ray dashboard: off")
            return lines
        lines.append(f"Ray dashboard: {self.dashboard_url}  (Jobs/Actors pages; the grid's trials "
                     f"are the ImplicitFunc actors, their logs under Logs)")
        if self.token_auth:
            where = os.environ.get("RAY_AUTH_TOKEN_PATH", "~/.ray/auth_token")
            lines.append(f"  token authentication is on: when the page asks, paste the output of "
                         f"`ray get-auth-token` (the token lives in {where})")
        if self.dashboard_url.startswith(("http://127.0.0.1", "http://localhost")):
            lines.append("  from another machine: ssh -L 8265:127.0.0.1:8265 <this host>, then "
                         "open http://127.0.0.1:8265 there")
        return lines


def start_ray(*, address: str | None, dashboard: bool, verbose: bool,
              num_cpus: int | None = None) -> RaySession:
    """ray.init for a grid run: a new local Ray (dashboard on 127.0.0.1) or an existing cluster."""
    import ray
    from ray._private.authentication import authentication_utils

    # With ray:// the Tune loop runs on the head node and our progress lines arrive as its logs.
    client = bool(address) and address.startswith("ray://")
    quiet = {} if verbose else {"logging_level": logging.WARNING, "log_to_driver": client}
    if not verbose:  # describe() says the same about token auth, with what to do about it
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
            logging.ERROR)
    if address:
        # With ray:// Tune's driver loop runs in a job worker on the head: give it the same
        # output settings grid.execute sets for a local driver.
        env = {"TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"}
        if not verbose:
            env["RAY_AIR_NEW_OUTPUT"] = "0"
        runtime_env = {"env_vars": env} if client else None
        try:
            ctx = ray.init(address=address, runtime_env=runtime_env, **quiet)
        except ConnectionError as exc:
            raise HcldError(
                f"cannot connect to Ray at {address}: {exc}. If the cluster uses token "
                f"authentication (Ray's default), set RAY_AUTH_MODE=token and make its token "
                f"available here (~/.ray/auth_token, or RAY_AUTH_TOKEN)") from exc
    else:
        # address="local": a new Ray of our own even when `ray start` left a cluster behind
        # (ray.init() would silently join that one); joining is what --address is for.
        ctx = ray.init(address="local", num_cpus=num_cpus, include_dashboard=dashboard,
                       dashboard_host="127.0.0.1",
                       **quiet)
    url = getattr(ctx, "dashboard_url", None) or None
    if url and not url.startswith("http"):
        url = f"http://{url}"
    resources = ray.cluster_resources()
    return RaySession(
        address=address or "local",
        dashboard_url=url if dashboard else None,
        token_auth=authentication_utils.is_token_auth_enabled(),
        cpus=resources.get("CPU", 0), gpus=resources.get("GPU", 0),
    )


# -- Ray Tune executor ----------------------------------------------------------------------------

FINAL_KEY = "hcld_final"  # marks the trainable's last report, the one that carries the outcome
FAILED_KEY = "hcld_failed"  # a report of an attempt that raised: its error (then a retry, or the end)
NODE_KEY = "hcld_node"  # every report says which Ray node it ran on (node id), to name a lost node
STARTED_KEY = "hcld_started"  # the trainable's first report: only where it runs
# Attempts a trial may lose to a dying worker process or node, per run, before it is given up:
# Ray Tune restarts it elsewhere. They are not the trial's fault, so not part of --max-failures.
LOST_RETRIES = 3


@dataclass(frozen=True)
class EarlyStopping:
    """Ray Tune's ASHAScheduler on a per-epoch metric, run separately in every group (a tune's
    backbone x variant x outer fold: grid.tune), with the same settings for every group: a
    variant's trials compete with each other only, never with another variant's. A trial it stops
    is recorded as "stopped" with the best value of the metric it reached (and that epoch)."""

    metric: str  # a per-epoch metric the trial reports (mode max), e.g. val_emo_ua
    max_t: int  # epochs of a trial that is never stopped
    group_of: dict[str, str]  # trial_id -> its group's label
    grace_period: int = 1  # epochs before the first rung
    reduction_factor: int = 3  # each rung keeps the best 1/reduction_factor of the trials that reach it

    @classmethod
    def for_epochs(cls, metric: str, epochs: int, group_of: dict[str, str]) -> EarlyStopping:
        """Rungs at a quarter of the epochs and 3x on (15 epochs: rungs at 3 and 9)."""
        return cls(metric, epochs, group_of, grace_period=max(1, epochs // 4))

    def describe(self) -> str:
        return (f"ASHA per group on {self.metric}: grace period {self.grace_period} epochs, reduction factor "
                f"{self.reduction_factor}, max {self.max_t} epochs")


def _scalars(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}


def ray_trainable(param: dict[str, Any], *, specs: dict[str, dict[str, Any]], experiment,
                  trial_fn: str | TrialFn, max_failures: int = 0) -> None:
    """Runs in a Ray worker: one trial, per-epoch metrics to Tune, the outcome as the last report.
    `specs` and `experiment` arrive once through the object store (tune.with_parameters); the
    features themselves are memory-mapped by each worker from the feature store, never pickled.

    An attempt that raises is reported (FAILED_KEY) and retried here, as the local executor does,
    within --max-failures: Ray Tune's own restarts are left for what the trial cannot help, a
    worker process or a node dying under it (LOST_RETRIES)."""
    import ray
    import torch
    from ray import tune

    # Ray packs trials by their CPU share; without this every worker's torch would use all cores
    # (oversubscribed cores make tiny epochs one to two orders of magnitude slower). TrialConfig.threads wins.
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    torch.set_num_threads(max(1, int(cpus)))
    raw = specs[param["trial_id"]]
    spec = TrialSpec(**{**raw, "config": TrialConfig.from_dict(raw["config"])})
    fn = resolve_trial_fn(trial_fn)
    artifacts = Path(spec.artifacts_dir)
    artifacts.mkdir(parents=True, exist_ok=True)
    where = {NODE_KEY: ray.get_runtime_context().get_node_id()}
    tune.report({STARTED_KEY: 1, **where})  # so a node lost before the first epoch is still named
    failures = spec.failures_before
    while True:
        start = time.perf_counter()
        try:
            result = fn(spec, experiment, on_epoch=lambda m: tune.report({**_scalars(m), **where}),
                        artifacts_dir=artifacts)
        except Exception as exc:  # recorded by the driver; retried here within the trial's budget
            failures += 1
            will_retry = failures <= max_failures
            tune.report({FAILED_KEY: describe_error(exc), "trial_seconds": time.perf_counter() - start,
                         "will_retry": will_retry, **where})
            if will_retry:
                continue
            return
        tune.report({FINAL_KEY: 1, "trial_seconds": time.perf_counter() - start, **outcome_of(result), **where})
        return


def _node_of_actor(error: str) -> str | None:
    """The node of the actor an error names ("The actor <id> is unavailable / died"), from the
    GCS's actor table, which keeps dead actors: a trial lost before its first report is still
    placed. Ray's public state API needs the dashboard; this private accessor does not."""
    found = re.search(r"[Aa]ctor (?:ID )?([0-9a-f]{32})", error)
    if found is None:
        return None
    try:
        from ray._private.state import actors

        node = actors(actor_id=found.group(1))["Address"]["NodeID"]
    except Exception:  # another Ray version's table, or the GCS unreachable: the caller falls back
        return None
    return node or None


def _loss(node: str | None) -> str:
    """What died under a trial whose last report came from `node`: the node, or (the node still
    alive) its worker process there."""
    if node is None:
        return "its worker (node unknown)"
    import ray

    try:
        alive = {n["NodeID"]: n["Alive"] for n in ray.nodes()}.get(node)
    except Exception:  # the cluster's state is unreadable: say what is known
        alive = None
    return f"its worker on node {node[:12]}" if alive else f"node {node[:12]}"


def _error_of(trial) -> str:
    try:
        exc = trial.get_pickled_error()
    except Exception:  # the error file may be unreadable; fall back to its text form
        exc = None
    if exc is not None:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, BaseException):
            exc = cause
        return describe_error(exc)
    if trial.error_file and Path(trial.error_file).exists():  # one "Failure # N (occurred at ...)" block per failure
        text = Path(trial.error_file).read_text()
        return re.split(r"^Failure # \d+ \(occurred at [^)]*\)\n", text, flags=re.M)[-1].strip()[-4000:]
    return "trial failed without an error message (worker lost?)"


_CALLBACK_CLASS = None


def _store_callback_class():
    """The tune.Callback that records trials, built on first use so this module imports without
    ray. It pickles (Tune saves its run config, and with a ray:// address runs the whole driver
    loop, callbacks included, on the head node), so everything it holds is plain data."""
    global _CALLBACK_CLASS
    if _CALLBACK_CLASS is not None:
        return _CALLBACK_CLASS
    from ray import tune

    class StoreCallback(tune.Callback):
        """Runs in the driver: turns Tune's trial events into store rows and progress lines."""

        def __init__(self, by_id, experiment, store, progress, stopping=None, trackers=None):
            self.by_id, self.experiment, self.store = by_id, experiment, store
            self.progress, self.stopping = progress, stopping  # the retry budget lives in ray_trainable
            self.trackers = trackers or Trackers()
            self.started: dict[str, float] = {}
            self.failures: dict[str, int] = {}  # attempts of this run that ended failed, any cause
            self.best: dict[str, dict] = {}  # with early stopping: each trial's best epoch so far
            self.node_of: dict[str, str] = {}  # the node of each trial's latest report
            self.lost_on: dict[str, str] = {}  # a trial lost with a node, until it reports from another

        def on_trial_start(self, iteration, trials, trial, **info):
            spec = self.by_id[trial.config["trial_id"]]
            self.started[spec.trial_id] = time.perf_counter()
            self.progress.start(spec.trial_id, spec.label)
            self.trackers.start(spec)

        def _attempt(self, spec) -> int:
            return spec.attempts_before + self.failures.get(spec.trial_id, 0) + 1

        def _record(self, spec, row, *, will_retry: bool = False) -> None:
            self.store.append([row])
            self.trackers.end(spec, row)
            if row["status"] in FINISHED:
                self.progress.finish(spec.trial_id, spec.label, row)
            else:
                self.progress.fail(spec.trial_id, spec.label, row, will_retry=will_retry)

        def _failed(self, trial, *, will_retry: bool) -> None:
            """Ray Tune saw the trial's actor die (its worker process, or its node): the trial's own
            errors are caught and reported by ray_trainable. The row names the node and says which."""
            spec = self.by_id[trial.config["trial_id"]]
            tid = spec.trial_id
            now = time.perf_counter()
            detail = _error_of(trial)
            node = _node_of_actor(detail) or self.node_of.get(tid)
            lost = re.search(r"[Aa]ctor .*(unavailable|died|dead)", detail) is not None
            # anything else that escaped ray_trainable (it catches the trial's Exceptions) is the trial's
            what = _loss(node)  # asks the GCS once
            error = f"{LOST} {what}: {detail}" if lost else detail
            if not will_retry:
                error += f" (given up: {LOST_RETRIES + 1} attempts lost to Ray in this run)"
            row = trial_row(spec, self.experiment, attempt=self._attempt(spec),
                            seconds=now - self.started.get(tid, now), error=error)
            self.failures[tid] = self.failures.get(tid, 0) + 1
            self.started[tid] = now
            self.best.pop(tid, None)
            if will_retry and node and lost:
                self.lost_on[tid] = node
            self._record(spec, row, will_retry=will_retry)
            if will_retry and lost:
                self.progress.note(f"    lost   {spec.label} with {what}; Ray Tune restarts it "
                                   f"(not counted against --max-failures)")

        def _attempt_failed(self, spec, result) -> None:
            """ray_trainable caught an error of the trial itself: a failed row, then its retry or the end."""
            tid = spec.trial_id
            will_retry = bool(result.get("will_retry"))
            row = trial_row(spec, self.experiment, attempt=self._attempt(spec),
                            seconds=float(result.get("trial_seconds", 0.0)), error=result[FAILED_KEY])
            self.failures[tid] = self.failures.get(tid, 0) + 1
            self._record(spec, row, will_retry=will_retry)
            if will_retry:
                self.started[tid] = time.perf_counter()
                self.best.pop(tid, None)
                self.trackers.start(spec)

        def on_trial_result(self, iteration, trials, trial, result, **info):
            spec = self.by_id[trial.config["trial_id"]]
            tid = spec.trial_id
            node = result.get(NODE_KEY)
            if node:
                lost = self.lost_on.pop(tid, None)
                if lost is not None:
                    self.progress.note(f"    moved  {spec.label}: restarted on node {node[:12]} "
                                       f"(lost with node {lost[:12]})")
                self.node_of[tid] = node
            if STARTED_KEY in result:
                return
            if FAILED_KEY in result:
                self._attempt_failed(spec, result)
                return
            if FINAL_KEY in result:
                return
            self.trackers.epoch(spec, result)
            if self.stopping is None:
                return
            value = result.get(self.stopping.metric)
            best = self.best.setdefault(tid, {"epochs_run": 0})
            best["epochs_run"] = int(result.get("epoch", best["epochs_run"] + 1))
            if value is not None and math.isfinite(value) and value > best.get(self.stopping.metric, -math.inf):
                best.update({k: result.get(k) for k in VALIDATION_METRICS}, reported_epoch=best["epochs_run"])

        def _stopped_row(self, spec, attempt: int) -> dict:
            """The row of a trial the scheduler ended: its best epoch's validation scores so far."""
            best = self.best.pop(spec.trial_id)
            now = time.perf_counter()
            outcome = {**{m: math.nan for m in METRICS}, "device": None, "loss_impl": None,
                       **{k: best.get(k) for k in (*VALIDATION_METRICS, "reported_epoch", "epochs_run")}}
            return trial_row(spec, self.experiment, attempt=attempt, seconds=now - self.started.get(spec.trial_id, now),
                             outcome=outcome, status="stopped")

        def on_trial_recover(self, iteration, trials, trial, **info):
            self._failed(trial, will_retry=True)

        def on_trial_error(self, iteration, trials, trial, **info):
            self._failed(trial, will_retry=False)

        def on_trial_complete(self, iteration, trials, trial, **info):
            spec = self.by_id[trial.config["trial_id"]]
            last = trial.last_result or {}
            attempt = self._attempt(spec)
            if FAILED_KEY in last:  # given up after its own failures: every attempt is recorded
                return
            if last.get(FINAL_KEY):
                row = trial_row(spec, self.experiment, attempt=attempt,
                               seconds=last["trial_seconds"], outcome=last)
            elif self.stopping is not None and spec.trial_id in self.best:
                row = self._stopped_row(spec, attempt)
            else:
                row = trial_row(spec, self.experiment, attempt=attempt, seconds=0.0,
                               error="trial ended without reporting its outcome")
            self._record(spec, row)

    _CALLBACK_CLASS = StoreCallback
    return StoreCallback


def _grouped_asha(stopping: EarlyStopping):
    """A Tune scheduler that runs one ASHAScheduler per group of `stopping` (built on first use:
    this module imports without ray)."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

    class GroupedASHA(FIFOScheduler):
        def __init__(self):
            super().__init__()
            self.by_group: dict[str, ASHAScheduler] = {}

        def _of(self, trial) -> ASHAScheduler:
            group = stopping.group_of[trial.config["trial_id"]]
            if group not in self.by_group:
                # stop_last_trials=False: a trial that reaches max_t ends by itself, with its outcome report
                self.by_group[group] = ASHAScheduler(
                    time_attr="training_iteration", metric=stopping.metric, mode="max", max_t=stopping.max_t,
                    grace_period=stopping.grace_period, reduction_factor=stopping.reduction_factor,
                    stop_last_trials=False)
            return self.by_group[group]

        def set_search_properties(self, metric, mode, **spec) -> bool:
            return True  # the groups' schedulers have theirs

        def on_trial_add(self, tune_controller, trial):
            self._of(trial).on_trial_add(tune_controller, trial)

        def on_trial_error(self, tune_controller, trial):
            self._of(trial).on_trial_error(tune_controller, trial)

        def on_trial_result(self, tune_controller, trial, result):
            if FINAL_KEY in result:  # the outcome report: the trial has run all its epochs
                return TrialScheduler.CONTINUE
            return self._of(trial).on_trial_result(tune_controller, trial, result)

        def on_trial_complete(self, tune_controller, trial, result):
            self._of(trial).on_trial_complete(tune_controller, trial, result)

        def on_trial_remove(self, tune_controller, trial):
            self._of(trial).on_trial_remove(tune_controller, trial)

        def debug_string(self) -> str:
            return "\n".join(f"{g}: {s.debug_string()}" for g, s in self.by_group.items())

    return GroupedASHA()


def run_ray(specs: list[TrialSpec], experiment: ExperimentLike, store: ResultStore,
            progress: Progress, *, trial_fn: str | TrialFn = "hcld", max_failures: int = 0,
            cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0, verbose: bool = False,
            early_stopping: EarlyStopping | None = None, trackers: Trackers | None = None) -> None:
    """Pending trials as a Ray Tune grid on the Ray session already started (see
    start_ray). The driver's callback writes rows as trials end."""
    import dataclasses

    import ray
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    if not specs:
        return
    available_gpus = ray.cluster_resources().get("GPU", 0)
    if gpus_per_trial > 0 and available_gpus == 0:
        raise HcldError(f"--gpus-per-trial {gpus_per_trial}: the Ray cluster has no GPU; "
                        f"use --gpus-per-trial 0 to run on CPU workers")
    by_id = {s.trial_id: s for s in specs}
    callback = _store_callback_class()(by_id, experiment, store, progress, early_stopping, trackers)

    trainable = tune.with_parameters(
        ray_trainable,
        specs={s.trial_id: {**dataclasses.asdict(s), "config": s.config.to_dict()} for s in specs},
        experiment=experiment, trial_fn=trial_fn, max_failures=max_failures)
    trainable = tune.with_resources(trainable, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    tuner = tune.Tuner(
        trainable,
        param_space={"trial_id": tune.grid_search([s.trial_id for s in specs])},
        tune_config=tune.TuneConfig(
            reuse_actors=True,  # a worker runs trial after trial: no process start per trial
            trial_name_creator=lambda t: by_id[t.config["trial_id"]].name.replace("/", "-"),
            trial_dirname_creator=lambda t: t.config["trial_id"],
            scheduler=None if early_stopping is None else _grouped_asha(early_stopping),
        ),
        run_config=tune.RunConfig(
            name=f"run-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=str(store.folder / "ray"),
            failure_config=tune.FailureConfig(max_failures=LOST_RETRIES),  # lost workers / nodes only
            # Tune's default loggers minus TensorBoard's, the slowest per result (see below).
            callbacks=[callback, JsonLoggerCallback(), CSVLoggerCallback()],
            verbose=None if verbose else 0,
        ),
    )
    # Tune's new output engine prints its experiment tables even at verbose=0; the legacy engine
    # at verbose=0 is silent, leaving the terminal to our Progress lines (-v restores Tune's own).
    # TUNE_DISABLE_AUTO_CALLBACK_LOGGERS keeps Tune from adding its TensorBoard logger, which
    # costs more per trial than the rest of scheduling (bench scheduler).
    # TUNE_DISABLE_SIGINT_HANDLER: Tune would catch Ctrl-C and return from fit() as if the grid
    # had ended; without its handler Ctrl-C raises KeyboardInterrupt here, as under the local
    # executor, and the command exits 130 "interrupted" (one exit-code contract for both).
    env = {"TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1", "TUNE_DISABLE_SIGINT_HANDLER": "1"}
    if not verbose:
        env["RAY_AIR_NEW_OUTPUT"] = "0"
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    # Tune's own warnings on Ctrl-C advise Tuner.restore and list unstarted trials; here the
    # store decides what is left, and our summary says how to resume.
    tune_logger = logging.getLogger("ray.tune")
    saved_level = tune_logger.level
    if not verbose:
        tune_logger.setLevel(logging.ERROR)
    try:
        tuner.fit()
    finally:
        tune_logger.setLevel(saved_level)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# -- either executor ------------------------------------------------------------------------------


def run_pending(specs: list[TrialSpec], experiment: ExperimentLike, store: ResultStore,
                progress: Progress, *, executor: str, trial_fn: str | TrialFn = "hcld",
                max_failures: int = 0, cpus_per_trial: float = 1.0,
                gpus_per_trial: float | None = None, address: str | None = None,
                dashboard: bool = True, verbose: bool = False, echo: Callable[[str], None] = print,
                early_stopping: EarlyStopping | None = None, trackers: Trackers | None = None) -> None:
    """Run `specs` with `executor` ("local" or "ray"; with Ray: start or join the session, say
    where its dashboard is, and shut it down after). `gpus_per_trial` None: 1 if Ray sees a GPU.
    `early_stopping` needs Ray (its scheduler is Ray Tune's)."""
    if executor not in EXECUTORS:
        raise HcldError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
    if early_stopping is not None and executor != "ray":
        raise HcldError("early stopping (ASHA) runs in Ray Tune: use --executor ray, or --scheduler none")
    trackers = trackers or Trackers()
    try:
        if executor == "local":
            run_local(specs, experiment, store, progress, trial_fn=trial_fn,
                      max_failures=max_failures, epoch_lines=verbose, trackers=trackers)
        else:
            _run_on_ray(specs, experiment, store, progress, trial_fn=trial_fn, max_failures=max_failures,
                        cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial, address=address,
                        dashboard=dashboard, verbose=verbose, echo=echo, early_stopping=early_stopping,
                        trackers=trackers)
    finally:
        trackers.close()


def _run_on_ray(specs, experiment, store, progress, *, trial_fn, max_failures, cpus_per_trial, gpus_per_trial,
                address, dashboard, verbose, echo, early_stopping, trackers) -> None:
    import ray

    session = start_ray(address=address, dashboard=dashboard, verbose=verbose)
    try:
        for line in session.describe():
            echo(line)
        if gpus_per_trial is None:
            gpus_per_trial = 1.0 if session.gpus > 0 else 0.0
        echo(f"resources per trial: {cpus_per_trial:g} CPU, {gpus_per_trial:g} GPU")
        run_ray(specs, experiment, store, progress, trial_fn=trial_fn, max_failures=max_failures,
                cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial, verbose=verbose,
                early_stopping=early_stopping, trackers=trackers)
    finally:
        ray.shutdown()
