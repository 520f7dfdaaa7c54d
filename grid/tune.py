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

Draws are made here, not by a searcher library, so they are content-addressed like every trial:
knob k's value at draw i comes from numpy's PCG64 seeded with (search seed, crc32(k), i). It is the
same for every variant that reads k (common random numbers: two variants' draw i share their lr,
so they differ by their own knobs, not by the luck of the shared ones) and does not depend on the
order the knobs are listed in. A variant reads only some knobs (hcld.losses.variants.unused_settings):
`canonical` resets the others, so each variant searches its own knobs plus the shared ones, with N
configurations like every other.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np

from grid.plan import GridPlan, TrialPoint
from grid.trials import FINISHED
from hcld.config import TrialConfig
from hcld.errors import HcldError
from hcld.losses.variants import canonical, unused_settings

SELECTION_METRIC = "val_emo_ua"  # of hcld.metrics.VALIDATION_METRICS: what the search maximises
SEARCHERS = ("random",)  # how draws are made (--search)
SCHEDULERS = ("asha", "none")  # asha: Ray Tune's ASHAScheduler stops weak search trials early


@dataclass(frozen=True)
class Knob:
    """One searched TrialConfig setting: uniform on [low, high], on a log scale or a linear one."""

    name: str
    low: float
    high: float
    scale: Literal["log", "linear"] = "log"

    def value(self, u: float) -> float:
        """The knob's value at quantile u in [0, 1), rounded to 3 significant digits (readable configs)."""
        if self.scale == "log":
            x = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            x = self.low + u * (self.high - self.low)
        return float(f"{x:.3g}")

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


# -- the plan of a tune ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    """One backbone x variant x outer fold of the grid, and its N search points."""

    base: TrialPoint  # the grid's trial point: its config before any draw
    search: tuple[TrialPoint, ...]

    @property
    def key(self) -> tuple[str, str, int]:
        return self.base.config.backbone, self.base.config.variant, self.base.fold

    @property
    def label(self) -> str:
        return self.base.label


@dataclass(frozen=True)
class TunePlan:
    grid: GridPlan
    budget: int  # N: configurations per group
    seeds: int  # S: seeds of each final retrain
    search_seed: int
    scheduler: str
    groups: tuple[Group, ...]

    @property
    def search_points(self) -> list[TrialPoint]:
        return [p for g in self.groups for p in g.search]

    @property
    def epochs(self) -> int:
        return self.groups[0].base.config.epochs if self.groups else 0


def plan_tune(grid: GridPlan, *, budget: int, seeds: int, search_seed: int = 0, scheduler: str = "asha",
              ) -> TunePlan:
    """The groups of a planned grid, each with its N search points. The grid's own seeds are
    replaced by `seeds` (of the finals); a grid that sweeps settings is refused: its sweeps would be
    settings to tune apart, and the tune searches its own space."""
    if budget < 1:
        raise HcldError(f"--budget {budget}: give at least 1 configuration per variant")
    if seeds < 1:
        raise HcldError(f"--seeds {seeds}: give at least 1")
    if scheduler not in SCHEDULERS:
        raise HcldError(f"--scheduler {scheduler!r}: choose one of {', '.join(SCHEDULERS)}")
    swept = sorted(k for k in grid.sweeps if k != "seed")
    if swept:
        raise HcldError(f"tune {grid.spec.name}: the grid sweeps {', '.join(swept)}; a tune searches its own "
                        f"space (grid.tune.SEARCH_SPACE), so tune a grid without sweeps, fixing any other "
                        f"setting with --set")
    if len({p.config.seed for p in grid.points}) > 1:
        raise HcldError(f"tune {grid.spec.name}: plan the grid with one seed; --seeds sets the finals' seeds")
    groups = []
    for base in grid.points:
        search = tuple(TrialPoint(search_config(base.config, i, search_seed), base.fold, "search", i)
                       for i in range(budget))
        groups.append(Group(base, search))
    return TunePlan(grid, budget, seeds, search_seed, scheduler, tuple(groups))


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


def select(group: Group, search_ids: list[str], rows: Iterable[dict[str, Any]],
           unfinished: set[str]) -> Choice | None:
    """The group's choice from the store's rows, or None while a search trial of it is unfinished
    (pending; `unfinished`) or none finished. Reads the validation score of search rows only: a
    search row has no test number to read."""
    ids = dict(zip(search_ids, group.search))
    if any(t in unfinished for t in ids):
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
    return Choice(group, best, group.search[best].config, scores[best], len(scores))


def best_draw(scores: dict[int, float]) -> int:
    """The selection rule: the draw of highest validation score; ties go to the lowest draw."""
    return min(scores, key=lambda d: (-scores[d], d))
