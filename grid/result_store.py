"""The result store: results/<grid>/trials.parquet (rows as grid.trials.SCHEMA), the run lock,
resume and dedupe.

One row per trial *attempt outcome* (done, stopped by a tune's scheduler, or failed). A row is
written the moment its trial ends, by replacing the whole file atomically (write a sibling file,
fsync, os.replace), so a reader or a killed driver only ever sees the old file or the new one,
never half of one — provided the reader reads the file once (`read_snapshot`): pyarrow given a
path opens it twice (footer, then pages) and can pair the old footer with the new file's pages.
The file is small (one row per trial) so the read-modify-write is cheap.
"""

from __future__ import annotations

import fcntl
import math
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from grid.trials import FINISHED, LOST, PREDICTION_SCHEMA, PREDICTIONS_TABLE, SCHEMA, TrialSpec, now
from hcld.errors import HcldError
from hcld.fileio import atomic_path
from hcld.labels import EMOTIONS
from hcld.train import PREDICTIONS_FILE  # the file a trial writes, named where it is written


def read_snapshot(path: Path, **read_options: Any) -> pa.Table:
    """`path` read through one open file, so a concurrent os.replace cannot mix two versions.
    A native pyarrow file: given a Python file or an in-memory buffer instead, pyarrow's reader
    threads made 1 in 6 interpreters abort at exit here ("terminate called without an active
    exception"); a path, it opens the file twice."""
    with pa.OSFile(str(path)) as file:
        return pq.read_table(file, **read_options)


# -- the lock -------------------------------------------------------------------------------------


class RunLock:
    """An exclusive fcntl lock on results/<grid>/.lock, held for the whole run. The kernel drops it
    when the process dies (even by kill -9), so a stale lock never blocks a re-run. The holder's pid
    and host are written inside so a refused run can say who holds it."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / ".lock"
        self._fd: int | None = None

    def acquire(self) -> RunLock:
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
        stamp = now()
        os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()} since {stamp}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


# -- the store ------------------------------------------------------------------------------------


def _clean(value: Any) -> Any:
    """Floats that are not finite are stored as NaN (undefined metric), never as inf."""
    if isinstance(value, float) and not math.isfinite(value):
        return math.nan
    return value


@dataclass
class Plan:
    """What a run will do with each trial id."""

    pending: list[str]  # to run now
    done: list[str]  # finished (done, or stopped by a scheduler) earlier: skipped
    gave_up: list[str]  # failed max_failures + 1 times already: skipped
    attempts: dict[str, int]  # attempts made so far, per id
    failures: dict[str, int] = field(default_factory=dict)  # of those, failures of the trial itself

    def resumed(self, spec: TrialSpec) -> TrialSpec:
        """`spec` with what earlier runs spent on it: its attempts, and its own failures (not
        attempts lost with a node or worker, grid.trials.LOST)."""
        return replace(spec, attempts_before=self.attempts.get(spec.trial_id, 0),
                       failures_before=self.failures.get(spec.trial_id, 0))


class ResultStore:
    def __init__(self, folder: Path, grid: str):
        self.folder = Path(folder).absolute()
        self.grid = grid
        self.path = self.folder / "trials.parquet"
        self.predictions_path = self.folder / PREDICTIONS_TABLE

    def artifacts_dir(self, trial_id: str) -> Path:
        return self.folder / "trials" / trial_id

    def read(self) -> pa.Table:
        if not self.path.exists():
            return SCHEMA.empty_table()
        try:
            return read_snapshot(self.path, schema=SCHEMA)
        except Exception as exc:  # a store we cannot read must not be silently replaced
            raise HcldError(f"cannot read result store {self.path}: {exc}") from exc

    def rows(self) -> list[dict[str, Any]]:
        return self.read().to_pylist()

    def read_predictions(self) -> pa.Table:
        """The test predictions of done trials (PREDICTION_SCHEMA); empty if none were stored."""
        if not self.predictions_path.exists():
            return PREDICTION_SCHEMA.empty_table()
        try:
            table = read_snapshot(self.predictions_path)
            if "prob" not in table.column_names:  # written when every grid had IEMOCAP's classes: prob_<label>
                columns = [np.asarray(table[f"prob_{e}"], dtype=np.float32) for e in EMOTIONS]
                flat = pa.array(np.stack(columns, axis=1).ravel(), pa.float32())
                table = table.append_column("prob", pa.FixedSizeListArray.from_arrays(flat, len(EMOTIONS)))
            return table.select(PREDICTION_SCHEMA.names).cast(PREDICTION_SCHEMA)
        except Exception as exc:
            raise HcldError(f"cannot read predictions table {self.predictions_path}: {exc}") from exc

    def _trial_predictions(self, row: dict[str, Any]) -> pa.Table | None:
        """A done trial's predictions from its artifacts, or None when it wrote none."""
        path = self.folder / (row.get("artifacts") or f"trials/{row['trial_id']}") / PREDICTIONS_FILE
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as npz:
            prob = npz["prob"].astype(np.float32)
            columns = {"trial_id": [row["trial_id"]] * len(npz["true"]), "utt_id": npz["utt_id"].astype(str),
                       "emotion_true": npz["true"].astype(np.int8), "emotion_pred": npz["pred"].astype(np.int8),
                       "prob": list(prob)}
        return pa.Table.from_pydict(columns, schema=PREDICTION_SCHEMA)

    def _append_predictions(self, rows: list[dict[str, Any]]) -> None:
        """Add the predictions of newly done trials, replacing any earlier copy of theirs (left by a
        driver killed between this write and the row's)."""
        tables = [t for r in rows if r["status"] == "done" and (t := self._trial_predictions(r)) is not None]
        if not tables:
            return
        fresh_ids = pa.array([t["trial_id"][0].as_py() for t in tables])
        old = self.read_predictions()
        old = old.filter(pc.invert(pc.is_in(old["trial_id"], value_set=fresh_ids)))
        with atomic_path(self.predictions_path, durable=True) as tmp:
            pq.write_table(pa.concat_tables([old, *tables]), tmp)

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        """Add rows atomically. The caller holds the RunLock, so no other writer can interleave;
        a finished (done or stopped) row for a trial that already has one is dropped (a trial is
        never counted twice).
        A done trial's predictions are written first, so a row never lacks its predictions."""
        table = self.read()
        done = {r["trial_id"] for r in table.select(["trial_id", "status"]).to_pylist()
                if r["status"] in FINISHED}
        fresh = []
        for row in rows:
            if row["status"] in FINISHED and row["trial_id"] in done:
                continue
            if row["status"] in FINISHED:
                done.add(row["trial_id"])
            fresh.append({name: _clean(row.get(name)) for name in SCHEMA.names})
        if not fresh:
            return
        self._append_predictions(fresh)
        table = pa.concat_tables([table, pa.Table.from_pylist(fresh, schema=SCHEMA)])
        with atomic_path(self.path, durable=True) as tmp:
            pq.write_table(table, tmp)

    def plan(self, trial_ids: list[str], max_failures: int) -> Plan:
        """Split trials into pending / done / gave-up from what the store already holds."""
        attempts: dict[str, int] = {}
        failures: dict[str, int] = {}
        done: set[str] = set()
        for r in self.read().select(["trial_id", "status", "error"]).to_pylist():
            attempts[r["trial_id"]] = attempts.get(r["trial_id"], 0) + 1
            if r["status"] in FINISHED:
                done.add(r["trial_id"])
            elif not (r["error"] or "").startswith(LOST):
                failures[r["trial_id"]] = failures.get(r["trial_id"], 0) + 1
        plan = Plan([], [], [], {t: attempts.get(t, 0) for t in trial_ids},
                    {t: failures.get(t, 0) for t in trial_ids})
        for t in trial_ids:
            if t in done:
                plan.done.append(t)
            elif failures.get(t, 0) > max_failures:
                plan.gave_up.append(t)
            else:
                plan.pending.append(t)
        return plan
