"""Typed configuration of one trial, and the data a trial sees.

These two types are the contract between the data pipeline (`hcld.pipeline`), the trainer
(`hcld.train.run_trial`) and the grid runner (`grid.runner`). Fields may be added (with defaults);
renaming one changes every trial id, so do not.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TrialConfig:
    # -- model ---------------------------------------------------------------------------------
    backbone: str = "cnn"  # emotion branch: cnn | lstm | transformer
    speaker_backbone: str | None = None  # None: same as `backbone` (the paper); set to mix branches
    model_size: str = "paper"  # paper | small | tiny: preset widths (see hcld.models)
    embed_dim: int = 256  # size of X_e and X_s
    # -- loss ----------------------------------------------------------------------------------
    variant: str = "hcld"  # emo_only | orth | wo_supcon | wo_lcl | hcld | icld_only (hcld.losses.variants)
    temperature: float = 0.07  # tau of SupCon and LCL
    icld_margin: float = 0.0  # margin of the ICLD negative hinge
    icld_negative: str = "text"  # text: max(0, cos - m)^2 | printed: max(0, m - cos)^2 (docs/paper-notes.md)
    icld_positive: str = "xe"  # embedding of ICLD's positive pairs: xe (as printed) | xs (docs/paper-notes.md)
    supcon_embedding: str = "xe"  # xe | xs: which embedding SupCon contrasts
    supcon_labels: str = "emotion"  # emotion | speaker: which labels define SupCon positives
    ensure_positives: bool = True  # paper's "replicate and downsample" so every anchor has a positive
    anchor_source: str = "auto"  # auto | roberta | fallback: where LCL's label anchors come from
    roberta_path: str | None = None  # local roberta-base folder (see README)
    loss_impl: str = "torch"  # torch | triton: implementation of the pairwise losses (kernels/)
    # -- optimisation --------------------------------------------------------------------------
    epochs: int = 100
    batch_size: int = 32
    lr: float = 5e-4
    warmup_epochs: int = 5
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    threads: int | None = None  # torch intra-op threads; None leaves torch's default

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrialConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown trial config field(s) {unknown}; known: {sorted(known)}")
        return cls(**values)

    def replace(self, **changes: Any) -> "TrialConfig":
        return self.from_dict({**self.to_dict(), **changes})


@dataclass
class TrialData:
    """Features and labels of one fold. `features` is usually a read-only memmap shared by trials."""

    features: np.ndarray  # [N, T, D], float16 or float32
    emotion: np.ndarray  # [N] int64, index into hcld.labels.EMOTIONS
    speaker: np.ndarray  # [N] int64, index into speaker_names
    train_idx: np.ndarray  # [N_train] int64 rows of `features`
    test_idx: np.ndarray  # [N_test] int64 rows of `features`
    speaker_names: list[str] = field(default_factory=list)
    utt_ids: list[str] = field(default_factory=list)
    description: str = ""  # e.g. "synthetic corpus, fbank, random5 fold 2"


@dataclass
class TrialResult:
    """What `hcld.train.run_trial` returns. Metrics are fractions in [0, 1]; NaN where undefined
    (e.g. speaker accuracy on a leave-one-session-out test fold, whose speakers were never seen)."""

    metrics: dict[str, float]  # emo_wa, emo_ua, spk_wa, spk_ua, probe_spk_from_xe, probe_emo_from_xs
    curves: list[dict[str, float]]  # one dict per epoch: epoch, loss terms, test metrics, seconds
    confusion_emotion: list[list[int]]  # rows = true, columns = predicted, order hcld.labels.EMOTIONS
    confusion_speaker: list[list[int]]  # order TrialData.speaker_names
    reported_epoch: int  # which epoch `metrics` come from (the final one unless a rule says otherwise)
    seconds: float  # wall time of the whole trial
    device: str  # e.g. "cpu", "cuda:0 (NVIDIA H100 80GB HBM3)"
    anchor_source: str  # what LCL's anchors actually were: "roberta:<path>" | "fallback:<kind>" | "unused"
    loss_impl: str  # torch | triton, as actually run
