"""Named grids as data, their expansion into trial points, and the plan of a run.

A grid is a small record (backbones × variants × folds, the trial settings they share, and sweeps:
settings tried at several values); the command line overrides any part of it. Adding a grid means
adding a `GridSpec` to `GRIDS`, not a code branch.

Expansion is the Cartesian product sweeps × backbones × variants × folds, each point's config put
in canonical form (`hcld.losses.variants.canonical`: settings the variant does not read are reset
to their defaults), then deduplicated: emo_only is not run three times for three temperatures, and
its one trial serves every temperature in the report.

`plan_grid` checks every setting of a run and expands its grid before any data is prepared (a typo
costs one line, not a feature extraction); `trial_state` then says, once the data key is known,
which of the plan's trials the store already holds.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grid.sweeps import parse_settings, parse_sweeps, serves, setting_combinations, swept_values
from hcld.config import BACKBONES, TrialConfig, Variant, choices
from hcld.data.folds import N_FOLDS
from hcld.errors import ConfigError, HcldError
from hcld.losses.variants import canonical

if TYPE_CHECKING:  # pyarrow-free at import: the benchmarks read GRIDS on machines without it
    from grid.result_store import Plan, ResultStore
    from grid.trials import TrialSpec

ABLATION_VARIANTS = ("emo_only", "orth", "wo_supcon", "wo_lcl", "hcld")  # the rows of Table II
# Table II's controls for HCLD plus the multi-task control that tells its two effects apart
READINGS_VARIANTS = ("emo_only", "multitask", "orth", "hcld")


@dataclass(frozen=True)
class GridSpec:
    name: str
    description: str
    backbones: tuple[str, ...] = BACKBONES
    variants: tuple[str, ...] = ABLATION_VARIANTS
    settings: dict[str, Any] = field(default_factory=dict)  # TrialConfig fields over its defaults
    sweeps: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # field -> values to try
    fold_scheme: str = "random5"
    folds: tuple[int, ...] | None = None  # None: every fold of the scheme
    synth_utterances: int = 1000  # size of the built-in synthetic corpus when no --iemocap is given
    seeds: int = 1  # training seeds 0..seeds-1 per trial (--seeds overrides): replicates within a fold


_DEMO_SCALE = {"model_size": "tiny", "embed_dim": 32, "epochs": 15, "warmup_epochs": 2}

GRIDS: dict[str, GridSpec] = {
    spec.name: spec
    for spec in (
        GridSpec(
            "full",
            "the paper's study: 3 backbones x 5 loss variants x 5 folds, 100 epochs (Sec. 3)",
        ),
        GridSpec(
            "quick",
            "the full grid's trials with 5 epochs (1 warm-up): a first look at the ablation",
            settings={"epochs": 5, "warmup_epochs": 1},
        ),
        GridSpec(
            "demo",
            "the 75 trials on tiny models, 15 epochs (2 warm-up), 1000-utterance synthetic corpus, "
            "3 seeds per fold: a CPU-sized first run with every table and test filled",
            settings=_DEMO_SCALE,
            seeds=3,
        ),
        GridSpec(
            "smoke",
            "tiny models, 2 epochs, fold 0 only, 200-utterance synthetic corpus: for CI",
            settings={"model_size": "tiny", "embed_dim": 32, "epochs": 2, "warmup_epochs": 1},
            folds=(0,),
            synth_utterances=200,
        ),
        GridSpec(
            "readings",
            "which reading of the paper makes HCLD help: trunk (shared | separate) x temperature "
            "(0.07 | 0.2 | 0.5) over emo_only, multitask, orth and hcld, demo scale, 3 seeds per fold",
            variants=READINGS_VARIANTS,
            settings=_DEMO_SCALE,
            sweeps={"trunk": ("shared", "separate"), "temperature": (0.07, 0.2, 0.5)},
            seeds=3,
        ),
    )
}


def get_grid(name: str) -> GridSpec:
    if name not in GRIDS:
        raise HcldError(f"unknown grid {name!r}; named grids: {', '.join(GRIDS)}")
    return GRIDS[name]


# -- resolving a grid -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialPoint:
    """One trial of the grid before its data is known: a canonical config and a fold number."""

    config: TrialConfig
    fold: int
    stage: str | None = None  # a tune's point (grid.tune): search | final; None for a grid run
    draw: int | None = None  # a tune's point: index of its searched configuration

    @property
    def label(self) -> str:
        label = f"{self.config.backbone}/{self.config.variant}/fold{self.fold}"
        return f"{label}/{self.stage}{self.draw}" if self.stage else label


def resolve(
    spec: GridSpec,
    *,
    n_folds: int,
    backbones: typing.Sequence[str] | None = None,
    variants: typing.Sequence[str] | None = None,
    settings: dict[str, Any] | None = None,
    sweeps: dict[str, tuple[Any, ...]] | None = None,
) -> list[TrialPoint]:
    """Expand a grid into distinct trial points, setting-major then backbone-major (so results
    arrive table-row by row). `sweeps` add to (and override) the spec's own."""
    folds = spec.folds if spec.folds is not None else tuple(range(n_folds))
    bad = [f for f in folds if not 0 <= f < n_folds]
    if bad:
        raise HcldError(f"grid {spec.name}: fold(s) {bad} outside the scheme's {n_folds} folds")
    all_sweeps = {**spec.sweeps, **(sweeps or {})}
    points: dict[tuple[TrialConfig, int], TrialPoint] = {}
    for combo in setting_combinations(all_sweeps):
        try:
            base = TrialConfig().replace(**{**spec.settings, **(settings or {}), **combo})
        except ConfigError as exc:
            raise HcldError(f"grid {spec.name}, setting {combo or 'base'}: {exc}") from None
        for b in backbones or spec.backbones:
            for v in variants or spec.variants:
                config = canonical(base.replace(backbone=b, variant=v))
                for fold in folds:
                    points.setdefault((config, fold), TrialPoint(config, fold))
    return list(points.values())


def points_per_setting(points: list[TrialPoint], sweeps: dict[str, tuple[Any, ...]]) -> list[tuple[dict, int]]:
    """[(combination, number of trials serving it)]: a trial that does not read a swept key
    serves every value of it, so the counts may add up to more than the trials."""
    own = [swept_values(p.config, sweeps) for p in points]
    return [(combo, sum(1 for values in own if serves(values, combo)))
            for combo in setting_combinations(sweeps)]


# -- the plan of a run ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GridPlan:
    """What a run will do, known before any data work: the grid and its checked trial points."""

    spec: GridSpec
    fold_scheme: str
    features: str
    sweeps: dict[str, tuple[Any, ...]]
    points: list[TrialPoint]
    n_folds: int  # the scheme's folds (loso: the data's groups, once the data is known)


def _check_names(kind: str, names: typing.Sequence[str] | None, known: tuple[str, ...]) -> None:
    bad = [n for n in names or () if n not in known]
    if bad:
        raise HcldError(f"unknown {kind} {bad}; known: {', '.join(known)}")


def plan_grid(
    grid: str,
    *,
    epochs: int | None = None,
    fold_scheme: str | None = None,
    features: str | None = None,
    backbones: typing.Sequence[str] | None = None,
    variants: typing.Sequence[str] | None = None,
    settings: typing.Iterable[str] = (),
    sweeps: typing.Iterable[str] = (),
    seeds: int | None = None,
    corpus: str | None = None,
    hubert_checkpoint: Path | None = None,
    roberta: Path | None = None,
    n_folds: int | None = None,
) -> GridPlan:
    """Check every setting (`settings`: --set items, `sweeps`: --sweep items) and expand the grid;
    raises HcldError on the first bad one. `seeds` N runs every trial with seeds 0..N-1: a sweep
    of `seed`, whose replicates the report averages within a fold."""
    spec = get_grid(grid)
    _check_names("backbone(s)", backbones, BACKBONES)
    _check_names("variant(s)", variants, choices(Variant))
    overrides = parse_settings(settings)
    swept = {**spec.sweeps, **parse_sweeps(sweeps)}
    if seeds is not None:
        if seeds < 1:
            raise HcldError(f"--seeds {seeds}: give at least 1")
        if "seed" in swept or "seed" in overrides:
            raise HcldError("--seeds N and a seed of --sweep/--set both choose the seeds; give one of them")
    elif "seed" not in swept and "seed" not in overrides:
        seeds = spec.seeds  # the grid's own replicates, unless a seed is set or swept
    if seeds is not None and seeds > 1:
        swept["seed"] = tuple(range(seeds))
    if epochs is not None:
        overrides["epochs"] = epochs
        # Warm-up must leave epochs to train: keep the grid's unless it would cover them all.
        warmup = spec.settings.get("warmup_epochs", TrialConfig.warmup_epochs)
        if "warmup_epochs" not in overrides and warmup >= epochs:
            overrides["warmup_epochs"] = epochs // 5
    if roberta is not None:
        overrides["roberta_path"] = str(Path(roberta).absolute())
    features = features or ("hubert" if corpus == "iemocap" else "fbank")  # the paper's features on its corpus
    if features == "hubert" and hubert_checkpoint is None:
        raise HcldError("--features hubert needs --hubert-checkpoint PATH (a local HuBERT-Base; "
                        "nothing is downloaded)")
    scheme = fold_scheme or spec.fold_scheme
    n_folds = n_folds or N_FOLDS[scheme]
    points = resolve(spec, n_folds=n_folds, backbones=backbones, variants=variants,
                     settings=overrides, sweeps=swept)
    return GridPlan(spec, scheme, features, swept, points, n_folds)


@dataclass(frozen=True)
class TrialState:
    """The plan's trials on this data, and what the store says of each: shared by the dry run
    and the real run."""

    specs: list[TrialSpec]  # one per trial point
    state: Plan  # done / gave up / pending ids and attempts so far
    pending: list[TrialSpec]  # the specs to run now, with the attempts earlier runs spent


def trial_state(plan: GridPlan, data_key: str, store: ResultStore, max_failures: int, *,
                save_models: bool = False) -> TrialState:
    from grid.trials import make_specs

    specs = make_specs(plan.points, data_key, store, plan.sweeps, save_models=save_models)
    state = store.plan([s.trial_id for s in specs], max_failures)
    todo = set(state.pending)
    pending = [state.resumed(s) for s in specs if s.trial_id in todo]
    return TrialState(specs, state, pending)
