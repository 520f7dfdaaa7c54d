"""Both executors: rows land as trials end, failures are recorded and retried, the rest goes on.

Fake trial functions stand in for training (they are what this module tests: scheduling and
recording, not the model). Ray starts once for the module."""

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from grid import plan as grid_specs
from grid.execute import run_local
from grid.progress import Progress
from grid.result_store import ResultStore
from grid.trials import make_specs
from hcld.config import TrialResult
from hcld.errors import TrialFailed
from hcld.labels import EMOTIONS

TESTS_DIR = Path(__file__).resolve().parent


@dataclass
class FakeExperiment:
    corpus: str = "fake"
    features_name: str = "fbank"
    fold_scheme: str = "random5"
    data_key: str = "fake-data"
    emotion_names: tuple[str, ...] = EMOTIONS
    n_folds: int = 2

    def trial_data(self, fold):
        raise AssertionError("fake trials do not load data")


def _result(spec, ua):
    metrics = {"emo_wa": ua, "emo_ua": ua, "spk_wa": 0.1, "spk_ua": 0.1,
               "probe_spk_from_xe": math.nan, "probe_emo_from_xs": 0.3}
    return TrialResult(metrics, [], [], [], spec.config.epochs, 0.0, "cpu", "unused",
                       spec.config.loss_impl)


def ok_trial(spec, experiment, *, on_epoch, artifacts_dir):
    for epoch in range(spec.config.epochs):
        if on_epoch is not None:
            on_epoch({"epoch": epoch, "loss_total": 1.0 / (epoch + 1), "emo_ua": 0.25})
    (Path(artifacts_dir) / "result.json").write_text("{}")
    return _result(spec, 0.5 + 0.1 * spec.fold)


def nan_on_orth_trial(spec, experiment, *, on_epoch, artifacts_dir):
    if spec.config.variant == "orth":
        raise TrialFailed(f"loss is nan at epoch 1, batch 3 ({spec.label})")
    return ok_trial(spec, experiment, on_epoch=on_epoch, artifacts_dir=artifacts_dir)


def flaky_trial(spec, experiment, *, on_epoch, artifacts_dir):
    """Fails on its first attempt only (remembered in its artifacts folder)."""
    marker = Path(artifacts_dir) / "tried"
    if not marker.exists():
        marker.write_text("1")
        raise RuntimeError("transient worker hiccup")
    return ok_trial(spec, experiment, on_epoch=on_epoch, artifacts_dir=artifacts_dir)


def plan(tmp_path, variants=("emo_only", "orth", "hcld"), max_failures=0):
    experiment = FakeExperiment()
    store = ResultStore(tmp_path / "smoke", "smoke")
    points = grid_specs.resolve(grid_specs.GridSpec("smoke", "test", backbones=("cnn",),
                                                    variants=variants, settings={"epochs": 2}),
                                n_folds=experiment.n_folds)
    specs = make_specs(points, experiment.data_key, store)
    return experiment, store, specs


def pending(store, specs, max_failures):
    p = store.plan([s.trial_id for s in specs], max_failures)
    return [p.resumed(s) for s in specs if s.trial_id in p.pending]


def by_status(store):
    out = {}
    for r in store.rows():
        out.setdefault(r["status"], []).append(r)
    return out


# -- local executor -------------------------------------------------------------------------------


def test_local_runs_every_trial_and_records_rows(tmp_path, capsys):
    experiment, store, specs = plan(tmp_path)
    run_local(specs, experiment, store, Progress(len(specs)), trial_fn=ok_trial)
    rows = store.rows()
    assert sorted(r["trial_id"] for r in rows) == sorted(s.trial_id for s in specs)
    r = next(r for r in rows if r["fold"] == 1)
    assert r["status"] == "done" and r["emo_ua"] == pytest.approx(0.6)
    assert r["corpus"] == "fake" and r["features"] == "fbank" and r["attempts"] == 1
    assert r["artifacts"] == f"trials/{r['trial_id']}"
    assert (store.folder / r["artifacts"] / "result.json").exists()
    out = capsys.readouterr().out
    assert "[6/6] done" in out and "best emo_ua 60.0%" in out
    assert "epoch" not in out  # per-epoch lines only when asked for


def test_local_epoch_lines_show_each_epoch(tmp_path, capsys):
    experiment, store, specs = plan(tmp_path, variants=("hcld",))
    run_local(specs[:1], experiment, store, Progress(1), trial_fn=ok_trial, epoch_lines=True)
    out = capsys.readouterr().out
    assert "cnn/hcld/fold0 epoch 0: loss_total 1, emo_ua 0.25" in out
    assert "cnn/hcld/fold0 epoch 1: loss_total 0.5, emo_ua 0.25" in out


def test_progress_lines_name_the_swept_values_of_each_trial(tmp_path, capsys):
    experiment = FakeExperiment()
    store = ResultStore(tmp_path / "swept", "swept")
    sweeps = {"temperature": (0.07, 0.5)}
    points = grid_specs.resolve(grid_specs.GridSpec("swept", "test", backbones=("cnn",),
                                                    variants=("emo_only", "hcld"), settings={"epochs": 2},
                                                    folds=(0,), sweeps=sweeps),
                                n_folds=experiment.n_folds)
    specs = make_specs(points, experiment.data_key, store, sweeps)
    run_local(specs, experiment, store, Progress(len(specs)), trial_fn=ok_trial)
    done = [line for line in capsys.readouterr().out.splitlines() if "] done" in line]
    assert len(done) == 3  # emo_only does not read the temperature: one trial serves both values
    assert any("cnn/hcld/fold0 temperature=0.07 " in line for line in done)
    assert any("cnn/hcld/fold0 temperature=0.5 " in line for line in done)
    assert any("cnn/emo_only/fold0 temperature=* " in line for line in done)


def test_local_failure_is_recorded_retried_and_the_grid_goes_on(tmp_path):
    experiment, store, specs = plan(tmp_path)
    progress = Progress(len(specs))
    run_local(specs, experiment, store, progress, trial_fn=nan_on_orth_trial, max_failures=1)
    status = by_status(store)
    assert len(status["done"]) == 4
    failed = status["failed"]
    assert len(failed) == 2 * 2  # 2 orth trials x (1 attempt + 1 retry)
    assert {r["variant"] for r in failed} == {"orth"}
    assert sorted(r["attempts"] for r in failed) == [1, 1, 2, 2]
    assert all("TrialFailed: loss is nan at epoch 1, batch 3" in r["error"] for r in failed)
    assert all(r["emo_ua"] is None for r in failed)
    assert (progress.done, progress.failed) == (4, 2)
    # A re-run gives up on them: their budget (1 + max_failures attempts) is spent.
    assert pending(store, specs, max_failures=1) == []
    assert len(pending(store, specs, max_failures=2)) == 2


def test_local_retry_recovers_a_flaky_trial(tmp_path):
    experiment, store, specs = plan(tmp_path, variants=("hcld",))
    run_local(specs, experiment, store, Progress(len(specs)), trial_fn=flaky_trial, max_failures=1)
    rows = store.rows()
    assert [(r["status"], r["attempts"]) for r in rows if r["fold"] == 0] == \
        [("failed", 1), ("done", 2)]


# -- Ray executor ---------------------------------------------------------------------------------


def _start_ray(**resources):
    """A Ray of this test's own: address="local" never joins a cluster left by `ray start` or
    named by RAY_ADDRESS (a plain ray.init() would)."""
    import ray

    ray.init(address="local", include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(TESTS_DIR), str(TESTS_DIR.parent)])}},
             **resources)
    return ray


@pytest.fixture(scope="module")
def ray_session():
    ray = _start_ray(num_cpus=2)
    yield ray
    ray.shutdown()


def timed_trial(spec, experiment, *, on_epoch, artifacts_dir):
    """Sleeps 1.5 s and notes when it ran, so a test can see how many trials overlapped."""
    import time

    start = time.time()
    time.sleep(1.5)
    (Path(artifacts_dir) / "span.json").write_text(json.dumps([start, time.time()]))
    return ok_trial(spec, experiment, on_epoch=on_epoch, artifacts_dir=artifacts_dir)


def test_ray_runs_the_grid_and_writes_rows_as_trials_finish(tmp_path, ray_session, capsys):
    from grid.execute import run_ray

    experiment, store, specs = plan(tmp_path)
    seen = []
    original = store.append

    def spy(rows):  # rows must be written one trial at a time, not at the end
        original(rows)
        seen.append(len(store.rows()))

    store.append = spy
    run_ray(specs, experiment, store, Progress(len(specs)), trial_fn="test_runner:ok_trial")
    assert seen == list(range(1, len(specs) + 1))
    rows = store.rows()
    assert sorted(r["trial_id"] for r in rows) == sorted(s.trial_id for s in specs)
    assert all(r["status"] == "done" and r["device"] == "cpu" for r in rows)
    assert {round(r["emo_ua"], 3) for r in rows} == {0.5, 0.6}
    # Tune saw where the trial runs, one report per epoch, then the outcome, each naming the node,
    # in short per-trial folders under ray/.
    for spec in specs:
        (trial_dir,) = (store.folder / "ray").glob(f"run-*/{spec.trial_id}")
        reports = [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()]
        assert [r.get("epoch") for r in reports] == [None, 0, 1, None]
        assert reports[0]["hcld_started"] == 1 and reports[-1]["hcld_final"] == 1
        assert len({r["hcld_node"] for r in reports}) == 1
    assert "[6/6] done" in capsys.readouterr().out


def test_ray_failure_is_recorded_retried_and_the_grid_goes_on(tmp_path, ray_session):
    from grid.execute import run_ray

    experiment, store, specs = plan(tmp_path)
    progress = Progress(len(specs))
    run_ray(specs, experiment, store, progress, trial_fn="test_runner:nan_on_orth_trial",
            max_failures=1)
    status = by_status(store)
    assert len(status["done"]) == 4
    failed = status["failed"]
    assert sorted((r["fold"], r["attempts"]) for r in failed) == [(0, 1), (0, 2), (1, 1), (1, 2)]
    assert all("loss is nan at epoch 1, batch 3" in r["error"] for r in failed)
    assert (progress.done, progress.failed) == (4, 2)


def test_ray_retry_budget_counts_attempts_of_earlier_runs(tmp_path, ray_session):
    from grid.execute import run_ray

    experiment, store, specs = plan(tmp_path, variants=("orth",))
    run_local(specs[:1], experiment, store, Progress(1), trial_fn=nan_on_orth_trial)  # 1 attempt
    todo = pending(store, specs, max_failures=2)
    assert [s.attempts_before for s in todo] == [1, 0]
    run_ray(todo, experiment, store, Progress(len(todo)), trial_fn="test_runner:nan_on_orth_trial",
            max_failures=2)
    attempts = {}
    for r in store.rows():
        attempts.setdefault(r["fold"], []).append(r["attempts"])
    assert attempts == {0: [1, 2, 3], 1: [1, 2, 3]}


def test_ray_refuses_gpus_on_a_cluster_without_gpu(tmp_path, ray_session):
    from grid.execute import run_ray
    from hcld.errors import HcldError

    experiment, store, specs = plan(tmp_path)
    with pytest.raises(HcldError, match="no GPU; use --gpus-per-trial 0"):
        run_ray(specs, experiment, store, Progress(len(specs)), trial_fn="test_runner:ok_trial",
                gpus_per_trial=0.25)
    assert not store.path.exists()


def test_dashboard_lines_give_the_url_and_token_steps():
    from grid.execute import RaySession

    lines = "\n".join(RaySession("local", "http://127.0.0.1:8265", True, 2, 0).describe())
    assert "Ray dashboard: http://127.0.0.1:8265" in lines
    assert "`ray get-auth-token`" in lines and "ssh -L 8265:127.0.0.1:8265" in lines
    off = RaySession("auto", None, True, 2, 0).describe()
    assert off[-1] == "Ray dashboard: off"


def test_ray_packs_four_quarter_gpu_trials_on_one_logical_gpu(tmp_path, ray_session):
    """--gpus-per-trial 0.25: Ray may declare logical GPUs on a CPU machine, so the packing the
    README sells (four trials per GPU) is checked here by when the trials ran."""
    from grid.execute import run_ray

    ray_session.shutdown()
    _start_ray(num_cpus=4, num_gpus=1)
    try:
        experiment, store, specs = plan(tmp_path, variants=("emo_only", "hcld"))
        run_ray(specs, experiment, store, Progress(len(specs)), trial_fn="test_runner:timed_trial",
                cpus_per_trial=1.0, gpus_per_trial=0.25)
        spans = [json.loads((Path(s.artifacts_dir) / "span.json").read_text()) for s in specs]
        most = max(sum(1 for a, b in spans if a <= t < b) for t, _ in spans)
        assert len(store.rows()) == 4 and most == 4  # all four at once on the one GPU
    finally:
        ray_session.shutdown()
        _start_ray(num_cpus=2)  # the module's session, for the tests after this one


def test_the_store_callback_pickles_for_a_ray_client_head(tmp_path):
    """With --address ray://... Tune's loop, callbacks included, runs on the head node."""
    import cloudpickle

    from grid.execute import _store_callback_class

    experiment, store, specs = plan(tmp_path)
    callback = _store_callback_class()({s.trial_id: s for s in specs}, experiment, store, Progress(len(specs)))
    clone = cloudpickle.loads(cloudpickle.dumps(callback))
    assert clone.store.path == store.path and set(clone.by_id) == {s.trial_id for s in specs}


def test_save_models_is_not_in_the_trial_id_and_search_trials_keep_none(tmp_path):
    import dataclasses

    store = ResultStore(tmp_path / "smoke", "smoke")
    points = grid_specs.resolve(grid_specs.GridSpec("smoke", "test", backbones=("cnn",), variants=("hcld",)),
                                n_folds=5)
    search = [dataclasses.replace(p, config=dataclasses.replace(p.config, evaluate_test=False, selection="best_val"),
                                  stage="search", draw=0) for p in points]
    plain, kept = make_specs(points, "k", store), make_specs(points, "k", store, save_models=True)
    assert [s.trial_id for s in plain] == [s.trial_id for s in kept]  # a finished trial is not run again
    assert not any(s.save_model for s in plain) and all(s.save_model for s in kept)
    assert not any(s.save_model for s in make_specs(search, "k", store, save_models=True))  # never saw the test fold
