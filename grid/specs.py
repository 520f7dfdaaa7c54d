"""Named grids as data, and their expansion into trial specs.

A grid is a small record (backbones × variants × folds, the trial settings they share, and sweeps:
settings tried at several values); the command line overrides any part of it. Adding a grid means
adding a `GridSpec` to `GRIDS`, not a code branch.

Expansion is the Cartesian product sweeps × backbones × variants × folds, each point's config put
in canonical form (`hcld.losses.variants.canonical`: settings the variant does not read are reset
to their defaults), then deduplicated: emo_only is not run three times for three temperatures, and
its one trial serves every temperature in the report.
"""

from __future__ import annotations

import itertools
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from hcld.config import BACKBONES, TrialConfig, check_setting, field_type_names
from hcld.errors import ConfigError, HcldError
from hcld.losses.variants import canonical, unused_settings

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
            "the 75 trials on tiny models, 15 epochs (2 warm-up), 1000-utterance synthetic corpus: "
            "a CPU-sized first run with every table and test filled",
            settings=_DEMO_SCALE,
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
            "(0.07 | 0.2 | 0.5) over emo_only, multitask, orth and hcld, demo scale",
            variants=READINGS_VARIANTS,
            settings=_DEMO_SCALE,
            sweeps={"trunk": ("shared", "separate"), "temperature": (0.07, 0.2, 0.5)},
        ),
    )
}


def get_grid(name: str) -> GridSpec:
    if name not in GRIDS:
        raise HcldError(f"unknown grid {name!r}; named grids: {', '.join(GRIDS)}")
    return GRIDS[name]


# -- --set key=value and --sweep key=v1,v2 --------------------------------------------------------

_FIELD_TYPES = typing.get_type_hints(TrialConfig)
_NO_VALUE = object()  # "not parsed yet": None is a value some settings take


def _coerce(key: str, text: str, flag: str) -> Any:
    """Turn the text of one value into the type TrialConfig declares for `key`, and check it."""
    hint = _FIELD_TYPES[key]
    kinds = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    kinds = sorted(kinds, key=lambda k: k is not type(None))  # "none" means None before it means "none"
    value: Any = _NO_VALUE
    for kind in kinds:
        if kind is type(None) and text.lower() in ("none", "null", ""):
            value = None
        elif kind is bool and text.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            value = text.lower() in ("1", "true", "yes", "on")
        elif kind in (int, float):
            try:
                value = kind(text)
            except ValueError:
                continue
        elif kind is str or typing.get_origin(kind) is typing.Literal:
            value = text
        if value is not _NO_VALUE:
            break
    if value is _NO_VALUE:
        raise HcldError(f"{flag} {key}={text}: expected {field_type_names(key)}")
    try:  # range and choice checks are TrialConfig's: one place says what a setting may be
        check_setting(key, value)
    except ConfigError as exc:
        raise HcldError(f"{flag} {key}={text}: {exc}") from None
    return value


def _split_key(item: str, flag: str) -> tuple[str, str]:
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep:
        raise HcldError(f"{flag} {item!r}: expected key=value")
    if key not in _FIELD_TYPES:
        raise HcldError(f"{flag} {key}: not a trial setting; known: {', '.join(_FIELD_TYPES)}")
    return key, text.strip()


def parse_settings(items: typing.Iterable[str]) -> dict[str, Any]:
    """Parse `--set key=value` items into typed TrialConfig fields; a bad key or value is an error."""
    out: dict[str, Any] = {}
    for item in items:
        key, text = _split_key(item, "--set")
        out[key] = _coerce(key, text, "--set")
    return out


def parse_sweeps(items: typing.Iterable[str]) -> dict[str, tuple[Any, ...]]:
    """Parse `--sweep key=v1,v2,...` items into {field: typed values}, checked like --set."""
    out: dict[str, tuple[Any, ...]] = {}
    for item in items:
        key, text = _split_key(item, "--sweep")
        values = [v.strip() for v in text.split(",")]
        if not any(values):
            raise HcldError(f"--sweep {key}=: give at least one value")
        if key in ("backbone", "variant"):
            raise HcldError(f"--sweep {key}: use --{key}s, the grid's own {key} axis")
        typed = tuple(dict.fromkeys(_coerce(key, v, "--sweep") for v in values))  # no repeats
        out[key] = typed
    return out


# -- resolving a grid -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialPoint:
    """One trial of the grid before its data is known: a canonical config and a fold number."""

    config: TrialConfig
    fold: int

    @property
    def label(self) -> str:
        return f"{self.config.backbone}/{self.config.variant}/fold{self.fold}"


def setting_combinations(sweeps: dict[str, tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Every combination of swept values, in the order given ([{}] without sweeps)."""
    keys = list(sweeps)
    return [dict(zip(keys, values)) for values in itertools.product(*(sweeps[k] for k in keys))]


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


WILDCARD = "*"  # a swept key the trial does not read: it serves every value


def swept_values(config: TrialConfig, keys: typing.Iterable[str]) -> dict[str, Any]:
    """The trial's value of each swept key, WILDCARD where it does not read the key."""
    unused = unused_settings(config)
    return {k: WILDCARD if k in unused else getattr(config, k) for k in keys}


def points_per_setting(points: list[TrialPoint], sweeps: dict[str, tuple[Any, ...]]) -> list[tuple[dict, int]]:
    """[(combination, number of trials serving it)]: a trial that does not read a swept key
    serves every value of it, so the counts may add up to more than the trials."""
    own = [swept_values(p.config, sweeps) for p in points]
    return [(combo, sum(1 for values in own if all(values[k] in (WILDCARD, v) for k, v in combo.items())))
            for combo in setting_combinations(sweeps)]
