"""Helpers for tests that run the CLI in a subprocess: its environment, and a driver killed with
-9 mid-run."""

import os
import signal
import subprocess
import time
from pathlib import Path

from grid.execute import TRIAL_FN_ENV
from grid.result_store import read_snapshot

TESTS_DIR = Path(__file__).resolve().parent


def cli_env(trial_fn: str) -> dict[str, str]:
    """The environment of a CLI subprocess whose trial function is `trial_fn` (module:function of
    a test module here)."""
    return {**os.environ, TRIAL_FN_ENV: trial_fn, "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")])}


def kill_9_after_rows(command: list[str], env: dict[str, str], store: Path, rows: int) -> list[dict]:
    """Start `command`, kill -9 its driver once `store` holds `rows` rows (then the Ray processes it
    left behind), and return the rows the store kept."""
    proc = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    try:
        while not (store.exists() and len(read_snapshot(store)) >= rows):
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)  # the driver only, as a user's kill -9 would
        proc.wait()
        try:  # then the Ray processes it left behind (they would exit on their own, later)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return read_snapshot(store).to_pylist()
