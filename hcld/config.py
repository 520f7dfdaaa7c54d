"""Typed configuration of one trial, and the data a trial sees.

These two types are the contract between the data pipeline (`hcld.pipeline`), the trainer
(`hcld.train.run_trial`) and the grid runner (`grid.execute`). Fields may be added (with defaults);
renaming one changes every trial id, so do not.

`TrialConfig` checks itself when it is built: a string option outside its `Literal` choices, a
number out of range or a wrong type raises `ConfigError` naming the field, so a bad `--set` fails
at the door, before any data is touched. The choices written here are the only list of them: the
CLI, the grid specs and the registries (`hcld.models`, `hcld.losses.variants`) read them from here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from hcld.errors import ConfigError
from hcld.labels import EMOTIONS

Backbone = Literal["cnn", "lstm", "transformer"]
Variant = Literal["emo_only", "multitask", "orth", "wo_supcon", "wo_lcl", "hcld", "icld_only"]
ModelSize = Literal["paper", "small", "tiny"]
Trunk = Literal["shared", "separate"]
Reduction = Literal["mean", "printed"]
AnchorProjection = Literal["learned", "fixed"]
IcldNegative = Literal["text", "printed"]
Embedding = Literal["xe", "xs"]
SupconLabels = Literal["emotion", "speaker"]
AnchorSource = Literal["auto", "roberta", "fallback"]
LossImpl = Literal["torch", "triton"]
Precision = Literal["fp32", "bf16"]
FeaturePlacement = Literal["auto", "device", "host"]
Device = Literal["auto", "cpu", "cuda"]
Selection = Literal["final", "best_val"]


def choices(kind: Any) -> tuple[str, ...]:
    """The allowed values of one of the Literal types above, e.g. choices(Backbone)."""
    return typing.get_args(kind)


BACKBONES: tuple[str, ...] = choices(Backbone)


@dataclass(frozen=True)
class TrialConfig:
    # -- model ---------------------------------------------------------------------------------
    backbone: Backbone = "cnn"  # the encoder family (emotion branch when trunk=separate)
    # shared: one encoder, two heads give X_e and X_s (Sec. III-B: "X_i = Encoder(x_i)");
    # separate: one encoder per embedding (docs/paper-notes.md, "Trunk")
    trunk: Trunk = "shared"
    speaker_backbone: Backbone | None = None  # trunk=separate only: None = same as `backbone`
    model_size: ModelSize = "paper"  # preset widths (see hcld.models)
    embed_dim: int = 256  # size of X_e and X_s
    # -- loss ----------------------------------------------------------------------------------
    variant: Variant = "hcld"  # loss terms (hcld.losses.variants.VARIANTS)
    temperature: float = 0.07  # tau of SupCon and LCL
    icld_margin: float = 0.0  # margin of the ICLD negative hinge
    icld_negative: IcldNegative = "text"  # text: max(0, cos - m)^2 | printed: max(0, m - cos)^2
    icld_positive: Embedding = "xe"  # embedding of ICLD's positive pairs: xe (as printed) | xs
    supcon_embedding: Embedding = "xe"  # which embedding SupCon contrasts
    supcon_labels: SupconLabels = "emotion"  # which labels define SupCon positives
    ensure_positives: bool = True  # paper's "replicate and downsample" so every anchor has a positive
    # mean: every term a batch mean | printed: sums for CEs, SupCon and L_Label, means for ICLD
    reduction: Reduction = "mean"
    anchor_source: AnchorSource = "auto"  # where LCL's label anchors come from
    anchor_projection: AnchorProjection = "learned"  # how anchors meet X_e (hcld.anchors)
    roberta_path: str | None = None  # local roberta-base folder (see README)
    loss_impl: LossImpl = "torch"  # implementation of the pairwise losses (hcld/kernels/)
    # weight of each term in the total (hcld.losses.variants); 1 = the paper's plain sum. A weight
    # applies only where the variant has the term (else it is an unused setting); the emotion CE
    # keeps weight 1: the scale the others are relative to. `hcld-grid tune` searches them.
    weight_spk_ce: float = 1.0
    weight_icld: float = 1.0
    weight_supcon: float = 1.0
    weight_lcl: float = 1.0
    weight_orth: float = 1.0
    # -- optimisation --------------------------------------------------------------------------
    epochs: int = 100
    batch_size: int = 32
    lr: float = 5e-4
    warmup_epochs: int = 5
    weight_decay: float = 0.0
    seed: int = 0
    # which epoch is reported: final = the last one (the test fold chooses nothing; no validation
    # part) | best_val = the epoch of highest validation emotion UA (ties: the earliest), the
    # validation part being held out of the outer training set (hcld.data.validation)
    selection: Selection = "final"
    # share of the outer training set held out as the validation part; read with best_val only
    # (an unused setting under final: hcld.losses.variants.unused_settings)
    validation_share: float = 0.1
    # False: the test fold is never evaluated (a tune's search trials, grid.tune): the trial reports
    # the best_val epoch's validation scores only, its test metrics are NaN and no predictions are
    # written. Needs selection=best_val (something must choose the epoch without the test fold).
    evaluate_test: bool = True
    # -- execution (does not change what is computed, up to rounding) ----------------------------
    precision: Precision = "fp32"  # bf16: autocast of the model's forward (hcld.train)
    feature_placement: FeaturePlacement = "auto"  # device: features resident on the trial's device
    device: Device = "auto"  # auto: cuda when available
    threads: int | None = None  # torch intra-op threads; None leaves torch's default

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            check_setting(f.name, getattr(self, f.name))
        if self.speaker_backbone is not None and self.trunk != "separate":
            raise ConfigError(f"speaker_backbone={self.speaker_backbone!r} needs trunk=separate "
                              f"(a shared trunk has one backbone: {self.backbone!r})")
        if not self.evaluate_test and self.selection != "best_val":
            raise ConfigError("evaluate_test=False needs selection=best_val: without the test fold only "
                              "the validation part can choose the reported epoch")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrialConfig:
        unknown = sorted(set(values) - set(_HINTS))
        if unknown:
            raise ConfigError(f"unknown trial setting(s) {unknown}; known: {', '.join(_HINTS)}")
        return cls(**values)

    def replace(self, **changes: Any) -> TrialConfig:
        return self.from_dict({**self.to_dict(), **changes})


# (bound, inclusive) per numeric field; fields not listed may take any finite value of their type
_LOWER_BOUNDS: dict[str, tuple[float, bool]] = {
    "embed_dim": (4, True),  # >= the 4 emotion anchors (anchor_projection=fixed embeds them isometrically)
    "temperature": (0.0, False),
    "epochs": (1, True),
    "batch_size": (2, True),  # a contrastive pair needs two rows
    "lr": (0.0, False),
    "warmup_epochs": (0, True),
    "weight_decay": (0.0, True),
    "seed": (0, True),
    "threads": (1, True),
    "validation_share": (0.0, False),
    # > 0: a zero weight would turn a term off, i.e. be another variant (choose that by name)
    **{f"weight_{term}": (0.0, False) for term in ("spk_ce", "icld", "supcon", "lcl", "orth")},
}
_UPPER_BOUNDS: dict[str, tuple[float, bool]] = {
    "validation_share": (1.0, False),  # something must be left to train on
}

_HINTS = typing.get_type_hints(TrialConfig)


def field_type_names(name: str) -> str:
    """How a field's type reads in an error: 'cnn | lstm | transformer | None', 'float', ..."""
    return " | ".join(_kind_names(_HINTS[name]))


def _kind_names(hint: Any) -> list[str]:
    if typing.get_origin(hint) is Literal:
        return [str(v) for v in typing.get_args(hint)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return [n for arg in typing.get_args(hint) for n in _kind_names(arg)]
    return ["None" if hint is type(None) else hint.__name__]


def _accepts(hint: Any, value: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return value in typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(arg, value) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:  # an int is a fine float; NaN and inf are not settings
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, hint)


def check_setting(name: str, value: Any) -> None:
    """Raise ConfigError unless `value` is allowed for field `name` on its own (type, choices,
    range); TrialConfig adds the checks that involve two fields."""
    if not _accepts(_HINTS[name], value):
        raise ConfigError(f"{name}={value!r}: expected {field_type_names(name)}")
    if name in _LOWER_BOUNDS and value is not None:
        low, inclusive = _LOWER_BOUNDS[name]
        if not (value >= low if inclusive else value > low):
            raise ConfigError(f"{name}={value!r}: must be {'>=' if inclusive else '>'} {low}")
    if name in _UPPER_BOUNDS and value is not None:
        high, inclusive = _UPPER_BOUNDS[name]
        if not (value <= high if inclusive else value < high):
            raise ConfigError(f"{name}={value!r}: must be {'<=' if inclusive else '<'} {high}")


@dataclass
class TrialData:
    """Features and labels of one fold. `features` is usually a read-only memmap shared by trials."""

    features: np.ndarray  # [N, T, D], float16 or float32
    emotion: np.ndarray  # [N] int64, index into emotion_names
    speaker: np.ndarray  # [N] int64, index into speaker_names
    train_idx: np.ndarray  # [N_train] int64 rows of `features`
    test_idx: np.ndarray  # [N_test] int64 rows of `features`
    speaker_names: list[str] = field(default_factory=list)
    utt_ids: list[str] = field(default_factory=list)
    description: str = ""  # e.g. "synthetic corpus, fbank, random5 fold 2"
    feature_key: str = ""  # feature-store entry: lets a worker keep features resident across trials
    # the corpus' label set in class-index order (hcld.data.manifest.emotion_names)
    emotion_names: list[str] = field(default_factory=lambda: list(EMOTIONS))
    # how the features were computed from audio (hcld.features.extractor_spec): a saved model keeps it
    extractor: dict = field(default_factory=dict)


@dataclass
class TrialResult:
    """What `hcld.train.run_trial` returns. Metrics are fractions in [0, 1]; NaN where undefined
    (e.g. speaker accuracy on a leave-one-session-out test fold, whose speakers were never seen)."""

    # emo_wa, emo_ua, spk_wa, spk_ua, emo_f1, probe_spk_from_xe, probe_emo_from_xs (hcld.metrics.METRICS),
    # val_emo_wa, val_emo_ua (VALIDATION_METRICS: the reported epoch's validation scores; NaN with final)
    metrics: dict[str, float]
    # one dict per epoch: epoch, loss terms, seconds, and the test metrics (selection=final) or
    # val_emo_wa / val_emo_ua (best_val: no test metric is computed before the epoch is chosen)
    curves: list[dict[str, float]]
    confusion_emotion: list[list[int]]  # rows = true, columns = predicted, order TrialData.emotion_names
    confusion_speaker: list[list[int]]  # order TrialData.speaker_names
    reported_epoch: int  # which epoch `metrics` come from: the last (selection=final) or the best validation one
    seconds: float  # wall time of the whole trial
    device: str  # e.g. "cpu", "cuda:0 (NVIDIA H100 80GB HBM3)"
    anchor_source: str  # what LCL's anchors actually were: "roberta:<path>" | "fallback:<kind>" | "unused"
    loss_impl: str  # torch | triton | triton-interpreter, as actually run
    # rows of each part: train = rows the model was fit on, validation = rows held out of the
    # outer training set for selection (0 with selection=final), test = the test fold's rows
    sizes: dict[str, int] = field(default_factory=dict)
    # the test fold at the reported epoch: utt_id (list[str], TrialData.utt_ids or ""), true and
    # pred (int64 [n_test]), prob (float32 [n_test, K], softmax of the emotion head, K classes);
    # written to predictions.npz by hcld.train.write_artifacts, not sent through the row
    predictions: dict[str, Any] = field(default_factory=dict)
    # the validation utterance ids (empty with selection=final): recorded in result.json
    validation_utt_ids: list[str] = field(default_factory=list)
    emotion_names: list[str] = field(default_factory=lambda: list(EMOTIONS))  # TrialData.emotion_names
