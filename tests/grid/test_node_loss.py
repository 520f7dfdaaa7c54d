"""A worker node lost mid-grid on a real 2-node Ray cluster (a head and a worker started with
`ray start` on 127.0.0.1, token auth): every trial ends done exactly once, the attempts lost with
the node are failed rows naming it and are not held against --max-failures (0 here), and the
terminal says which trials were lost and where they were restarted."""

from __future__ import annotations

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

from grid.result_store import read_snapshot
from grid.trials import LOST

RAY = str(Path(sys.executable).parent / "ray")
CLI = [sys.executable, "-c", "from grid.cli.run import run; run(prog_name='hcld-grid run')"]


def slow_trial(spec, experiment, *, on_epoch, artifacts_dir):
    time.sleep(1.5)  # long enough that trials are running on the worker when it is killed
    return ok_trial(spec, experiment, on_epoch=on_epoch, artifacts_dir=artifacts_dir)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster():
    """Head (1 CPU) + worker (2 CPUs, so most trials land on it) on 127.0.0.1; yields the head's
    address, the worker raylet's node-manager port and the environment; kills both after."""
    temp = tempfile.mkdtemp(prefix="hr", dir="/tmp")  # Ray's socket paths must stay short
    # Token auth as a new local cluster has it; a fresh token in the environment, so neither a
    # missing ~/.ray/auth_token nor the user's own is involved.
    env = {**cli_env("test_node_loss:slow_trial"), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    port, worker_port = free_port(), free_port()
    try:
        subprocess.run([RAY, "start", "--head", "--num-cpus=1", f"--port={port}", "--node-ip-address=127.0.0.1",
                        "--include-dashboard=false", f"--temp-dir={temp}"], env=env, check=True,
                       capture_output=True, timeout=120)
        subprocess.run([RAY, "start", f"--address=127.0.0.1:{port}", "--num-cpus=2", "--node-ip-address=127.0.0.1",
                        f"--node-manager-port={worker_port}"], env=env, check=True, capture_output=True, timeout=120)
        yield f"127.0.0.1:{port}", worker_port, env
    finally:
        subprocess.run(["pkill", "-9", "-f", temp], check=False)


def worker_raylet(node_manager_port: int) -> int:
    out = subprocess.run(["pgrep", "-f", f"raylet.*--node_manager_port={node_manager_port}"],
                         capture_output=True, text=True).stdout.split()
    assert len(out) == 1, out
    return int(out[0])


def test_a_worker_node_killed_mid_grid_costs_no_trial_and_no_retry_budget(tmp_path, data_dir, cluster):
    address, worker_port, env = cluster
    results = tmp_path / "results"
    store = results / "smoke" / "trials.parquet"
    driver = subprocess.Popen([*CLI, "smoke", "--address", address, "--max-failures", "0", "--data-dir",
                               str(data_dir), "--results-dir", str(results), "--no-dashboard"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not (store.exists() and len(read_snapshot(store)) >= 2):
        assert driver.poll() is None, driver.stdout.read()
        assert time.monotonic() < deadline
        time.sleep(0.1)
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
