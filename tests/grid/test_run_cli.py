"""`hcld-grid run` end to end: the real smoke pipeline, dedupe, kill -9 and resume, the lock.

The kill/resume test swaps the trial function for a slow fake (via $HCLD_GRID_TRIAL_FN) so the
driver can be killed mid-grid at a known point; everything else is the product's own path."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from cli_testing import cli_env, kill_9_after_rows
from click.testing import CliRunner
from test_runner import ok_trial

from grid.cli.run import run
from grid.execute import TRIAL_FN_ENV
from grid.result_store import RunLock, read_snapshot

TESTS_DIR = Path(__file__).resolve().parent
CLI = [sys.executable, "-c", "from grid.cli.run import run; run(prog_name='hcld-grid run')"]


def slow_trial(spec, experiment, *, on_epoch, artifacts_dir):
    time.sleep(0.25)
    return ok_trial(spec, experiment, on_epoch=on_epoch, artifacts_dir=artifacts_dir)


def invoke(*args):
    result = CliRunner().invoke(run, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.output


def comparable(table_rows):
    """Rows with NaN made comparable (NaN != NaN would fail equal rows)."""
    return [{k: ("nan" if v != v else v) for k, v in r.items()} for r in table_rows]


def rows(results):
    return read_snapshot(results / "smoke" / "trials.parquet").to_pylist()


def test_smoke_grid_end_to_end_then_dedupe(tmp_path, data_dir):
    results = tmp_path / "results"
    common = ["smoke", "--backbones", "cnn", "--variants", "emo_only,hcld",
              "--data-dir", data_dir, "--results-dir", results]
    code, out = invoke(*common, "--no-dashboard", "--max-failures", "0")
    assert code == 0, out
    assert "SYNTHETIC corpus (200 utterances) with fbank features" in out
    assert "2 trials, 0 already done, 2 to run" in out and "2 done, 0 failed" in out
    first = rows(results)
    assert sorted(r["variant"] for r in first) == ["emo_only", "hcld"]
    for r in first:
        assert r["status"] == "done" and r["epochs"] == 2 and r["features"] == "fbank"
        assert r["corpus"].startswith("synthetic") and r["fold_scheme"] == "random5"
        assert 0.0 <= r["emo_ua"] <= 1.0 and 0.0 <= r["emo_wa"] <= 1.0
        assert (results / "smoke" / r["artifacts"] / "result.json").is_file()
    # Same command again, even with the other executor: same trial ids, nothing scheduled.
    code, out = invoke(*common, "--executor", "local")
    assert code == 0, out
    assert "2 already done, 0 to run" in out and "nothing to run" in out
    assert comparable(rows(results)) == comparable(first)
    code, out = invoke(*common, "--dry-run")
    assert code == 0 and out.count(" done\n") == 2 and "0 would run" in out


@pytest.mark.parametrize("first, then", [("ray", "local"), ("local", "ray")])
def test_sweep_runs_under_both_executors_and_a_new_value_runs_only_new_trials(tmp_path, data_dir, first, then):
    results = tmp_path / "results"
    common = ["smoke", "--backbones", "cnn", "--variants", "emo_only,hcld", "--data-dir", data_dir,
              "--results-dir", results, "--no-dashboard", "--max-failures", "0"]
    code, out = invoke(*common, "--executor", first, "--sweep", "temperature=0.1,0.5")
    assert code == 0, out
    # emo_only does not read the temperature: 1 trial for it, 2 for hcld
    assert "3 trials, 0 already done, 3 to run" in out and "3 done, 0 failed" in out
    got = {(r["variant"], json.loads(r["config_json"])["temperature"]) for r in rows(results)}
    assert got == {("emo_only", 0.07), ("hcld", 0.1), ("hcld", 0.5)}
    code, out = invoke(*common, "--executor", then, "--sweep", "temperature=0.1,0.5,1.0", "--dry-run")
    assert code == 0, out
    assert "temperature=0.1: 2" in out and "temperature=1.0: 2" in out and "1 would run" in out
    code, out = invoke(*common, "--executor", then, "--sweep", "temperature=0.1,0.5,1.0")
    assert code == 0, out
    assert "4 trials, 3 already done, 1 to run" in out and "1 done, 0 failed" in out


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_best_val_selection_through_the_smoke_grid(tmp_path, data_dir, executor):
    import numpy as np

    results = tmp_path / "results"
    code, out = invoke("smoke", "--backbones", "cnn", "--variants", "hcld", "--executor", executor,
                       "--set", "selection=best_val", "--max-failures", "0", "--no-dashboard",
                       "--data-dir", data_dir, "--results-dir", results)
    assert code == 0, out
    (row,) = rows(results)
    assert row["status"] == "done" and row["selection"] == "best_val"
    assert row["n_val"] > 0 and row["n_train"] > 0 and row["n_train"] + row["n_val"] + row["n_test"] == 200
    assert 0.0 <= row["val_emo_ua"] <= 1.0 and 1 <= row["reported_epoch"] <= 2
    with np.load(results / "smoke" / row["artifacts"] / "predictions.npz") as npz:
        assert len(npz["utt_id"]) == row["n_test"] and npz["prob"].shape == (row["n_test"], 4)
    stored = read_snapshot(results / "smoke" / "predictions.parquet").to_pylist()  # the store took them in
    assert len(stored) == row["n_test"] and {r["trial_id"] for r in stored} == {row["trial_id"]}


def test_bad_settings_fail_at_the_door_before_any_data_work(tmp_path):
    data = tmp_path / "data"
    for args, message in ((["--set", "variant=nosuch"], "variant='nosuch': expected emo_only"),
                          (["--set", "temperature=0"], "temperature=0.0: must be > 0"),
                          (["--set", "batch_size=0"], "batch_size=0: must be >= 2"),
                          (["--set", "validation_share=1"], "validation_share=1.0: must be < 1"),
                          (["--sweep", "trunk=shared,both"], "trunk='both': expected shared | separate"),
                          (["--sweep", "nosuch=1"], "not a trial setting")):
        result = CliRunner().invoke(run, ["smoke", "--dry-run", "--data-dir", str(data), *args])
        assert result.exit_code == 2, result.output
        assert message in result.output and result.output.count("error:") == 1
    assert not data.exists()  # nothing was synthesised or extracted


@pytest.mark.parametrize("killed_executor", ["local", "ray"])
def test_kill_9_mid_grid_then_resume_loses_and_duplicates_nothing(tmp_path, data_dir,
                                                                  killed_executor):
    results = tmp_path / "results"
    store = results / "smoke" / "trials.parquet"
    args = ["smoke", "--data-dir", data_dir, "--results-dir", results]
    env = cli_env("test_run_cli:slow_trial")
    kill_9_after_rows([*CLI, *map(str, args), "--executor", killed_executor, "--no-dashboard"], env, store, 3)
    before = read_snapshot(store).to_pylist()
    assert 3 <= len(before) < 15  # killed mid-grid
    # Resume in-process: the store, not the executor, decides what is left (the Ray executor
    # resumes the same way; test_runner covers its recording).
    done = subprocess.run([*CLI, *map(str, args), "--executor", "local"], env=env, text=True,
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(before)} already done, {15 - len(before)} to run" in done.stdout
    after = read_snapshot(store).to_pylist()
    ids = [r["trial_id"] for r in after]
    assert len(ids) == len(set(ids)) == 15  # every trial once
    assert comparable(after[:len(before)]) == comparable(before)  # rows written before the kill are untouched
    assert all(r["status"] == "done" and r["attempts"] == 1 for r in after)


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_ctrl_c_keeps_finished_trials_frees_the_lock_and_says_how_to_resume(tmp_path, data_dir, executor):
    results = tmp_path / "results"
    store = results / "smoke" / "trials.parquet"
    env = cli_env("test_run_cli:slow_trial")
    proc = subprocess.Popen([*CLI, "smoke", "--executor", executor, "--no-dashboard", "--data-dir",
                             str(data_dir), "--results-dir", str(results)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while not (store.exists() and len(read_snapshot(store)) >= 2):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "interrupted:" in out and "run the same command again to resume" in out
    kept = read_snapshot(store).to_pylist()
    assert 2 <= len(kept) < 15 and all(r["status"] == "done" for r in kept)
    RunLock(results / "smoke").acquire().release()  # the lock went with the process
    try:  # Ray's worker processes, if the driver left any behind
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_failed_trials_are_recorded_and_the_exit_code_says_so(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv(TRIAL_FN_ENV, "test_runner:nan_on_orth_trial")
    results = tmp_path / "results"
    code, out = invoke("smoke", "--backbones", "cnn", "--variants", "orth,hcld", "--executor",
                       "local", "--max-failures", "1", "--data-dir", data_dir,
                       "--results-dir", results)
    assert code == 1
    assert "FAILED cnn/orth/fold0 after 2 attempt(s): TrialFailed: loss is nan" in out
    assert "1 done, 1 failed" in out
    statuses = sorted((r["variant"], r["status"], r["attempts"]) for r in rows(results))
    assert statuses == [("hcld", "done", 1), ("orth", "failed", 1), ("orth", "failed", 2)]
    code, out = invoke("smoke", "--backbones", "cnn", "--variants", "orth,hcld", "--executor",
                       "local", "--max-failures", "1", "--data-dir", data_dir,
                       "--results-dir", results)
    assert code == 1 and "1 given up" in out and "0 to run" in out  # the grid is not complete
    assert "1 trial(s) of this grid were given up (raise --max-failures to retry them)" in out


def test_a_second_run_on_the_same_results_is_refused_naming_the_holder(tmp_path, data_dir):
    results = tmp_path / "results"
    with RunLock(results / "smoke"):
        code, out = invoke("smoke", "--executor", "local", "--data-dir", data_dir,
                           "--results-dir", results)
    assert code == 2
    assert "is in use by another run" in out and f"pid {os.getpid()}" in out
    assert not (results / "smoke" / "trials.parquet").exists()


@pytest.mark.parametrize("args, message", [
    (["--set", "nosuch=1"], "--set nosuch: not a trial setting"),
    (["--set", "epochs=many"], "--set epochs=many: expected int"),
    (["--backbones", "cnn,gru"], "unknown ['gru']; known: cnn, lstm, transformer"),
    (["--features", "hubert"], "--features hubert needs --hubert-checkpoint"),
])
def test_bad_options_are_refused_clearly(tmp_path, args, message):
    code, out = invoke("smoke", *args, "--data-dir", tmp_path / "d", "--results-dir", tmp_path)
    assert code == 2 and message in out


def test_dry_run_does_no_data_work_and_says_what_a_run_would_compute(tmp_path, data_dir):
    fresh = tmp_path / "data"
    code, out = invoke("smoke", "--dry-run", "--data-dir", fresh, "--results-dir", tmp_path / "results",
                       "--sweep", "temperature=0.1,0.5")
    assert code == 0, out
    assert not fresh.exists() and not (tmp_path / "results").exists()  # nothing synthesised or extracted
    assert "write the built-in synthetic corpus (200 utterances)" in out and "extract fbank features" in out
    # 3 x (emo_only + orth + 2 x 3 readers)
    assert "cnn/emo_only/fold0" in out and "temperature=*" in out and "24 trials would run" in out
    # With the data on disk (the module's prepared corpus) it lists ids and what is done.
    invoke("smoke", "--executor", "local", "--backbones", "cnn", "--variants", "emo_only", "--data-dir", data_dir,
           "--results-dir", tmp_path / "results")
    code, out = invoke("smoke", "--dry-run", "--backbones", "cnn", "--variants", "emo_only,hcld",
                       "--data-dir", data_dir, "--results-dir", tmp_path / "results")
    assert code == 0, out
    assert "(data on disk)" in out and "2 trials: 1 done, 0 given up, 1 would run" in out
    assert "estimate: about" in out  # the done emo_only trial gives a timing for this host


def test_epochs_option_shortens_a_warm_up_that_would_cover_every_epoch():
    from grid.plan import plan_grid

    def warmups(**options):
        return {(p.config.epochs, p.config.warmup_epochs) for p in plan_grid("demo", **options).points}

    assert warmups() == {(15, 2)}
    assert warmups(epochs=2) == {(2, 0)}  # demo's 2 warm-up epochs would leave none to train
    assert warmups(epochs=3) == {(3, 2)}
    assert warmups(epochs=2, settings=("warmup_epochs=1",)) == {(2, 1)}  # an explicit --set wins


def test_address_joins_a_running_ray_cluster(tmp_path, data_dir):
    import socket

    ray_bin = Path(sys.executable).with_name("ray")
    port = 6390 + os.getpid() % 200
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", TRIAL_FN_ENV: "test_runner:ok_trial",
           "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), str(TESTS_DIR.parent), os.environ.get("PYTHONPATH", "")])}
    # --block keeps the head's processes in this process group: killing the group stops exactly
    # this cluster (`ray stop` would stop every Ray on the machine). A short temp dir: Ray's unix
    # sockets live there, and pytest's tmp_path would exceed the 107-byte socket path limit.
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    head = subprocess.Popen([str(ray_bin), "start", "--head", "--block", f"--port={port}", "--num-cpus=1",
                             "--include-dashboard=false", f"--temp-dir={ray_tmp}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert head.poll() is None, "ray start --head exited"
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "the Ray head did not open its port"
            time.sleep(0.5)
        # as the README says for a token-protected cluster (Ray's default): the token is the
        # one `ray start` left in ~/.ray/auth_token
        done = subprocess.run([*CLI, "smoke", "--backbones", "cnn", "--variants", "emo_only", "--address",
                               f"127.0.0.1:{port}", "--data-dir", str(data_dir), "--results-dir",
                               str(tmp_path / "results")], env={**env, "RAY_AUTH_MODE": "token"},
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert f"Ray: 127.0.0.1:{port}, 1 CPU" in done.stdout  # the cluster's 1 CPU, not a new local Ray
        assert "1 done, 0 failed" in done.stdout
    finally:
        try:
            os.killpg(head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        head.wait()
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_seeds_replicate_every_trial_of_the_grid(tmp_path):
    code, out = invoke("smoke", "--seeds", "2", "--dry-run", "--data-dir", tmp_path / "d", "--results-dir", tmp_path)
    assert code == 0, out
    assert "30 trials would run" in out  # smoke's 15 trials x 2 seeds
    assert "  seed=0: 15" in out and "  seed=1: 15" in out
    code, out = invoke("smoke", "--seeds", "2", "--sweep", "seed=3,4", "--dry-run", "--results-dir", tmp_path)
    assert code == 2 and "error: --seeds N and a seed of --sweep/--set both choose the seeds" in out
