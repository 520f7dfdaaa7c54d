"""`hcld-grid tune`: equal budgets, seeded draws, selection on validation only, both executors,
kill -9 and resume, and the tune's report.

The end-to-end tests run the real smoke pipeline (tiny models, 200 synthetic utterances); the
kill/resume test swaps the trial function for a slow fake (via $HCLD_GRID_TRIAL_FN) so the driver
can be killed mid-tune at a known point."""

import json
import math
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from cli_testing import cli_env, kill_9_after_rows
from click.testing import CliRunner

from grid.cli.tune import tune, tune_state
from grid.execute import TRIAL_FN_ENV, run_local
from grid.plan import plan_grid
from grid.progress import Progress
from grid.report import build_report
from grid.report.stats import expected_max
from grid.result_store import ResultStore
from grid.tune import (
    SEARCH_SPACE,
    TPE_BATCH,
    TPE_STARTUP,
    UNFINISHED,
    draw,
    plan_tune,
    search_config,
    searched_knobs,
    tpe_batch,
)
from hcld.config import TrialConfig, TrialData, TrialResult
from hcld.labels import EMOTIONS
from hcld.losses.variants import unused_settings

TESTS_DIR = Path(__file__).resolve().parent
CLI = [sys.executable, "-c", "from grid.cli.tune import tune; tune(prog_name='hcld-grid tune')"]
VARIANTS = "emo_only,hcld"


def invoke(*args):
    result = CliRunner().invoke(tune, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.output


def store_rows(results, grid="smoke"):
    return pq.read_table(results / f"{grid}-tune" / "trials.parquet").to_pylist()


# -- the plan: budgets and draws ---------------------------------------------------------------------


def test_dry_run_lists_the_same_budget_for_every_variant_and_the_trial_counts(tmp_path):
    code, out = invoke("smoke", "--budget", 3, "--dry-run", "--data-dir", tmp_path / "data",
                       "--results-dir", tmp_path / "results")
    assert code == 0, out
    lines = [line.split() for line in out.splitlines() if line.split()[:1] in (["cnn"], ["lstm"], ["transformer"])]
    assert len(lines) == 15  # 3 backbones x 5 variants of the smoke grid
    for _backbone, variant, budget, folds, search, done, finals, final_done, *_ in lines:
        assert (budget, folds, search, done, finals, final_done) == ("3", "1", "3", "0", "1", "0"), variant
    assert "45 search trials (3 per group, 15 groups), 15 final trials (1 per group)" in out
    assert not (tmp_path / "data").exists()  # a dry run prepares nothing


def test_draws_are_seeded_in_range_and_shared_by_every_variant_that_reads_a_knob():
    assert draw(3) == draw(3) and draw(3) != draw(4) and draw(3, seed=1) != draw(3)
    for knob in SEARCH_SPACE:
        values = [draw(i)[knob.name] for i in range(50)]
        assert all(knob.low <= v <= knob.high for v in values) and len(set(values)) > 40, knob.name
    hcld = search_config(TrialConfig(variant="hcld"), 5)
    emo = search_config(TrialConfig(variant="emo_only"), 5)
    assert (hcld.lr, hcld.weight_decay) == (emo.lr, emo.weight_decay) == (draw(5)["lr"], draw(5)["weight_decay"])
    # a variant searches exactly the knobs it reads; the others stay at their defaults
    assert [k.name for k in searched_knobs(emo)] == ["lr", "weight_decay"]
    assert emo.temperature == TrialConfig().temperature and emo.weight_icld == 1.0
    assert {k.name for k in searched_knobs(hcld)} == {k.name for k in SEARCH_SPACE} - unused_settings(hcld)
    assert hcld.selection == "best_val" and not hcld.evaluate_test and hcld.seed == 0


def test_a_grid_that_sweeps_settings_is_refused_and_budgets_must_be_positive():
    from hcld.errors import HcldError

    with pytest.raises(HcldError, match="sweeps temperature, trunk"):
        plan_tune(plan_grid("readings", seeds=1), budget=3, seeds=1)
    with pytest.raises(HcldError, match="--budget 0"):
        plan_tune(plan_grid("smoke", seeds=1), budget=0, seeds=1)


# -- selection reads validation only -----------------------------------------------------------------


@dataclass
class ToyExperiment:
    """Separable toy data with the smoke grid's one fold; `shift_test_labels` relabels the test rows."""

    shift_test_labels: int = 0
    corpus: str = "toy"
    features_name: str = "toy"
    fold_scheme: str = "random5"
    data_key: str = "toy-data"
    emotion_names: tuple[str, ...] = EMOTIONS

    def trial_data(self, fold):
        rng = np.random.default_rng(0)
        n = 120
        emotion = np.tile(np.arange(4), n // 4)
        speaker = rng.integers(0, 4, n)
        x = rng.normal(size=(n, 16, 12)).astype(np.float32)
        x[np.arange(n), :, emotion] += 1.0
        x[np.arange(n), :, 4 + speaker] += 1.0
        test = np.arange(n) % 5 == fold
        emotion = emotion.copy()
        emotion[test] = (emotion[test] + self.shift_test_labels) % 4
        return TrialData(features=x, emotion=emotion, speaker=speaker, train_idx=np.flatnonzero(~test),
                         test_idx=np.flatnonzero(test), speaker_names=[f"s{i}" for i in range(4)],
                         utt_ids=[f"u{i}" for i in range(n)])


def _search_and_choose(tmp_path, experiment):
    grid = plan_grid("smoke", backbones=["cnn"], variants=["emo_only", "hcld"], seeds=1,
                     settings=["epochs=3", "threads=1", "batch_size=16"])
    plan = plan_tune(grid, budget=3, seeds=1, scheduler="none")
    store = ResultStore(tmp_path, "smoke")
    specs = tune_state(plan, experiment.data_key, store, 0).search
    run_local(specs, experiment, store, Progress(len(specs)))
    state = tune_state(plan, experiment.data_key, store, 0)
    search_rows = {r["trial_id"]: r for r in store.rows()}
    return state, [search_rows[s.trial_id] for s in specs]


def test_the_choices_of_a_fold_do_not_change_when_its_test_labels_change(tmp_path):
    state, rows = _search_and_choose(tmp_path / "a", ToyExperiment())
    relabelled, rows_b = _search_and_choose(tmp_path / "b", ToyExperiment(shift_test_labels=1))
    chosen = [(c.draw, c.score, c.config) for c in state.choices]
    assert all(c is not None for c in state.choices)
    assert chosen == [(c.draw, c.score, c.config) for c in relabelled.choices]
    for a, b in zip(rows, rows_b):  # the search rows are equal too, and hold no test number
        assert (a["trial_id"], a["val_emo_ua"], a["reported_epoch"]) == (b["trial_id"], b["val_emo_ua"],
                                                                         b["reported_epoch"])
        assert math.isnan(a["emo_ua"]) and math.isnan(a["spk_ua"]) and a["stage"] == "search"
    # a choice is the best validation score of its group, ties to the lowest draw
    for group, choice in zip(state.search_ids, state.choices):
        scores = [next(r["val_emo_ua"] for r in rows if r["trial_id"] == t) for t in group]
        assert choice.draw == scores.index(max(scores))
    # the finals' configs are the chosen ones, retrained on everything and tested
    assert [s.config for s in state.finals] == [c.config.replace(selection="final", evaluate_test=True)
                                                for c in state.choices]


# -- end to end -----------------------------------------------------------------------------------


def _check_tune_rows(rows, budget, groups, seeds):
    search = [r for r in rows if r["stage"] == "search"]
    finals = [r for r in rows if r["stage"] == "final"]
    assert len(search) == budget * groups and len(finals) == groups * seeds
    assert all(r["status"] in ("done", "stopped") for r in search)
    assert all(math.isnan(r["emo_ua"]) and not math.isnan(r["val_emo_ua"]) for r in search)
    assert all(r["status"] == "done" and r["selection"] == "final" and not math.isnan(r["emo_ua"]) for r in finals)
    assert all(r["outer_fold"] == r["fold"] == 0 for r in rows)
    for final in finals:
        group = [r for r in search if r["variant"] == final["variant"] and r["backbone"] == final["backbone"]]
        best = max(group, key=lambda r: (r["val_emo_ua"], -r["draw"]))
        assert final["draw"] == best["draw"]
        chosen = json.loads(best["config_json"])
        got = json.loads(final["config_json"])
        assert {k.name: got[k.name] for k in SEARCH_SPACE} == {k.name: chosen[k.name] for k in SEARCH_SPACE}
    return search, finals


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_a_tiny_tune_runs_end_to_end_and_reports(tmp_path, data_dir, executor):
    results = tmp_path / "results"
    code, out = invoke("smoke", "--budget", 3, "--backbones", "cnn", "--variants", VARIANTS, "--epochs", 4,
                       "--executor", executor, "--no-dashboard", "--data-dir", data_dir, "--results-dir", results)
    assert code == 0, out
    assert "2/2 groups chosen; finals 2/2 done" in out
    search, finals = _check_tune_rows(store_rows(results), budget=3, groups=2, seeds=1)
    predictions = pq.read_table(results / "smoke-tune" / "predictions.parquet").to_pylist()
    assert {p["trial_id"] for p in predictions} == {r["trial_id"] for r in finals}  # search trials predict nothing
    if executor == "ray":  # ASHA by default under Ray: stopped trials are finished rows, with fewer epochs
        assert "early stopping: ASHA per group on val_emo_ua" in out
        assert all(r["epochs_run"] < 4 for r in search if r["status"] == "stopped")
        assert all(r["epochs_run"] == 4 for r in search if r["status"] == "done")
    else:
        assert all(r["status"] == "done" and r["epochs_run"] == 4 for r in search)

    report = build_report(results, "smoke-tune")
    assert {"table2", "sensitivity", "chosen", "compute", "expected_max"} <= set(report.tables)
    em = report.tables["expected_max"]
    for variant in ("emo_only", "hcld"):
        scores = [r["val_emo_ua"] for r in search if r["variant"] == variant]
        line = em.filter(em["variant"] == variant).sort("n")
        assert line["n"].to_list() == [1, 2, 3]
        assert line["expected_best"].to_list() == pytest.approx([100 * expected_max(scores, n) for n in (1, 2, 3)])
    compute = report.tables["compute"]
    assert compute["full"].sum() == 6 * 4 and compute["epochs_run"].sum() == sum(r["epochs_run"] for r in search)
    table2 = report.tables["table2"]
    assert sorted(table2["variant"].to_list()) == ["emo_only", "hcld"]  # the finals, not the search rows
    # a re-run does nothing and chooses the same way
    code, again = invoke("smoke", "--budget", 3, "--backbones", "cnn", "--variants", VARIANTS, "--epochs", 4,
                         "--executor", "local", "--scheduler", "none", "--data-dir", data_dir,
                         "--results-dir", results)
    assert code == 0 and "6 finished or given up, 0 to run" in again and "2 finished or given up, 0 to run" in again
    assert len(store_rows(results)) == 8


def test_asha_needs_the_ray_executor(tmp_path):
    code, out = invoke("smoke", "--budget", 2, "--executor", "local", "--scheduler", "asha", "--dry-run",
                       "--data-dir", tmp_path, "--results-dir", tmp_path)
    assert code == 2 and "--scheduler asha runs in Ray Tune" in out


def slow_val_trial(spec, experiment, *, on_epoch, artifacts_dir):
    time.sleep(0.25)
    return fast_val_trial(spec, experiment, on_epoch=on_epoch, artifacts_dir=artifacts_dir)


def fast_val_trial(spec, experiment, *, on_epoch, artifacts_dir):
    """A fake trial: validation scores from the config's lr (search), test scores for a final."""
    score = 0.3 + 100 * spec.config.lr  # lr in [1e-4, 3e-3]: 0.31 .. 0.6
    nan = math.nan
    metrics = {"emo_wa": nan, "emo_ua": nan, "spk_wa": nan, "spk_ua": nan, "probe_spk_from_xe": nan,
               "probe_emo_from_xs": nan, "val_emo_wa": score, "val_emo_ua": score}
    if spec.config.evaluate_test:
        metrics |= {"emo_wa": score, "emo_ua": score, "val_emo_wa": nan, "val_emo_ua": nan}
    curves = [{"epoch": e + 1, "val_emo_ua": score} for e in range(spec.config.epochs)]
    (Path(artifacts_dir) / "result.json").write_text("{}")
    return TrialResult(metrics, curves, [], [], spec.config.epochs, 0.0, "cpu", "unused", "torch")


@pytest.mark.parametrize("killed_executor", ["local", "ray"])
def test_kill_9_mid_tune_then_resume_loses_and_repeats_no_trial(tmp_path, data_dir, killed_executor):
    results = tmp_path / "results"
    store = results / "smoke-tune" / "trials.parquet"
    args = ["smoke", "--budget", 3, "--backbones", "cnn", "--data-dir", data_dir, "--results-dir", results,
            "--scheduler", "none"]
    env = cli_env("test_tune:slow_val_trial")
    before = kill_9_after_rows([*CLI, *map(str, args), "--executor", killed_executor, "--no-dashboard"], env,
                               store, 3)
    assert 3 <= len(before) < 15  # killed in the search stage (5 variants x 3 draws)
    done = subprocess.run([*CLI, *map(str, args), "--executor", "local"], env=env, text=True,
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(before)} finished or given up, {15 - len(before)} to run" in done.stdout
    after = pq.read_table(store).to_pylist()
    ids = [r["trial_id"] for r in after]
    assert len(ids) == len(set(ids)) == 15 + 5  # every search and final trial once
    assert [r["trial_id"] for r in after[:len(before)]] == [r["trial_id"] for r in before]
    _check_tune_rows(after, budget=3, groups=5, seeds=1)
    # the fake's score grows with lr: every group chose its draw of highest lr
    lrs = [draw(i)["lr"] for i in range(3)]
    assert {r["draw"] for r in after if r["stage"] == "final"} == {lrs.index(max(lrs))}


# -- --search tpe ------------------------------------------------------------------------------------


def test_tpe_proposals_are_a_function_of_seed_and_history_and_stay_in_range():
    knobs = searched_knobs(TrialConfig(variant="hcld"))
    history = [({k.name: draw(i)[k.name] for k in knobs}, 0.3 + 0.05 * i) for i in range(4)]
    a = tpe_batch(knobs, history, 4, 4, seed=0)
    assert a == tpe_batch(knobs, history, 4, 4, seed=0)  # replayed after a kill: the same batch
    assert a != tpe_batch(knobs, history[:3] + [(history[3][0], 0.0)], 4, 4, seed=0)  # the scores matter
    assert a != tpe_batch(knobs, history, 4, 4, seed=1)
    assert len({json.dumps(p, sort_keys=True) for p in a}) == 4  # constant liar: four distinct proposals
    for proposal in a:
        assert set(proposal) == {k.name for k in knobs}
        for k in knobs:
            assert k.low <= proposal[k.name] <= k.high and proposal[k.name] == float(f"{proposal[k.name]:.3g}")


def test_tpe_proposes_a_batch_only_when_the_draws_before_it_have_finished():
    plan = plan_tune(plan_grid("smoke", backbones=["cnn"], variants=["hcld"], seeds=1), budget=10, seeds=1,
                     scheduler="none", searcher="tpe")
    group = plan.groups[0]
    waiting = plan.search_points(group, lambda p: UNFINISHED if p.draw == 2 else 0.5)
    assert [p.draw for p in waiting] == list(range(TPE_STARTUP))
    assert [p.config for p in waiting] == [search_config(group.base.config, i) for i in range(TPE_STARTUP)]
    scores = {}
    points = plan.search_points(group, lambda p: scores.setdefault(p.config, 0.3 + 0.01 * len(scores)))
    assert [p.draw for p in points] == list(range(10)) and TPE_STARTUP + TPE_BATCH < 10
    assert all(p.stage == "search" and not p.config.evaluate_test for p in points)
    again = plan.search_points(group, lambda p: scores[p.config])
    assert again == points  # the same history gives the same proposals


def test_a_tpe_tune_runs_its_batches_then_resumes_without_re_proposing(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv(TRIAL_FN_ENV, "test_tune:fast_val_trial")
    results = tmp_path / "results"
    args = ["smoke", "--budget", 10, "--backbones", "cnn", "--variants", VARIANTS, "--search", "tpe",
            "--executor", "local", "--data-dir", data_dir, "--results-dir", results]
    code, out = invoke(*args)
    assert code == 0, out
    # the 4 startup draws, then TPE batches of 4 and 2, then the stage's summary
    assert out.count("search (validation only):") == 4 and "20 trials known, 20 finished or given up, 0 to run" in out
    search, finals = _check_tune_rows(store_rows(results), budget=10, groups=2, seeds=1)
    for variant in ("emo_only", "hcld"):
        draws = sorted(r["draw"] for r in search if r["variant"] == variant)
        assert draws == list(range(10))
    code, again = invoke(*args)
    assert code == 0 and "20 trials known, 20 finished or given up, 0 to run" in again
    assert len(store_rows(results)) == 22
