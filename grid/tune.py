"""A tune of a grid: the same tuning budget for every variant, nested selection on validation only.

`hcld-grid tune GRID --budget N` runs, for every backbone x variant of the grid and every outer fold
(a *group*):

1. search: N configurations, draws 0..N-1 of SEARCH_SPACE, each trained on the outer fold's training
   set minus its validation part (hcld.data.validation) and scored on that part only
   (TrialConfig selection=best_val, evaluate_test=False): no search trial evaluates the test fold.
2. selection (`select`): the draw of highest validation emotion UA, ties to the lowest draw, read
   from the group's search rows, which hold no test number.
3. final: that configuration retrained on the whole outer training set (selection=final) with seeds
   0..S-1 and tested on the outer test fold.

Draws are made here, so they are content-addressed like every trial (Ray Tune's own search loop
and restore are not used: ray#30584, ray#58179). `--search random`: knob k's value at draw i comes
from numpy's PCG64 seeded with (search seed, crc32(k), i). `--search tpe`: the first TPE_STARTUP
draws are those random ones, the rest come from Optuna's TPE sampler in batches (`tpe_batch`),
through its ask-and-tell interface. Under random a draw's value is the same for every variant that
reads k (common random numbers: two variants' draw i share their lr, so they differ by their own
knobs, not by the luck of the shared ones) and does not depend on the order the knobs are listed
in. A variant reads only some knobs (hcld.losses.variants.unused_settings):
`canonical` resets the others, so each variant searches its own knobs plus the shared ones, with N
configurations like every other.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np

from grid.plan import GridPlan, TrialPoint
from grid.trials import FINISHED
from hcld.config import TrialConfig
from hcld.errors import HcldError
from hcld.losses.variants import canonical, unused_settings

SELECTION_METRIC = "val_emo_ua"  # of hcld.metrics.VALIDATION_METRICS: what the search maximises
SEARCHERS = ("random", "tpe")  # how draws are made (--search): seeded uniform, or Optuna's TPE (below)
SCHEDULERS = ("asha", "none")  # asha: Ray Tune's ASHAScheduler stops weak search trials early


@dataclass(frozen=True)
class Knob:
    """One searched TrialConfig setting: uniform on [low, high], on a log scale or a linear one."""

    name: str
    low: float
    high: float
    scale: Literal["log", "linear"] = "log"

    def value(self, u: float) -> float:
        """The knob's value at quantile u in [0, 1)."""
        if self.scale == "log":
            return self.rounded(math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low))))
        return self.rounded(self.low + u * (self.high - self.low))

    def rounded(self, x: float) -> float:
        """3 significant digits (readable configs), kept inside [low, high]."""
        return min(max(float(f"{x:.3g}"), self.low), self.high)

    def describe(self) -> str:
        return f"{self.name} ~ {'log-' if self.scale == 'log' else ''}uniform[{self.low:g}, {self.high:g}]"


# The search space. lr and weight_decay are read by every variant; the rest only by the variants
# with the term they belong to. Ranges hold the paper's values (lr 5e-4, tau 0.07, weights 1) well
# inside; the weights span a factor 10 either way, on a log scale centred on the paper's 1.
SEARCH_SPACE: tuple[Knob, ...] = (
    Knob("lr", 1e-4, 3e-3),
    Knob("weight_decay", 1e-6, 1e-2),
    Knob("temperature", 0.03, 1.0),
    Knob("icld_margin", 0.0, 0.5, "linear"),
    Knob("weight_spk_ce", 0.1, 10.0),
    Knob("weight_icld", 0.1, 10.0),
    Knob("weight_supcon", 0.1, 10.0),
    Knob("weight_lcl", 0.1, 10.0),
    Knob("weight_orth", 0.1, 10.0),
)
assert {k.name for k in SEARCH_SPACE} <= {f.name for f in fields(TrialConfig)}, "knobs are TrialConfig fields"


def draw(index: int, seed: int = 0) -> dict[str, float]:
    """Every knob's value at draw `index` of search seed `seed`."""
    return {k.name: k.value(float(np.random.default_rng([seed, zlib.crc32(k.name.encode()), index]).random()))
            for k in SEARCH_SPACE}


def searched_knobs(config: TrialConfig) -> list[Knob]:
    """The knobs this configuration's variant reads (the others are reset by `canonical`)."""
    unused = unused_settings(config)
    return [k for k in SEARCH_SPACE if k.name not in unused]


def search_config(base: TrialConfig, index: int, seed: int = 0) -> TrialConfig:
    """Draw `index` applied to a group's base configuration, as a search trial (validation only)."""
    return canonical(base.replace(**draw(index, seed), selection="best_val", evaluate_test=False, seed=0))


def final_config(search: TrialConfig, seed: int) -> TrialConfig:
    """A chosen search configuration retrained on the whole outer training set and tested."""
    return canonical(search.replace(selection="final", evaluate_test=True, seed=seed))


# -- TPE (Optuna's sampler, through its ask-and-tell interface) --------------------------------------

# --search tpe: draws 0..TPE_STARTUP-1 are the random draws above (the same as --search random's); the
# rest come in batches of TPE_BATCH (the trials of a batch run side by side), each proposed by Optuna's
# TPE sampler from the finished draws before the batch. A batch's sampler is seeded by (search seed,
# its first draw) and told the history in draw order, so the proposals are a function of the search
# seed and the earlier scores alone: a killed tune re-proposes exactly the batch it had proposed.
TPE_STARTUP = 4
TPE_BATCH = 4


def tpe_batch(knobs: list[Knob], history: list[tuple[dict[str, float], float]], start: int, count: int,
              seed: int) -> list[dict[str, float]]:
    """`count` proposals of the knobs' values for draws start.. from the (params, score) history."""
    import warnings

    try:
        import optuna
    except ImportError as exc:
        raise HcldError("--search tpe needs Optuna: pip install -e '.[tune]' (or pip install optuna)") from exc
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = {k.name: optuna.distributions.FloatDistribution(k.low, k.high, log=k.scale == "log")
                     for k in knobs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # constant_liar
        sampler = optuna.samplers.TPESampler(seed=int(np.random.SeedSequence([seed, start]).generate_state(1)[0]),
                                             n_startup_trials=0, constant_liar=True)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        for params, score in history:
            study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=score))
        proposals = []
        for _ in range(count):
            params = study.ask(distributions).params  # left running: constant_liar spreads the batch
            proposals.append({k.name: k.rounded(params[k.name]) for k in knobs})
    return proposals


# -- the plan of a tune ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    """One backbone x variant x outer fold of the grid: the search's unit of selection."""

    base: TrialPoint  # the grid's trial point: its config before any draw

    @property
    def label(self) -> str:
        return self.base.label


# What a tune knows of a search point: finished (done or stopped) with its score, finished without
# one (given up), or not finished yet.
UNFINISHED = object()
ScoreOf = Callable[[TrialPoint], Any]  # -> float | None | UNFINISHED


@dataclass(frozen=True)
class TunePlan:
    grid: GridPlan
    budget: int  # N: configurations per group
    seeds: int  # S: seeds of each final retrain
    search_seed: int
    scheduler: str
    groups: tuple[Group, ...]
    searcher: str = "random"

    @property
    def epochs(self) -> int:
        return self.groups[0].base.config.epochs if self.groups else 0

    def search_points(self, group: Group, score_of: ScoreOf) -> list[TrialPoint]:
        """The group's search points known now: all N draws under random; under tpe the startup
        draws, then each batch whose earlier draws have all finished (`score_of` says)."""
        base, fold = group.base.config, group.base.fold
        first = self.budget if self.searcher == "random" else min(TPE_STARTUP, self.budget)
        points = [TrialPoint(search_config(base, i, self.search_seed), fold, "search", i) for i in range(first)]
        while len(points) < self.budget:
            scores = [score_of(p) for p in points]
            if any(s is UNFINISHED for s in scores):
                break
            knobs = searched_knobs(points[0].config)
            history = [({k.name: getattr(p.config, k.name) for k in knobs}, s)
                       for p, s in zip(points, scores) if s is not None]
            start, count = len(points), min(TPE_BATCH, self.budget - len(points))
            for i, values in enumerate(tpe_batch(knobs, history, start, count, self.search_seed)):
                config = canonical(base.replace(**values, selection="best_val", evaluate_test=False, seed=0))
                points.append(TrialPoint(config, fold, "search", start + i))
        return points


def plan_tune(grid: GridPlan, *, budget: int, seeds: int, search_seed: int = 0, scheduler: str = "asha",
              searcher: str = "random") -> TunePlan:
    """The groups of a planned grid. The grid's own seeds are replaced by `seeds` (of the finals); a
    grid that sweeps settings is refused: its sweeps would be settings to tune apart, and the tune
    searches its own space."""
    if budget < 1:
        raise HcldError(f"--budget {budget}: give at least 1 configuration per variant")
    if seeds < 1:
        raise HcldError(f"--seeds {seeds}: give at least 1")
    if scheduler not in SCHEDULERS:
        raise HcldError(f"--scheduler {scheduler!r}: choose one of {', '.join(SCHEDULERS)}")
    if searcher not in SEARCHERS:
        raise HcldError(f"--search {searcher!r}: choose one of {', '.join(SEARCHERS)}")
    swept = sorted(k for k in grid.sweeps if k != "seed")
    if swept:
        raise HcldError(f"tune {grid.spec.name}: the grid sweeps {', '.join(swept)}; a tune searches its own "
                        f"space (grid.tune.SEARCH_SPACE), so tune a grid without sweeps, fixing any other "
                        f"setting with --set")
    if len({p.config.seed for p in grid.points}) > 1:
        raise HcldError(f"tune {grid.spec.name}: plan the grid with one seed; --seeds sets the finals' seeds")
    groups = tuple(Group(base) for base in grid.points)
    return TunePlan(grid, budget, seeds, search_seed, scheduler, groups, searcher)


# -- selection -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """The configuration a group's search chose, and what it rests on."""

    group: Group
    draw: int
    config: TrialConfig  # the search trial's configuration
    score: float  # its validation emotion UA
    searched: int  # finished search trials it was chosen from (< budget if some gave up)

    def final_points(self, seeds: int) -> list[TrialPoint]:
        return [TrialPoint(final_config(self.config, s), self.group.base.fold, "final", self.draw)
                for s in range(seeds)]


def select(group: Group, points: list[TrialPoint], search_ids: list[str], rows: Iterable[dict[str, Any]],
           unfinished: set[str], budget: int) -> Choice | None:
    """The group's choice from the store's rows, or None while its search is incomplete (fewer than
    `budget` points known, or one of them unfinished: `unfinished`) or none finished. Reads the
    validation score of search rows only: a search row has no test number to read."""
    ids = dict(zip(search_ids, points))
    if len(points) < budget or any(t in unfinished for t in ids):
        return None
    scores: dict[int, float] = {}
    for row in rows:
        point = ids.get(row["trial_id"])
        if point is None or row["status"] not in FINISHED:
            continue
        score = row.get(SELECTION_METRIC)
        if score is not None and not math.isnan(score):
            scores[point.draw] = float(score)
    if not scores:
        return None
    best = best_draw(scores)
    return Choice(group, best, points[best].config, scores[best], len(scores))


def best_draw(scores: dict[int, float]) -> int:
    """The selection rule: the draw of highest validation score; ties go to the lowest draw."""
    return min(scores, key=lambda d: (-scores[d], d))
