"""`hcld-grid run GRID`: run a named grid (full | quick | demo | smoke) with Ray Tune or in-process,
resumable: finished trials are skipped, failed ones retried up to --max-failures."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from grid import specs as grid_specs
from grid.progress import Progress
from grid.runner import TRIAL_FN_ENV, make_specs
from grid.store import ResultStore, RunLock, code_version
from hcld.config import TrialConfig
from hcld.errors import HcldError


def _csv(_ctx, _param, value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _check_names(kind: str, names: tuple[str, ...] | None, known: tuple[str, ...]) -> None:
    bad = [n for n in names or () if n not in known]
    if bad:
        raise HcldError(f"unknown {kind} {bad}; known: {', '.join(known)}")


def _known_variants() -> tuple[str, ...]:
    try:
        from hcld.losses.variants import VARIANTS
    except ImportError:  # the losses package is optional for a dry look at the grid
        return (*grid_specs.ABLATION_VARIANTS, "icld_only")
    return tuple(VARIANTS)


@click.command(context_settings={"max_content_width": 100})
@click.argument("grid", type=click.Choice(list(grid_specs.GRIDS)))
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs per trial (overrides the grid).")
@click.option("--folds", "fold_scheme", type=click.Choice(["random5", "loso"]),
              help="Fold scheme: random5 (the paper: 5 random 80/20 folds) or loso "
                   "(leave one session out).")
@click.option("--features", type=click.Choice(["hubert", "fbank"]),
              help="Input features. Default: hubert with --iemocap, else fbank.")
@click.option("--backbones", callback=_csv, metavar="LIST",
              help="Comma-separated subset of cnn,lstm,transformer.")
@click.option("--variants", callback=_csv, metavar="LIST",
              help="Comma-separated loss variants (emo_only,orth,wo_supcon,wo_lcl,hcld,icld_only).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Override any trial setting (a TrialConfig field), e.g. --set lr=1e-3 "
                   "--set loss_impl=triton. Repeatable.")
@click.option("--iemocap", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="IEMOCAP release root (IEMOCAP_full_release). Without it the built-in "
                   "synthetic corpus is used.")
@click.option("--hubert-checkpoint", type=click.Path(exists=True, path_type=Path),
              help="Local HuBERT-Base checkpoint (folder or file) for --features hubert.")
@click.option("--roberta", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Local roberta-base folder for the label anchors of LCL "
                   "(same as --set roberta_path=...).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("data"), show_default=True,
              help="Where manifests, folds and the feature store are kept.")
@click.option("--results-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("results"), show_default=True,
              help="Results go to RESULTS_DIR/GRID/ (trials.parquet, trials/<id>/, ray/).")
@click.option("--executor", type=click.Choice(["ray", "local"]), default="ray", show_default=True,
              help="ray: Ray Tune, trials in parallel; local: in this process, one after another "
                   "(no Ray needed).")
@click.option("--gpus-per-trial", type=click.FloatRange(min=0),
              help="GPUs per trial, fractional allowed (0.25 packs 4 trials per GPU). "
                   "Default: 1 if Ray sees a GPU, else 0 (CPU workers).")
@click.option("--cpus-per-trial", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
              help="CPUs per trial (Ray executor).")
@click.option("--address", metavar="auto|ray://HOST:PORT",
              help="Join an existing Ray cluster instead of starting a local one.")
@click.option("--no-dashboard", is_flag=True, help="Do not start the Ray dashboard.")
@click.option("--max-failures", type=click.IntRange(min=0), default=1, show_default=True,
              help="Retries of a failed trial (counted across runs) before giving up on it.")
@click.option("-v", "--verbose", is_flag=True,
              help="Ray: show Ray's own output and tables; local: one line per epoch.")
@click.option("--dry-run", is_flag=True,
              help="List the trials, which are already done, and the resources; run nothing.")
def run(grid, epochs, fold_scheme, features, backbones, variants, settings, iemocap,
        hubert_checkpoint, roberta, data_dir, results_dir, executor, gpus_per_trial,
        cpus_per_trial, address, no_dashboard, max_failures, verbose, dry_run) -> None:
    """Run the ablation GRID (full | quick | demo | smoke): backbones x loss variants x folds.

    Results are appended to RESULTS_DIR/GRID/trials.parquet as each trial ends. Re-running the
    same command skips finished trials, so an interrupted grid is resumed by running it again.
    """
    try:
        _run(**locals())
    except HcldError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


def _run(*, grid, epochs, fold_scheme, features, backbones, variants, settings, iemocap,
         hubert_checkpoint, roberta, data_dir, results_dir, executor, gpus_per_trial,
         cpus_per_trial, address, no_dashboard, max_failures, verbose, dry_run) -> None:
    spec = grid_specs.get_grid(grid)
    _check_names("backbone(s)", backbones, grid_specs.BACKBONES)
    _check_names("variant(s)", variants, _known_variants())
    overrides = grid_specs.parse_settings(settings)
    if epochs is not None:
        overrides["epochs"] = epochs
        # Warm-up must leave epochs to train: keep the grid's unless it would cover them all.
        warmup = spec.settings.get("warmup_epochs", TrialConfig.warmup_epochs)
        if "warmup_epochs" not in overrides and warmup >= epochs:
            overrides["warmup_epochs"] = epochs // 5
    if roberta is not None:
        overrides["roberta_path"] = str(roberta.absolute())
    features = features or ("hubert" if iemocap else "fbank")
    if features == "hubert" and hubert_checkpoint is None:
        raise HcldError("--features hubert needs --hubert-checkpoint PATH (a local HuBERT-Base; "
                        "nothing is downloaded)")
    if iemocap is None:
        click.echo(f"data: no --iemocap given, so the built-in SYNTHETIC corpus "
                   f"({spec.synth_utterances} utterances) with {features} features is used; "
                   f"numbers will not be comparable to the paper.")
    else:
        click.echo(f"data: IEMOCAP at {iemocap}, {features} features")

    store = ResultStore(results_dir / grid, grid)
    if dry_run:
        _dry_run(store, _prepare(spec, data_dir, iemocap, features, hubert_checkpoint,
                                 fold_scheme), spec, backbones, variants, overrides,
                 max_failures, executor, cpus_per_trial, gpus_per_trial)
        return
    # Lock before preparing data: a refused second run should not first extract features.
    with RunLock(store.folder):
        experiment = _prepare(spec, data_dir, iemocap, features, hubert_checkpoint, fold_scheme)
        _run_locked(grid, spec, experiment, store, backbones, variants, overrides, executor,
                    gpus_per_trial, cpus_per_trial, address, no_dashboard, max_failures,
                    verbose)


def _prepare(spec, data_dir, iemocap, features, hubert_checkpoint, fold_scheme):
    from hcld.pipeline import prepare_experiment

    return prepare_experiment(
        data_dir=data_dir.absolute(), iemocap=iemocap, features=features,
        hubert_checkpoint=hubert_checkpoint, fold_scheme=fold_scheme or spec.fold_scheme,
        synth_utterances=spec.synth_utterances, progress=True)


def _run_locked(grid, spec, experiment, store, backbones, variants, overrides, executor,
                gpus_per_trial, cpus_per_trial, address, no_dashboard, max_failures,
                verbose) -> None:
    points = grid_specs.resolve(spec, n_folds=experiment.n_folds, backbones=backbones,
                                variants=variants, settings=overrides)
    trial_fn = os.environ.get(TRIAL_FN_ENV, "hcld")
    trial_specs = make_specs(points, experiment, store)
    plan = store.plan([s.trial_id for s in trial_specs], max_failures)
    pending = [s for s in trial_specs if s.trial_id in set(plan.pending)]
    pending = [_with_attempts(s, plan.attempts[s.trial_id]) for s in pending]
    gave_up = (f", {len(plan.gave_up)} given up (failed {max_failures + 1}x; raise "
               f"--max-failures to retry them)" if plan.gave_up else "")
    click.echo(f"grid {grid}: {len(trial_specs)} trials, {len(plan.done)} already done"
               f"{gave_up}, {len(pending)} to run -> {store.path}")
    if not pending:
        click.echo("nothing to run: every trial of this grid is done or given up.")
        return
    progress = Progress(len(pending))
    try:
        if executor == "local":
            from grid.runner import run_local

            run_local(pending, experiment, store, progress, trial_fn=trial_fn,
                      max_failures=max_failures, epoch_lines=verbose)
        else:
            _run_with_ray(pending, experiment, store, progress, trial_fn=trial_fn,
                          max_failures=max_failures, cpus_per_trial=cpus_per_trial,
                          gpus_per_trial=gpus_per_trial, address=address,
                          dashboard=not no_dashboard, verbose=verbose)
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


def _with_attempts(spec, attempts: int):
    import dataclasses

    return dataclasses.replace(spec, attempts_before=attempts)


def _run_with_ray(pending, experiment, store, progress, *, trial_fn, max_failures,
                  cpus_per_trial, gpus_per_trial, address, dashboard, verbose) -> None:
    import ray

    from grid.dashboard import start_ray
    from grid.runner import run_ray

    session = start_ray(address=address, dashboard=dashboard, verbose=verbose)
    try:
        for line in session.describe():
            click.echo(line)
        if gpus_per_trial is None:
            gpus_per_trial = 1.0 if session.gpus > 0 else 0.0
        click.echo(f"resources per trial: {cpus_per_trial:g} CPU, {gpus_per_trial:g} GPU")
        run_ray(pending, experiment, store, progress, trial_fn=trial_fn,
                max_failures=max_failures, cpus_per_trial=cpus_per_trial,
                gpus_per_trial=gpus_per_trial, verbose=verbose)
    finally:
        ray.shutdown()


def _dry_run(store, experiment, spec, backbones, variants, overrides, max_failures, executor,
             cpus_per_trial, gpus_per_trial) -> None:
    points = grid_specs.resolve(spec, n_folds=experiment.n_folds, backbones=backbones,
                                variants=variants, settings=overrides)
    trial_fn = os.environ.get(TRIAL_FN_ENV, "hcld")
    specs = make_specs(points, experiment, store)
    plan = store.plan([s.trial_id for s in specs], max_failures)
    state = {**{t: "done" for t in plan.done}, **{t: "gave up" for t in plan.gave_up},
             **{t: "pending" for t in plan.pending}}
    click.echo(f"code version {code_version()}, data key {experiment.data_key}, "
               f"{experiment.description}")
    click.echo(f"{'trial_id':<17}{'trial':<32}{'epochs':>7}  {'attempts':>8}  state")
    for s in specs:
        click.echo(f"{s.trial_id:<17}{s.label:<32}{s.config.epochs:>7}  "
                   f"{plan.attempts[s.trial_id]:>8}  {state[s.trial_id]}")
    click.echo(f"{len(specs)} trials: {len(plan.done)} done, {len(plan.gave_up)} given up, "
               f"{len(plan.pending)} would run -> {store.path}")
    if executor == "local":
        click.echo("resources: local executor, one trial at a time in this process")
    else:
        gpus = "1 if Ray sees a GPU, else 0" if gpus_per_trial is None else f"{gpus_per_trial:g}"
        click.echo(f"resources: Ray executor, {cpus_per_trial:g} CPU and {gpus} GPU per trial; "
                   f"concurrency = cluster CPUs / {cpus_per_trial:g}")
    if trial_fn != "hcld":
        click.echo(f"trial function: {trial_fn} (from ${TRIAL_FN_ENV})")
