"""Named grids as data, and their expansion into trial specs.

A grid is a small record (backbones × variants × folds + the trial settings they share); the
command line overrides any part of it. Adding a grid means adding a `GridSpec` to `GRIDS`, not a
code branch.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from hcld.config import TrialConfig
from hcld.errors import HcldError

BACKBONES = ("cnn", "lstm", "transformer")
ABLATION_VARIANTS = ("emo_only", "orth", "wo_supcon", "wo_lcl", "hcld")  # the rows of Table II


@dataclass(frozen=True)
class GridSpec:
    name: str
    description: str
    backbones: tuple[str, ...] = BACKBONES
    variants: tuple[str, ...] = ABLATION_VARIANTS
    settings: dict[str, Any] = field(default_factory=dict)  # TrialConfig fields over its defaults
    fold_scheme: str = "random5"
    folds: tuple[int, ...] | None = None  # None: every fold of the scheme
    synth_utterances: int = 1000  # size of the built-in synthetic corpus when no --iemocap is given


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
            settings={"model_size": "tiny", "embed_dim": 32, "epochs": 15, "warmup_epochs": 2},
        ),
        GridSpec(
            "smoke",
            "tiny models, 2 epochs, fold 0 only, 200-utterance synthetic corpus: for CI",
            settings={"model_size": "tiny", "embed_dim": 32, "epochs": 2, "warmup_epochs": 1},
            folds=(0,),
            synth_utterances=200,
        ),
    )
}


def get_grid(name: str) -> GridSpec:
    if name not in GRIDS:
        raise HcldError(f"unknown grid {name!r}; named grids: {', '.join(GRIDS)}")
    return GRIDS[name]


# -- --set key=value ------------------------------------------------------------------------------

_FIELD_TYPES = typing.get_type_hints(TrialConfig)


def _coerce(key: str, text: str) -> Any:
    """Turn the text of `--set key=value` into the type TrialConfig declares for `key`."""
    hint = _FIELD_TYPES[key]
    kinds = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if type(None) in kinds and text.lower() in ("none", "null", ""):
        return None
    for kind in kinds:
        if kind is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
        elif kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
        elif kind is str:
            return text
    names = " | ".join("None" if k is type(None) else k.__name__ for k in kinds)
    raise HcldError(f"--set {key}={text}: expected {names}")


def parse_settings(items: typing.Iterable[str]) -> dict[str, Any]:
    """Parse `--set key=value` items into typed TrialConfig fields; unknown keys are an error."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep:
            raise HcldError(f"--set {item!r}: expected key=value")
        if key not in _FIELD_TYPES:
            known = ", ".join(f.name for f in dataclasses.fields(TrialConfig))
            raise HcldError(f"--set {key}: not a trial setting; known: {known}")
        out[key] = _coerce(key, text.strip())
    return out


# -- resolving a grid -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialPoint:
    """One cell of the grid before its data is known: a resolved config and a fold number."""

    config: TrialConfig
    fold: int

    @property
    def label(self) -> str:
        return f"{self.config.backbone}/{self.config.variant}/fold{self.fold}"


def resolve(
    spec: GridSpec,
    *,
    n_folds: int,
    backbones: typing.Sequence[str] | None = None,
    variants: typing.Sequence[str] | None = None,
    settings: dict[str, Any] | None = None,
) -> list[TrialPoint]:
    """Expand a grid into trial points, backbone-major (so results arrive table-row by row)."""
    base = TrialConfig().replace(**{**spec.settings, **(settings or {})})
    folds = spec.folds if spec.folds is not None else tuple(range(n_folds))
    bad = [f for f in folds if not 0 <= f < n_folds]
    if bad:
        raise HcldError(f"grid {spec.name}: fold(s) {bad} outside the scheme's {n_folds} folds")
    return [
        TrialPoint(base.replace(backbone=b, variant=v), fold)
        for b in (backbones or spec.backbones)
        for v in (variants or spec.variants)
        for fold in folds
    ]
