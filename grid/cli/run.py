"""`hcld-grid run GRID`: run a named grid with Ray Tune or in-process, resumable: finished trials
are skipped, failed ones retried up to --max-failures.

Every setting (`--set`, `--sweep`, names of backbones and variants) is checked, and the grid's
trials are planned, before any data is prepared: a typo costs one line, not a feature extraction."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from grid.cli.options import input_errors, names_option, numbers_option
from grid.execute import EXECUTORS, TRIAL_FN_ENV, run_pending
from grid.plan import GRIDS, GridPlan, plan_grid, points_per_setting, trial_state
from grid.progress import Progress, concurrency, wall_estimate
from grid.result_store import ResultStore, RunLock
from grid.sweeps import setting_label, swept_values
from grid.tracking import TRACKERS, Trackers, make_trackers
from grid.trials import code_version
from hcld.config import BACKBONES, TrialConfig, Variant, choices
from hcld.data.corpora import CORPUS_NAMES
from hcld.data.folds import FOLD_SCHEMES, FOLDS_FROM_DATA, N_FOLDS
from hcld.errors import HcldError
from hcld.features import EXTRACTORS


def grid_options(command):
    """The options `run` and `tune` share: what to run (backbones, variants, settings), on which
    data, where results go, and how trials are executed."""
    for option in reversed(_GRID_OPTIONS):
        command = option(command)
    return command


_GRID_OPTIONS = [
    click.argument("grid", type=click.Choice(list(GRIDS))),
    click.option("--epochs", type=click.IntRange(min=1), help="Epochs per trial (overrides the grid)."),
    click.option("--folds", "fold_scheme", type=click.Choice(FOLD_SCHEMES),
                 help="Fold scheme: random5 (the paper: 5 random stratified 80/20 folds), random10, "
                      "loso (leave one session out; one speaker where a corpus has no sessions), "
                      "speaker5/speaker10 (speaker-independent k-fold)."),
    click.option("--features", type=click.Choice(list(EXTRACTORS)),
                 help="Input features. Default: hubert on IEMOCAP (the paper's), else fbank."),
    click.option("--backbones", callback=names_option(BACKBONES), metavar="LIST",
                 help=f"Comma-separated subset of {','.join(BACKBONES)}."),
    click.option("--variants", callback=names_option(choices(Variant)), metavar="LIST",
                 help=f"Comma-separated loss variants ({','.join(choices(Variant))})."),
    click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
                 help="Override any trial setting (a TrialConfig field), e.g. --set lr=1e-3 "
                      "--set loss_impl=triton. Repeatable."),
    click.option("--corpus", type=click.Choice(CORPUS_NAMES),
                 help="Corpus reader (with --root). Without one the "
                      "built-in synthetic corpus is used."),
    click.option("--root", type=click.Path(exists=True, path_type=Path),
                 help="The corpus' folder (or metadata / manifest file) for --corpus."),
    click.option("--label-map", metavar="RAW=LABEL,...",
                 help="Merge or drop labels on top of the reader's default map, e.g. exc=hap,fru=drop."),
    click.option("--iemocap", type=click.Path(exists=True, file_okay=False, path_type=Path),
                 help="Shorthand for --corpus iemocap --root IEMOCAP_full_release."),
    click.option("--hubert-checkpoint", type=click.Path(exists=True, path_type=Path),
                 help="Local HuBERT-Base checkpoint (folder or file) for --features hubert."),
    click.option("--upstream", type=click.Path(exists=True, file_okay=False, path_type=Path),
                 help="--features ssl: a local transformers folder (wav2vec2, HuBERT, WavLM, data2vec-audio)."),
    click.option("--layer", type=click.IntRange(min=0),
                 help="--features ssl: the hidden state to take (0 = CNN output; default: the last)."),
    click.option("--layers", callback=numbers_option(int), metavar="LIST",
                 help="--features ssl: several hidden states, e.g. 4,8,12, mixed per trial by learned "
                      "softmax weights (SUPERB's weighted sum)."),

    click.option("--roberta", type=click.Path(exists=True, file_okay=False, path_type=Path),
                 help="Local roberta-base folder for the label anchors of LCL "
                      "(same as --set roberta_path=...)."),
    click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
                 default=Path("data"), show_default=True,
                 help="Where manifests, folds and the feature store are kept."),
    click.option("--results-dir", type=click.Path(file_okay=False, path_type=Path),
                 default=Path("results"), show_default=True,
                 help="Results go to RESULTS_DIR/GRID/ (trials.parquet, trials/<id>/, ray/); a tune's "
                      "to RESULTS_DIR/GRID-tune/."),
    click.option("--executor", type=click.Choice(EXECUTORS), default="ray", show_default=True,
                 help="ray: Ray Tune, trials in parallel; local: in this process, one after another "
                      "(no Ray needed)."),
    click.option("--gpus-per-trial", type=click.FloatRange(min=0),
                 help="GPUs per trial, fractional allowed (0.25 packs 4 trials per GPU). "
                      "Default: 1 if Ray sees a GPU, else 0 (CPU workers)."),
    click.option("--cpus-per-trial", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
                 help="CPUs per trial (Ray executor)."),
    click.option("--address", metavar="auto|ray://HOST:PORT",
                 help="Join an existing Ray cluster instead of starting a local one."),
    click.option("--no-dashboard", is_flag=True, help="Do not start the Ray dashboard."),
    click.option("--max-failures", type=click.IntRange(min=0), default=1, show_default=True,
                 help="Retries of a failed trial (counted across runs) before giving up on it; attempts "
                      "lost with a Ray node or worker process do not count."),
    click.option("--save-models", is_flag=True,
                 help="Keep each trial's reported model (weights, label set, how its features were made) in "
                      "its artifacts folder, for `hcld-grid predict`. Trials finished before keep none."),
    click.option("--log", "log", callback=names_option(TRACKERS), metavar="LIST",
                 help="Also log every trial's per-epoch losses and scores, and its settings, to: tensorboard "
                      "(RESULTS_DIR/GRID/tensorboard/, a run per trial: `tensorboard --logdir` it), mlflow "
                      "(the mlflow extra; an experiment per grid in RESULTS_DIR/mlruns or --mlflow-uri)."),
    click.option("--mlflow-uri", metavar="URI",
                 help="With --log mlflow: the tracking URI (a folder, sqlite:///..., http://...). "
                      "Default: RESULTS_DIR/mlruns."),
    click.option("-v", "--verbose", is_flag=True,
                 help="Ray: show Ray's own output and tables; local: one line per epoch."),
]


@click.command(context_settings={"max_content_width": 100})
@grid_options
@click.option("--sweep", "sweeps", multiple=True, metavar="KEY=V1,V2,...",
              help="Try a trial setting at several values: the grid runs every combination of the "
                   "swept values with its backbones x variants x folds (repeatable; typed like --set). "
                   "A trial that does not read a swept setting runs once and serves every value.")
@click.option("--seeds", type=click.IntRange(min=1), metavar="N",
              help="Run every trial with seeds 0..N-1 (the same as --sweep seed=0,...,N-1); the report "
                   "averages the replicates within a fold and shows their spread.")
@click.option("--dry-run", is_flag=True,
              help="List the trials, which are already done, and the resources; run nothing.")
@input_errors
def run(**options) -> None:
    """Run the ablation GRID: backbones x loss variants x folds (x swept settings).

    Results are appended to RESULTS_DIR/GRID/trials.parquet as each trial ends. Re-running the
    same command skips finished trials, so an interrupted grid is resumed by running it again.
    """
    _run(RunOptions(**options))


@dataclass(frozen=True)
class RunOptions:
    """The command line of `hcld-grid run`, as click parsed it."""

    grid: str
    epochs: int | None
    fold_scheme: str | None
    features: str | None
    backbones: tuple[str, ...] | None
    variants: tuple[str, ...] | None
    settings: tuple[str, ...]
    sweeps: tuple[str, ...]
    seeds: int | None
    corpus: str | None
    root: Path | None
    label_map: str | None
    iemocap: Path | None
    hubert_checkpoint: Path | None
    upstream: Path | None
    layer: int | None
    layers: tuple[int, ...] | None
    roberta: Path | None
    data_dir: Path
    results_dir: Path
    executor: str
    gpus_per_trial: float | None
    cpus_per_trial: float
    address: str | None
    no_dashboard: bool
    max_failures: int
    save_models: bool
    log: tuple[str, ...] | None
    mlflow_uri: str | None
    verbose: bool
    dry_run: bool


def plan_of(o: RunOptions, n_folds: int | None = None) -> GridPlan:
    """The grid's plan; `n_folds` for a scheme whose fold count is the data's (loso on a corpus
    without IEMOCAP's five sessions), once the data says it."""
    corpus, _ = corpus_of(o)
    feature_options(o)  # checked before any data work
    return plan_grid(o.grid, epochs=o.epochs, fold_scheme=o.fold_scheme, features=o.features,
                     backbones=o.backbones, variants=o.variants, settings=o.settings, sweeps=o.sweeps,
                     seeds=o.seeds, corpus=corpus, hubert_checkpoint=o.hubert_checkpoint, roberta=o.roberta,
                     n_folds=n_folds)


def trackers_of(o: RunOptions, store: ResultStore) -> Trackers:
    """--log's trackers, writing beside the store; their warnings on stderr."""
    trackers = make_trackers(o.log, store.folder, mlflow_uri=o.mlflow_uri, warn=lambda line: click.echo(line, err=True))
    for line in trackers.describe():
        click.echo(line)
    return trackers


def corpus_of(o: RunOptions) -> tuple[str | None, Path | None]:
    """(reader name, root) from --corpus/--root, or --iemocap as their shorthand; (None, None): synthetic."""
    if o.iemocap is not None:
        if o.corpus not in (None, "iemocap") or o.root is not None:
            raise HcldError("--iemocap ROOT is short for --corpus iemocap --root ROOT: give one of them")
        return "iemocap", o.iemocap
    if (o.corpus is None) != (o.root is None):
        raise HcldError("--corpus NAME and --root PATH go together (without both: the built-in synthetic corpus)")
    if o.label_map is not None and o.corpus is None:
        raise HcldError("--label-map needs --corpus NAME --root PATH")
    return o.corpus, o.root


def feature_options(o: RunOptions) -> dict[str, Any]:
    """The extractor's options from --upstream / --layer / --layers (ssl only)."""
    given = {k: v for k, v in (("upstream", o.upstream), ("layer", o.layer), ("layers", o.layers)) if v is not None}
    if given and o.features != "ssl":
        raise HcldError(f"--{'/--'.join(given)} only apply to --features ssl")
    if o.features == "ssl" and o.upstream is None:
        raise HcldError("--features ssl needs --upstream DIR (a local transformers model folder; "
                        "nothing is downloaded)")
    if o.layer is not None and o.layers is not None:
        raise HcldError("give --layer N or --layers LIST, not both")
    return given


def _run(o: RunOptions) -> None:
    plan = plan_of(o)
    echo_data(o, plan)
    if plan.sweeps:
        click.echo("sweeps: " + "; ".join(f"{k} = {', '.join(map(str, v))}" for k, v in plan.sweeps.items()))
    store = ResultStore(o.results_dir / o.grid, o.grid)
    if o.dry_run:
        experiment = inspect_data(o, plan)
        if not isinstance(experiment, list):
            plan = replan_for(o, plan, experiment)
        _dry_run(o, plan, store, experiment)
        return
    # Lock before preparing data: a refused second run should not first extract features.
    with RunLock(store.folder):
        experiment = prepare_data(o, plan)
        _run_locked(o, replan_for(o, plan, experiment), store, experiment)


def echo_data(o: RunOptions, plan: GridPlan) -> None:
    """Say which data the run uses (the synthetic corpus is said loudly: not the paper's numbers)."""
    corpus, root = corpus_of(o)
    if corpus is None:
        click.echo(f"data: no --corpus given, so the built-in SYNTHETIC corpus "
                   f"({plan.spec.synth_utterances} utterances) with {plan.features} features is "
                   f"used; numbers will not be comparable to the paper.")
    else:
        click.echo(f"data: {corpus} at {root}, {plan.features} features")


def _data_options(o: RunOptions, plan: GridPlan) -> dict[str, Any]:
    corpus, root = corpus_of(o)
    return dict(data_dir=o.data_dir.absolute(), corpus=corpus, root=root, label_map=o.label_map,
                features=plan.features, hubert_checkpoint=o.hubert_checkpoint, feature_options=feature_options(o),
                fold_scheme=plan.fold_scheme, synth_utterances=plan.spec.synth_utterances)


def inspect_data(o: RunOptions, plan: GridPlan):
    """The experiment if its data is all on disk, else the stages a real run computes first."""
    from hcld.pipeline import inspect_experiment

    return inspect_experiment(**_data_options(o, plan))


def prepare_data(o: RunOptions, plan: GridPlan):
    from hcld.pipeline import prepare_experiment

    experiment = prepare_experiment(**_data_options(o, plan), progress=True)
    check_fold_count(experiment, plan)
    return experiment


def check_fold_count(experiment, plan: GridPlan) -> None:
    if plan.fold_scheme not in FOLDS_FROM_DATA and experiment.n_folds != N_FOLDS[plan.fold_scheme]:
        raise HcldError(f"{experiment.description}: {experiment.n_folds} folds on disk, "
                        f"{plan.fold_scheme} has {N_FOLDS[plan.fold_scheme]}")


def replan_for(o: RunOptions, plan: GridPlan, experiment) -> GridPlan:
    """The plan with the data's fold count where the scheme takes it from the data (loso)."""
    if plan.fold_scheme in FOLDS_FROM_DATA and plan.n_folds != experiment.n_folds:
        return plan_of(o, n_folds=experiment.n_folds)
    return plan


def _run_locked(o: RunOptions, plan: GridPlan, store: ResultStore, experiment) -> None:
    grid, max_failures = o.grid, o.max_failures
    trial_fn = os.environ.get(TRIAL_FN_ENV, "hcld")
    trials = trial_state(plan, experiment.data_key, store, max_failures, save_models=o.save_models)
    trial_specs, state, pending = trials.specs, trials.state, trials.pending
    gave_up = (f", {len(state.gave_up)} given up (failed {max_failures + 1}x; raise "
               f"--max-failures to retry them)" if state.gave_up else "")
    click.echo(f"grid {grid}: {len(trial_specs)} trials, {len(state.done)} already done"
               f"{gave_up}, {len(pending)} to run -> {store.path}")
    if not pending:
        if state.gave_up:  # the grid is not complete: same exit code as when they failed
            click.echo(f"nothing to run, but {len(state.gave_up)} trial(s) of this grid were given up "
                       f"(raise --max-failures to retry them).")
            sys.exit(1)
        click.echo("nothing to run: every trial of this grid is done.")
        return
    progress = Progress(len(pending))
    try:
        run_pending(pending, experiment, store, progress, executor=o.executor, trial_fn=trial_fn,
                    max_failures=max_failures, cpus_per_trial=o.cpus_per_trial,
                    gpus_per_trial=o.gpus_per_trial, address=o.address,
                    dashboard=not o.no_dashboard, verbose=o.verbose, echo=click.echo,
                    trackers=trackers_of(o, store))
    except KeyboardInterrupt:
        click.echo(f"interrupted: {progress.summary()}. Finished trials are saved in "
                   f"{store.path}; run the same command again to resume.")
        sys.exit(130)
    # Count from the store, not from this process's progress: with a ray:// address the
    # recording callback runs on the head node.
    ids = [s.trial_id for s in pending]
    after = store.plan(ids, max_failures)
    done, failed = len(after.done), len(after.gave_up)
    unfinished = len(ids) - done - failed
    click.echo(f"grid {grid}: {done} done, {failed} failed (given up), {unfinished} not "
               f"finished of {len(ids)} run; wall {progress.elapsed()}; results in "
               f"{store.path}")
    if unfinished:
        click.echo(f"{unfinished} trial(s) did not finish; run the same command again to "
                   f"resume.")
    if failed or unfinished:
        sys.exit(1)


def _dry_run(o: RunOptions, plan: GridPlan, store: ResultStore, experiment) -> None:
    """List what a run would do, without preparing any data (hcld.pipeline.inspect_experiment)."""
    trial_fn = os.environ.get(TRIAL_FN_ENV, "hcld")
    if isinstance(experiment, list):  # data not on disk yet: no data key, so no trial ids
        click.echo("data not prepared yet; a real run would first:")
        for stage in experiment:
            click.echo(f"  - {stage}")
        click.echo(f"{'trial':<32}{'epochs':>7}  setting  (trial ids follow from the data key)")
        for p in plan.points:
            click.echo(f"{p.label:<32}{p.config.epochs:>7}  {_swept_label(p.config, plan.sweeps)}".rstrip())
        click.echo(f"{len(plan.points)} trials would run -> {store.path}")
    else:
        trials = trial_state(plan, experiment.data_key, store, o.max_failures)
        specs, state = trials.specs, trials.state
        status = {**{t: "done" for t in state.done}, **{t: "gave up" for t in state.gave_up},
                  **{t: "pending" for t in state.pending}}
        click.echo(f"code version {code_version()}, data key {experiment.data_key}, "
                   f"{experiment.description} (data on disk)")
        click.echo(f"{'trial_id':<17}{'trial':<32}{'epochs':>7}  {'attempts':>8}  state  setting")
        for s in specs:
            line = (f"{s.trial_id:<17}{s.name:<32}{s.config.epochs:>7}  {state.attempts[s.trial_id]:>8}  "
                    f"{status[s.trial_id]:<8}{s.setting}")
            click.echo(line.rstrip())
        click.echo(f"{len(specs)} trials: {len(state.done)} done, {len(state.gave_up)} given up, "
                   f"{len(state.pending)} would run -> {store.path}")
        estimate = wall_estimate(store.rows(), trials.pending,
                                 parallel=concurrency(o.executor, o.cpus_per_trial))
        if estimate:
            click.echo(estimate)
    if plan.sweeps:
        click.echo("trials per setting (a trial that does not read a swept key serves every value):")
        for combo, n in points_per_setting(plan.points, plan.sweeps):
            click.echo(f"  {setting_label(combo)}: {n}")
    if o.executor == "local":
        click.echo("resources: local executor, one trial at a time in this process")
    else:
        gpus = "1 if Ray sees a GPU, else 0" if o.gpus_per_trial is None else f"{o.gpus_per_trial:g}"
        click.echo(f"resources: Ray executor, {o.cpus_per_trial:g} CPU and {gpus} GPU per trial; "
                   f"concurrency = cluster CPUs / {o.cpus_per_trial:g}")
    if trial_fn != "hcld":
        click.echo(f"trial function: {trial_fn} (from ${TRIAL_FN_ENV})")


def _swept_label(config: TrialConfig, swept: dict[str, tuple[Any, ...]]) -> str:
    """'trunk=shared temperature=*' ('*': the trial does not read it and serves every value)."""
    return setting_label(swept_values(config, swept))
