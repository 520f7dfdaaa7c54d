"""`hcld-grid tune GRID --budget N`: the same tuning budget for every variant, chosen on validation
only (grid.tune), then the chosen configurations retrained and tested; resumable like `run`.

Two stages, one command: the search trials of every group (backbone x variant x outer fold), then,
for every group whose search has finished, the chosen configuration's final trials. Both stages go
through the content-addressed store of RESULTS_DIR/GRID-tune/, so a killed tune re-run with the
same command skips every finished trial and, its draws being seeded, chooses the same way."""

from __future__ import annotations

import math
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import click

from grid.cli.options import input_errors
from grid.cli.run import (
    RunOptions,
    echo_data,
    grid_options,
    inspect_data,
    plan_of,
    prepare_data,
    replan_for,
    trackers_of,
)
from grid.execute import TRIAL_FN_ENV, EarlyStopping, run_pending
from grid.progress import Progress
from grid.result_store import ResultStore, RunLock
from grid.trials import FINISHED, TrialSpec, code_version, make_specs, trial_id
from grid.tune import (
    SCHEDULERS,
    SEARCH_SPACE,
    SEARCHERS,
    SELECTION_METRIC,
    UNFINISHED,
    Choice,
    TunePlan,
    plan_tune,
    search_config,
    searched_knobs,
    select,
)
from hcld.errors import HcldError

TUNE_SUFFIX = "-tune"  # RESULTS_DIR/GRID-tune/: a tune's store, apart from the grid's own


def tune_folder(results_dir: Path, grid: str) -> Path:
    return Path(results_dir) / f"{grid}{TUNE_SUFFIX}"


@click.command(context_settings={"max_content_width": 100})
@grid_options
@click.option("--budget", type=click.IntRange(min=1), default=12, show_default=True, metavar="N",
              help="Configurations searched per backbone x variant x outer fold: the same N for every variant.")
@click.option("--seeds", type=click.IntRange(min=1), metavar="S",
              help="Seeds of each final retrain (default: the grid's seeds).")
@click.option("--search", type=click.Choice(SEARCHERS), default="random", show_default=True,
              help="How configurations are drawn: random = seeded uniform draws of the search space "
                   "(grid.tune.SEARCH_SPACE), the same draws on every re-run; tpe = the first 4 draws as random, "
                   "then batches of 4 proposed by Optuna's TPE sampler from the finished ones (needs optuna: "
                   "pip install -e '.[tune]').")
@click.option("--search-seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the draws.")
@click.option("--scheduler", type=click.Choice(SCHEDULERS),
              help="asha: Ray Tune's ASHAScheduler stops weak search trials early, on the per-epoch "
                   "validation UA, within each backbone x variant x fold; none: every search trial runs all "
                   "its epochs. Default: asha with the Ray executor, none with local.")
@click.option("--dry-run", is_flag=True,
              help="List the budget per variant, the search and final trials, and what is done; run nothing.")
@input_errors
def tune(**options) -> None:
    """Tune every variant of GRID with the same budget, select on validation only, retrain and test.

    Per outer fold, each of N configurations trains on the fold's training set minus a validation
    part and is scored on that part only; the best per backbone x variant is retrained on the whole
    training set with S seeds and tested once. `hcld-grid report GRID-tune` reports it.
    """
    _tune(TuneOptions.parse(options))


TUNE_OWN = ("budget", "seeds", "search", "search_seed", "scheduler")  # the options `run` has not (or means otherwise)


@dataclass(frozen=True)
class TuneOptions:
    """The command line of `hcld-grid tune`: the grid as `run` would plan it with one seed (the tune
    chooses the finals' seeds), and the tune's own options."""

    run: RunOptions
    budget: int
    seeds: int | None
    search: str
    search_seed: int
    scheduler: str | None

    @classmethod
    def parse(cls, options: dict) -> TuneOptions:
        own = {k: options.pop(k) for k in TUNE_OWN}
        return cls(RunOptions(**options, sweeps=(), seeds=1), **own)


def _tune(o: TuneOptions) -> None:
    grid_plan = plan_of(o.run)
    scheduler = o.scheduler or ("asha" if o.run.executor == "ray" else "none")
    if scheduler == "asha" and o.run.executor != "ray":
        raise HcldError("--scheduler asha runs in Ray Tune: use --executor ray, or --scheduler none")
    plan = plan_tune(grid_plan, budget=o.budget, seeds=o.seeds or grid_plan.spec.seeds,
                     search_seed=o.search_seed, scheduler=scheduler, searcher=o.search)
    echo_data(o.run, grid_plan)
    store = ResultStore(tune_folder(o.run.results_dir, o.run.grid), o.run.grid)
    if o.run.dry_run:
        _dry_run(plan, store, inspect_data(o.run, grid_plan), o)
        return
    with RunLock(store.folder):
        experiment = prepare_data(o.run, grid_plan)
        data_plan = replan_for(o.run, grid_plan, experiment)
        if data_plan is not grid_plan:  # loso on a corpus with its own group count
            plan = plan_tune(data_plan, budget=o.budget, seeds=o.seeds or grid_plan.spec.seeds,
                             search_seed=o.search_seed, scheduler=scheduler, searcher=o.search)
        _run_locked(o, plan, store, experiment)


# -- the two stages ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TuneState:
    """The tune's trials on this data and what the store holds of them."""

    search: list[TrialSpec]  # every search trial known now (tpe: later batches follow), in group order
    search_ids: list[list[str]]  # per group, the ids of its search trials known now (draw order)
    unfinished: set[str]  # search trials neither finished nor given up
    gave_up: set[str]
    choices: list[Choice | None]  # per group: its choice, None while its search runs
    finals: list[TrialSpec]  # the final trials of the groups chosen so far
    final_done: set[str]
    final_gave_up: set[str]


def tune_state(plan: TunePlan, data_key: str, store: ResultStore, max_failures: int, *,
               save_models: bool = False) -> TuneState:
    """Where the tune stands: the search points known now (all N per group under random; under tpe,
    the batches whose history has finished), the choices of the groups whose search is complete,
    and their final trials."""
    rows = store.rows()
    finished = {r["trial_id"]: r for r in rows if r["status"] in FINISHED}
    attempts = Counter(r["trial_id"] for r in rows)
    version = code_version()

    def score_of(point):
        tid = trial_id(point.config, point.fold, data_key, version)
        if tid in finished:
            score = finished[tid].get(SELECTION_METRIC)
            return None if score is None or math.isnan(score) else float(score)
        return None if attempts[tid] > max_failures else UNFINISHED  # None: given up, no score

    points = [plan.search_points(g, score_of) for g in plan.groups]
    per_group = [make_specs(p, data_key, store) for p in points]
    search = [s for specs in per_group for s in specs]
    ids = [[s.trial_id for s in specs] for specs in per_group]
    state = store.plan([s.trial_id for s in search], max_failures)
    unfinished = set(state.pending)
    search = [state.resumed(s) for s in search]
    choices = [select(g, p, g_ids, rows, unfinished, plan.budget) for g, p, g_ids in zip(plan.groups, points, ids)]
    final_points = [p for c in choices if c is not None for p in c.final_points(plan.seeds)]
    finals = make_specs(final_points, data_key, store, save_models=save_models)  # search trials keep none
    final_state = store.plan([s.trial_id for s in finals], max_failures)
    finals = [final_state.resumed(s) for s in finals]
    return TuneState(search, ids, unfinished, set(state.gave_up), choices, finals, set(final_state.done),
                     set(final_state.gave_up))


def _pending(specs: list[TrialSpec], store: ResultStore, max_failures: int) -> list[TrialSpec]:
    state = store.plan([s.trial_id for s in specs], max_failures)
    todo = set(state.pending)
    return [state.resumed(s) for s in specs if s.trial_id in todo]


def _run_stage(o: TuneOptions, name: str, specs: list[TrialSpec], experiment, store: ResultStore,
               early_stopping: EarlyStopping | None, best_metric: str) -> None:
    pending = _pending(specs, store, o.run.max_failures)
    click.echo(f"{name}: {len(specs)} trials known, {len(specs) - len(pending)} finished or given up, "
               f"{len(pending)} to run")
    if not pending:
        return
    if early_stopping is not None:
        click.echo(f"early stopping: {early_stopping.describe()}")
    progress = Progress(len(pending), best_metric=best_metric)
    try:
        run_pending(pending, experiment, store, progress, executor=o.run.executor,
                    trial_fn=os.environ.get(TRIAL_FN_ENV, "hcld"), max_failures=o.run.max_failures,
                    cpus_per_trial=o.run.cpus_per_trial, gpus_per_trial=o.run.gpus_per_trial, address=o.run.address,
                    dashboard=not o.run.no_dashboard, verbose=o.run.verbose, echo=click.echo,
                    early_stopping=early_stopping, trackers=trackers_of(o.run, store))
    except KeyboardInterrupt:
        click.echo(f"interrupted: {progress.summary()}. Finished trials are saved in {store.path}; "
                   f"run the same command again to resume.")
        sys.exit(130)


def _run_locked(o: TuneOptions, plan: TunePlan, store: ResultStore, experiment) -> None:
    click.echo(f"tune {o.run.grid}: {len(plan.groups)} groups (backbone x variant x outer fold), budget "
               f"{plan.budget} configurations each, {plan.seeds} seed(s) per final -> {store.path}")
    ran: set[str] | None = None

    def where_it_stands() -> TuneState:
        return tune_state(plan, experiment.data_key, store, o.run.max_failures, save_models=o.run.save_models)

    while True:  # random: one pass; tpe: one pass per batch of proposals
        state = where_it_stands()
        todo = {s.trial_id for s in _pending(state.search, store, o.run.max_failures)}
        if todo and todo == ran:  # nothing moved: trials that did not finish (the summary says so)
            break
        stopping = None
        if plan.scheduler == "asha":
            group_of = {t: g.label for g, g_ids in zip(plan.groups, state.search_ids) for t in g_ids}
            stopping = EarlyStopping.for_epochs(SELECTION_METRIC, plan.epochs, group_of)
        _run_stage(o, "search (validation only)", state.search, experiment, store, stopping, SELECTION_METRIC)
        if not todo:
            break
        ran = todo
    state = where_it_stands()  # the choices, now the search is done
    _run_stage(o, "final (chosen configurations, tested)", state.finals, experiment, store, None, "emo_ua")
    state = where_it_stands()
    chosen = sum(c is not None for c in state.choices)
    expected, n_search = len(plan.groups) * plan.seeds, len(plan.groups) * plan.budget
    click.echo(f"tune {o.run.grid}: search {len(state.search) - len(state.unfinished) - len(state.gave_up)}/"
               f"{n_search} finished ({len(state.gave_up)} given up); {chosen}/{len(plan.groups)} groups "
               f"chosen; finals {len(state.final_done)}/{expected} done ({len(state.final_gave_up)} given up) "
               f"-> {store.path}; report: hcld-grid report {o.run.grid}{TUNE_SUFFIX}")
    if (state.unfinished or state.gave_up or len(state.search) < n_search or state.final_gave_up
            or len(state.final_done) < expected):
        click.echo("the tune is not complete: run the same command again to resume (raise --max-failures "
                   "to retry given-up trials).")
        sys.exit(1)


# -- dry run -----------------------------------------------------------------------------------------


def _dry_run(plan: TunePlan, store: ResultStore, experiment, o: TuneOptions) -> None:
    """The budget per variant, the search and final trial counts, and what is done."""
    click.echo(f"tune {o.run.grid}: searcher {o.search} (seed {plan.search_seed}), scheduler {plan.scheduler}, "
               f"{plan.seeds} seed(s) per final, {plan.epochs} epochs per trial")
    click.echo("search space: " + "; ".join(k.describe() for k in SEARCH_SPACE))
    if isinstance(experiment, list):
        click.echo("data not prepared yet (a real run would first: " + "; ".join(experiment) + "); "
                   "nothing can be done yet")
        state = None
    else:
        state = tune_state(plan, experiment.data_key, store, o.run.max_failures)
        click.echo(f"code version {code_version()}, data key {experiment.data_key}")
    done_search = {} if state is None else {
        i: sum(t not in state.unfinished and t not in state.gave_up for t in ids)
        for i, ids in enumerate(state.search_ids)}
    click.echo(f"{'backbone':<12}{'variant':<12}{'budget':>7}{'folds':>6}{'search':>8}{'done':>6}{'finals':>8}"
               f"{'done':>6}  knobs")
    by_cell: dict[tuple[str, str], list[int]] = {}
    for i, g in enumerate(plan.groups):
        by_cell.setdefault((g.base.config.backbone, g.base.config.variant), []).append(i)
    for (backbone, variant), members in by_cell.items():
        knobs = ", ".join(k.name for k in searched_knobs(search_config(plan.groups[members[0]].base.config, 0)))
        search = plan.budget * len(members)
        finals = plan.seeds * len(members)
        done = sum(done_search.get(i, 0) for i in members)
        final_done = 0 if state is None else sum(
            1 for s in state.finals if s.trial_id in state.final_done
            and (s.config.backbone, s.config.variant) == (backbone, variant))
        click.echo(f"{backbone:<12}{variant:<12}{plan.budget:>7}{len(members):>6}{search:>8}{done:>6}"
                   f"{finals:>8}{final_done:>6}  {knobs}")
    n_search = plan.budget * len(plan.groups)
    n_final = plan.seeds * len(plan.groups)
    click.echo(f"{n_search} search trials ({plan.budget} per group, {len(plan.groups)} groups), "
               f"{n_final} final trials ({plan.seeds} per group) -> {store.path}")
    if state is not None:
        chosen = sum(c is not None for c in state.choices)
        click.echo(f"done: {sum(done_search.values())}/{n_search} search, {chosen}/{len(plan.groups)} groups chosen, "
                   f"{len(state.final_done)}/{n_final} final")

