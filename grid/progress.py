"""Plain terminal progress for a grid run: one line per event, no tables, no cursor tricks (the
output stays readable in a log file or a CI job)."""

from __future__ import annotations

import math
import os
import socket
import statistics
import sys
import time
from typing import Any, TextIO


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """Counts trials of this run and prints done/running/failed, ETA and the best result so far.

    The ETA is the mean wall time between finishes so far times the trials left: it already
    accounts for trials running side by side."""

    def __init__(self, total: int, *, best_metric: str = "emo_ua", out: TextIO | None = None):
        self.total = total
        self.best_metric = best_metric
        self.out = out  # None: sys.stdout at print time (also after unpickling elsewhere)
        self.started_at = time.monotonic()
        self.running: set[str] = set()
        self.done = 0
        self.failed = 0  # trials that ended failed, retries exhausted
        self.retried = 0
        self.best: tuple[float, str] | None = None
        self.first_start: float | None = None  # ETA counts from here: start-up is not per trial

    def __getstate__(self) -> dict[str, Any]:
        # With a ray:// address Tune runs the driver loop (and this, via the store callback)
        # on the head node: streams do not travel, plain counts do.
        return {**self.__dict__, "out": None}

    def _print(self, text: str) -> None:
        print(text, file=self.out or sys.stdout, flush=True)

    def start(self, trial_id: str, label: str) -> None:
        if self.first_start is None:
            self.first_start = time.monotonic()
        self.running.add(trial_id)

    def _status(self) -> str:
        finished = self.done + self.failed
        left = self.total - finished
        elapsed = time.monotonic() - self.started_at
        since_first = time.monotonic() - (self.first_start or self.started_at)
        eta = "?" if finished == 0 else _duration(since_first / finished * left)
        best = "-"
        if self.best is not None:
            best = f"{self.best_metric} {100 * self.best[0]:.1f}% ({self.best[1]})"
        return (f"done {self.done}, running {len(self.running)}, failed {self.failed}, "
                f"left {left} | elapsed {_duration(elapsed)}, ETA {eta} | best {best}")

    def epoch(self, label: str, metrics: dict[str, Any]) -> None:
        shown = [f"{k} {v:.4g}" for k, v in metrics.items()
                 if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool)]
        self._print(f"    {label} epoch {metrics.get('epoch')}: {', '.join(shown)}")

    def finish(self, trial_id: str, label: str, row: dict[str, Any]) -> None:
        self.running.discard(trial_id)
        self.done += 1
        value = row.get(self.best_metric)
        shown = "n/a"
        if value is not None and not math.isnan(value):
            shown = f"{100 * value:.1f}%"
            if self.best is None or value > self.best[0]:
                self.best = (value, label)
        n = self.done + self.failed
        status = "stopped" if row.get("status") == "stopped" else "done   "  # stopped: by a tune's scheduler
        self._print(f"[{n:>{len(str(self.total))}}/{self.total}] {status} {label}  "
                    f"{self.best_metric} {shown} in {_duration(row.get('seconds') or 0)}  | "
                    f"{self._status()}")

    def fail(self, trial_id: str, label: str, row: dict[str, Any], *, will_retry: bool) -> None:
        error = (row.get("error") or "").splitlines()[:1] or [""]  # "Type: message" comes first
        if will_retry:
            self.retried += 1
            self._print(f"    retry  {label} (attempt {row['attempts']} failed: {error[0][:160]})")
            return
        self.running.discard(trial_id)
        self.failed += 1
        n = self.done + self.failed
        self._print(f"[{n:>{len(str(self.total))}}/{self.total}] FAILED {label} after "
                    f"{row['attempts']} attempt(s): {error[0][:160]}  | {self._status()}")

    def note(self, text: str) -> None:
        """A line about the run itself (a lost node, a moved trial), between the trial lines."""
        self._print(text)

    def elapsed(self) -> str:
        return _duration(time.monotonic() - self.started_at)

    def summary(self) -> str:
        elapsed = time.monotonic() - self.started_at
        return (f"{self.done} done, {self.failed} failed, {self.retried} retried attempt(s), "
                f"{self.total - self.done - self.failed} not finished; wall {_duration(elapsed)}")


def wall_estimate(rows: list[dict[str, Any]], pending: list, *, parallel: int) -> str | None:
    """A rough wall time for `pending` (TrialSpecs) from the store's finished `rows` of the same
    backbone and epochs on this host (variants differ by tens of percent at most), `parallel`
    at a time; None when the store holds no such trial."""
    seconds: dict[tuple, list[float]] = {}
    for r in rows:
        if r["status"] == "done" and r["host"] == socket.gethostname() and r["seconds"]:
            seconds.setdefault((r["backbone"], r["epochs"]), []).append(r["seconds"])
    known = [statistics.median(seconds[k]) for s in pending
             if (k := (s.config.backbone, s.config.epochs)) in seconds]
    if not pending or not known:
        return None
    per_trial = sum(known) / len(known)
    return (f"estimate: about {per_trial * len(pending) / parallel / 60:.1f} min for {len(pending)} trials "
            f"({per_trial:.0f} s each from {len(known)} similar finished trials on this host, "
            f"{parallel} at a time)")


def concurrency(executor: str, cpus_per_trial: float) -> int:
    """Trials at a time on this machine: one for the local executor, cores / CPUs per trial for Ray."""
    return 1 if executor == "local" else max(1, int((os.cpu_count() or 1) / cpus_per_trial))
