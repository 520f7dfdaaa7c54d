"""The result store: results/<grid>/trials.parquet, its row (schema and construction), trial ids,
the run lock, resume and dedupe.

One row per trial *attempt outcome* (done or failed). A row is written the moment its trial ends,
by replacing the whole file atomically (write a sibling file, fsync, os.replace), so a reader or a
killed driver only ever sees the old file or the new one, never half of one. The file is small
(one row per trial) so the read-modify-write is cheap. Written with pyarrow only: the GPU machine
has neither ray nor polars.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import math
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

import hcld
from hcld.config import TrialConfig, TrialResult
from hcld.errors import HcldError
from hcld.fileio import atomic_path
from hcld.losses.variants import uses_speaker_branch
from hcld.metrics import METRICS

REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE_PACKAGES = ("hcld", "kernels")  # code that decides a trial's numbers; grid/ only schedules

# One row per trial attempt. Every column but the config's is written by `trial_row` below; the
# report reads this schema (older tables lacking a column get it as nulls).
SCHEMA = pa.schema(
    [
        ("trial_id", pa.string()),
        ("grid", pa.string()),
        ("backbone", pa.string()),
        ("trunk", pa.string()),  # shared | separate | "-" (no speaker branch)
        ("speaker_backbone", pa.string()),
        ("variant", pa.string()),
        ("fold_scheme", pa.string()),
        ("fold", pa.int64()),
        ("features", pa.string()),
        ("corpus", pa.string()),
        ("epochs", pa.int64()),
        ("seed", pa.int64()),
        ("loss_impl_requested", pa.string()),  # TrialConfig.loss_impl: torch | triton
        ("loss_impl", pa.string()),  # what ran (torch | triton | triton-interpreter); null if failed
        ("status", pa.string()),
        ("error", pa.string()),
        *[(m, pa.float64()) for m in METRICS],
        ("reported_epoch", pa.int64()),
        ("seconds", pa.float64()),
        ("device", pa.string()),
        ("host", pa.string()),
        ("code_version", pa.string()),
        ("finished_at", pa.string()),
        ("attempts", pa.int64()),
        ("config_json", pa.string()),  # the whole TrialConfig: swept settings are read from here
        ("data_key", pa.string()),
        ("artifacts", pa.string()),
    ]
)


# -- ids ------------------------------------------------------------------------------------------

_code_version: str | None = None


def code_version() -> str:
    """Package version + hash of the hcld/ and kernels/ sources: equal for equal code, so a re-run
    of unchanged code finds its finished trials, and an edit to the model or a loss re-runs them."""
    global _code_version
    if _code_version is None:
        digest = hashlib.sha256()
        for package in SOURCE_PACKAGES:
            for path in sorted((REPO_ROOT / package).rglob("*.py")):
                digest.update(path.relative_to(REPO_ROOT).as_posix().encode())
                digest.update(path.read_bytes())
        _code_version = f"{hcld.__version__}+{digest.hexdigest()[:10]}"
    return _code_version


def trial_id(config: TrialConfig, fold: int, data_key: str, version: str | None = None) -> str:
    """Content hash of everything that decides a trial's outcome."""
    payload = json.dumps(
        {"config": config.to_dict(), "fold": fold, "data_key": data_key,
         "code_version": version or code_version()},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


# -- the row --------------------------------------------------------------------------------------


def trial_row(spec: Any, experiment: Any, *, attempt: int, seconds: float,
              outcome: dict[str, Any] | None = None, error: str | None = None) -> dict[str, Any]:
    """One store row for an attempt of `spec` (a grid.runner.TrialSpec) on `experiment`.
    `outcome` is `outcome_of(result)` when the attempt finished; else `error` says why not."""
    c: TrialConfig = spec.config
    row: dict[str, Any] = {
        "trial_id": spec.trial_id, "grid": spec.grid, "backbone": c.backbone,
        "trunk": c.trunk if uses_speaker_branch(c) else "-",
        "speaker_backbone": (c.speaker_backbone or c.backbone) if uses_speaker_branch(c) else None,
        "variant": c.variant, "fold_scheme": experiment.fold_scheme, "fold": spec.fold,
        "features": experiment.features_name, "corpus": experiment.corpus, "epochs": c.epochs,
        "seed": c.seed, "loss_impl_requested": c.loss_impl, "seconds": seconds,
        "host": socket.gethostname(), "code_version": spec.code_version,
        "finished_at": _now(), "attempts": attempt, "config_json": c.to_json(),
        "data_key": spec.data_key, "artifacts": f"trials/{spec.trial_id}",
    }
    if outcome is None:
        row.update(status="failed", error=error or "unknown error")
    else:
        row.update(status="done", error=None, **{k: outcome.get(k) for k in OUTCOME_COLUMNS})
    return row


OUTCOME_COLUMNS = (*METRICS, "reported_epoch", "device", "host", "loss_impl")


def outcome_of(result: TrialResult) -> dict[str, Any]:
    """The flat, picklable part of a TrialResult that goes into the row (curves and confusions
    stay in the artifacts folder); what a Ray worker reports back to the driver."""
    return {**{m: float(result.metrics.get(m, math.nan)) for m in METRICS},
            "reported_epoch": int(result.reported_epoch), "device": result.device,
            "loss_impl": result.loss_impl, "host": socket.gethostname()}


# -- the lock -------------------------------------------------------------------------------------


class RunLock:
    """An exclusive fcntl lock on results/<grid>/.lock, held for the whole run. The kernel drops it
    when the process dies (even by kill -9), so a stale lock never blocks a re-run. The holder's pid
    and host are written inside so a refused run can say who holds it."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / ".lock"
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise HcldError(
                f"{self.path.parent} is in use by another run ({holder}); wait for it to finish "
                f"or use another --results-dir"
            ) from None
        os.ftruncate(fd, 0)
        stamp = _now()
        os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()} since {stamp}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


# -- the store ------------------------------------------------------------------------------------


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _clean(value: Any) -> Any:
    """Floats that are not finite are stored as NaN (undefined metric), never as inf."""
    if isinstance(value, float) and not math.isfinite(value):
        return math.nan
    return value


@dataclass
class Plan:
    """What a run will do with each trial id."""

    pending: list[str]  # to run now
    done: list[str]  # finished earlier: skipped
    gave_up: list[str]  # failed max_failures + 1 times already: skipped
    attempts: dict[str, int]  # attempts made so far, per id


class ResultStore:
    def __init__(self, folder: Path, grid: str):
        self.folder = Path(folder).absolute()
        self.grid = grid
        self.path = self.folder / "trials.parquet"

    def artifacts_dir(self, trial_id: str) -> Path:
        return self.folder / "trials" / trial_id

    def read(self) -> pa.Table:
        if not self.path.exists():
            return SCHEMA.empty_table()
        try:
            return pq.read_table(self.path, schema=SCHEMA)
        except Exception as exc:  # a store we cannot read must not be silently replaced
            raise HcldError(f"cannot read result store {self.path}: {exc}") from exc

    def rows(self) -> list[dict[str, Any]]:
        return self.read().to_pylist()

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        """Add rows atomically. The caller holds the RunLock, so no other writer can interleave;
        a done row for a trial that already has one is dropped (a trial is never counted twice)."""
        table = self.read()
        done = {r["trial_id"] for r in table.select(["trial_id", "status"]).to_pylist()
                if r["status"] == "done"}
        fresh = []
        for row in rows:
            if row["status"] == "done" and row["trial_id"] in done:
                continue
            if row["status"] == "done":
                done.add(row["trial_id"])
            fresh.append({name: _clean(row.get(name)) for name in SCHEMA.names})
        if not fresh:
            return
        table = pa.concat_tables([table, pa.Table.from_pylist(fresh, schema=SCHEMA)])
        with atomic_path(self.path, durable=True) as tmp:
            pq.write_table(table, tmp)

    def plan(self, trial_ids: list[str], max_failures: int) -> Plan:
        """Split trials into pending / done / gave-up from what the store already holds."""
        attempts: dict[str, int] = {}
        done: set[str] = set()
        for r in self.read().select(["trial_id", "status"]).to_pylist():
            attempts[r["trial_id"]] = attempts.get(r["trial_id"], 0) + 1
            if r["status"] == "done":
                done.add(r["trial_id"])
        plan = Plan([], [], [], {t: attempts.get(t, 0) for t in trial_ids})
        for t in trial_ids:
            if t in done:
                plan.done.append(t)
            elif attempts.get(t, 0) > max_failures:
                plan.gave_up.append(t)
            else:
                plan.pending.append(t)
        return plan
