"""A worker node lost mid-grid on a real 2-node Ray cluster (a head and a worker started with
`ray start` on 127.0.0.1, token auth): every trial ends done exactly once, the attempts lost with
the node are failed rows naming it and are not held against --max-failures (0 here), and the
terminal says which trials were lost and where they were restarted. And a worker node that joins
mid-grid takes trials."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from cli_testing import cli_env
from test_runner import ok_trial

from grid.execute import TRIAL_FN_ENV
from grid.result_store import read_snapshot
from grid.trials import LOST

RAY = str(Path(sys.executable).parent / "ray")
CLI = [sys.executable, "-c", "from grid.cli.run import run; run(prog_name='hcld-grid run')"]


def slow_trial(spec, experiment, *, on_epoch, artifacts_dir):
    time.sleep(1.5)  # long enough that trials are running on the worker when it is killed
    return ok_trial(spec, experiment, on_epoch=on_epoch, artifacts_dir=artifacts_dir)


def slower_trial(spec, experiment, *, on_epoch, artifacts_dir):
    time.sleep(3.0)  # the head alone would need 45 s: a node joining after 2 rows finds trials left
    return ok_trial(spec, experiment, on_epoch=on_epoch, artifacts_dir=artifacts_dir)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A Ray cluster of this machine's processes: a head of 1 CPU, and worker nodes of 2 CPUs
    (so most trials land on them) joined with `ray start --address`, all on 127.0.0.1."""

    def __init__(self):
        self.temp = tempfile.mkdtemp(prefix="hr", dir="/tmp")  # Ray's socket paths must stay short
        # Token auth as a new local cluster has it; a fresh token in the environment, so neither a
        # missing ~/.ray/auth_token nor the user's own is involved.
        self.env = {**cli_env("test_node_loss:slow_trial"), "RAY_AUTH_MODE": "token",
                    "RAY_AUTH_TOKEN": secrets.token_hex(32)}
        self.address = f"127.0.0.1:{free_port()}"
        self._ray("start", "--head", "--num-cpus=1", f"--port={self.address.split(':')[1]}",
                  "--node-ip-address=127.0.0.1", "--include-dashboard=false", f"--temp-dir={self.temp}")

    def _ray(self, *args: str) -> None:
        subprocess.run([RAY, *args], env=self.env, check=True, capture_output=True, timeout=120)

    def add_worker(self) -> int:
        """Join a worker node; its raylet's node-manager port (to find and kill it)."""
        port = free_port()
        self._ray("start", f"--address={self.address}", "--num-cpus=2", "--node-ip-address=127.0.0.1",
                  f"--node-manager-port={port}")
        return port

    def close(self) -> None:
        subprocess.run(["pkill", "-9", "-f", self.temp], check=False)  # every process of this cluster


@pytest.fixture
def cluster():
    made = Cluster()
    try:
        yield made
    finally:
        made.close()


def start_grid(cluster: Cluster, tmp_path: Path, data_dir: Path,
               trial_fn: str = "test_node_loss:slow_trial") -> tuple[subprocess.Popen, Path]:
    results = tmp_path / "results"
    driver = subprocess.Popen([*CLI, "smoke", "--address", cluster.address, "--max-failures", "0", "--data-dir",
                               str(data_dir), "--results-dir", str(results), "--no-dashboard"],
                              env={**cluster.env, TRIAL_FN_ENV: trial_fn}, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    return driver, results / "smoke" / "trials.parquet"


def wait_for_rows(driver: subprocess.Popen, store: Path, rows: int) -> None:
    deadline = time.monotonic() + 120
    while not (store.exists() and len(read_snapshot(store)) >= rows):
        assert driver.poll() is None, driver.stdout.read()
        assert time.monotonic() < deadline
        time.sleep(0.1)


def worker_raylet(node_manager_port: int) -> int:
    out = subprocess.run(["pgrep", "-f", f"raylet.*--node_manager_port={node_manager_port}"],
                         capture_output=True, text=True).stdout.split()
    assert len(out) == 1, out
    return int(out[0])


def test_a_worker_node_killed_mid_grid_costs_no_trial_and_no_retry_budget(tmp_path, data_dir, cluster):
    worker_port = cluster.add_worker()
    driver, store = start_grid(cluster, tmp_path, data_dir)
    wait_for_rows(driver, store, 2)
    os.kill(worker_raylet(worker_port), signal.SIGKILL)  # the node dies: its raylet and so its workers
    out, _ = driver.communicate(timeout=150)
    assert driver.returncode == 0, out

    rows = read_snapshot(store).to_pylist()
    done = [r["trial_id"] for r in rows if r["status"] == "done"]
    assert len(done) == len(set(done)) == 15  # every trial once, none lost, none twice
    lost = [r for r in rows if r["status"] == "failed"]
    assert lost, "no trial was running on the worker when it was killed"
    for r in lost:
        assert r["error"].startswith(LOST) and re.search(r"node [0-9a-f]{12}", r["error"]), r["error"]
    [lost_node] = {re.search(r"node ([0-9a-f]{12})", r["error"]).group(1) for r in lost}  # one node was lost
    for r in lost:  # each lost trial said so, and where it went on
        label = re.escape(f"{r['backbone']}/{r['variant']}/fold{r['fold']}")
        assert re.search(rf"lost   {label} with (its worker on )?node {lost_node}", out), out
        moved = re.search(rf"moved  {label}: restarted on node ([0-9a-f]{{12}})", out)
        assert moved and moved.group(1) != lost_node, out
    assert "15 done, 0 failed" in out


def test_a_worker_node_that_joins_mid_grid_takes_trials(tmp_path, data_dir, cluster):
    driver, store = start_grid(cluster, tmp_path, data_dir, "test_node_loss:slower_trial")  # the head: 1 at a time
    wait_for_rows(driver, store, 2)
    cluster.add_worker()
    out, _ = driver.communicate(timeout=150)
    assert driver.returncode == 0, out
    rows = read_snapshot(store).to_pylist()
    assert sorted(r["status"] for r in rows) == ["done"] * 15  # nothing lost, nothing twice
    # Where each trial ran: every report of a trial names its node (Tune's result.json per trial).
    nodes = {}
    for path in (store.parent / "ray").glob("run-*/*/result.json"):
        reports = [json.loads(line) for line in path.read_text().splitlines()]
        nodes[path.parent.name] = reports[-1]["hcld_node"]
    assert len(nodes) == 15 and len(set(nodes.values())) == 2  # the new node took some of the trials
