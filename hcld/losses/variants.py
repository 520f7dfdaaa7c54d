"""Loss variants as data: the rows of the paper's Table II (plus `multitask` and `icld_only`), the
weighted total, and which trial settings a variant does not read.

    L = w_emo·L_emo + w_spk·L_spe + w_icld·L_CLD + w_supcon·L_SCL + w_lcl·L_Label + w_orth·L_orth

with every paper weight 1 as printed (L = L_task + L_CLD + L_SCL + L_Label). A variant says which
terms are present (weight 1 or 0); a trial's weights (`loss_weights`) scale the present ones by its
TrialConfig.weight_* settings. A term whose weight is 0 is not computed at all; its curve value is
NaN ("not part of this variant").
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from hcld.config import TrialConfig, Variant, choices
from hcld.losses.icld import icld_loss
from hcld.losses.lcl import lcl_loss
from hcld.losses.orth import orth_loss
from hcld.losses.supcon import supcon_inputs, supcon_loss
from hcld.losses.task import cross_entropy

# curve/callback names of the terms, in the order of LossWeights' fields
TERM_NAMES = ("loss_emo_ce", "loss_spk_ce", "loss_icld", "loss_supcon", "loss_lcl", "loss_orth")


@dataclass(frozen=True)
class LossWeights:
    task_emo: float = 0.0
    task_spk: float = 0.0
    icld: float = 0.0
    supcon: float = 0.0
    lcl: float = 0.0
    orth: float = 0.0

    def as_tuple(self) -> tuple[float, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))

    def by_term(self) -> dict[str, float]:
        """{TERM_NAME: weight}; loss_terms computes exactly the terms whose weight is not 0."""
        return dict(zip(TERM_NAMES, self.as_tuple()))

    @property
    def needs_speaker_branch(self) -> bool:
        # SupCon may also contrast X_s: `uses_speaker_branch(config)` covers that case
        return any(w != 0 for w in (self.task_spk, self.icld, self.orth))

    @property
    def needs_anchors(self) -> bool:
        return self.lcl != 0


VARIANTS: dict[str, LossWeights] = {
    "emo_only": LossWeights(task_emo=1.0),
    # both task losses, no decoupling term: tells the multi-task effect (Sec. IV-C) from ICLD's
    "multitask": LossWeights(task_emo=1.0, task_spk=1.0),
    "orth": LossWeights(task_emo=1.0, task_spk=1.0, orth=1.0),
    "wo_supcon": LossWeights(task_emo=1.0, task_spk=1.0, icld=1.0, lcl=1.0),
    "wo_lcl": LossWeights(task_emo=1.0, task_spk=1.0, icld=1.0, supcon=1.0),
    "hcld": LossWeights(task_emo=1.0, task_spk=1.0, icld=1.0, supcon=1.0, lcl=1.0),
    "icld_only": LossWeights(task_emo=1.0, task_spk=1.0, icld=1.0),
}


assert set(VARIANTS) == set(choices(Variant)), "hcld.config.Variant lists the variants"


def variant_weights(name: str) -> LossWeights:
    """Which terms a variant has (weight 1) and lacks (0)."""
    return VARIANTS[name]  # TrialConfig has checked the name


# LossWeights field -> the TrialConfig setting that scales it (task_emo: fixed at 1, the reference)
WEIGHT_SETTINGS: dict[str, str] = {"task_spk": "weight_spk_ce", "icld": "weight_icld", "supcon": "weight_supcon",
                                   "lcl": "weight_lcl", "orth": "weight_orth"}


def loss_weights(config: TrialConfig) -> LossWeights:
    """The weights a trial trains with: its variant's terms, each scaled by its weight_* setting."""
    base = variant_weights(config.variant)
    scale = {term: getattr(config, setting) for term, setting in WEIGHT_SETTINGS.items()}
    return LossWeights(**{f.name: getattr(base, f.name) * scale.get(f.name, 1.0) for f in fields(LossWeights)})


def uses_speaker_branch(config: TrialConfig) -> bool:
    """Whether a trial of this config needs X_s at all (emo_only does not: a single-task model)."""
    w = variant_weights(config.variant)
    return w.needs_speaker_branch or (w.supcon != 0 and config.supcon_embedding == "xs")


# The settings each loss term reads; a trial whose variant lacks the term does not use them.
_TERM_SETTINGS: dict[str, tuple[str, ...]] = {
    "icld": ("icld_margin", "icld_negative", "icld_positive"),
    "supcon": ("supcon_embedding", "supcon_labels", "ensure_positives"),
    "lcl": ("anchor_source", "anchor_projection", "roberta_path"),
}
_TERM_SETTINGS = {term: (*_TERM_SETTINGS.get(term, ()), weight) for term, weight in WEIGHT_SETTINGS.items()}


def unused_settings(config: TrialConfig) -> frozenset[str]:
    """TrialConfig fields that cannot change this trial's outcome (e.g. the temperature of
    emo_only, the trunk of a model without speaker branch). A sweep over such a field runs the
    trial once (grid.plan), and the report lets that one trial serve every value."""
    w = variant_weights(config.variant)
    unused = {name for term, names in _TERM_SETTINGS.items() if getattr(w, term) == 0 for name in names}
    if w.supcon == 0 and w.lcl == 0:
        unused.add("temperature")
    if not uses_speaker_branch(config):
        unused |= {"trunk", "speaker_backbone"}
    elif config.trunk == "shared":
        unused.add("speaker_backbone")
    if config.selection == "final":  # no validation part is held out
        unused.add("validation_share")
    return frozenset(unused)


def canonical(config: TrialConfig) -> TrialConfig:
    """The config with every unused setting at its default: equal outcomes, one trial id."""
    defaults = TrialConfig()
    return config.replace(**{name: getattr(defaults, name) for name in unused_settings(config)})


def loss_terms(out: dict, emotion: torch.Tensor, speaker: torch.Tensor, config: TrialConfig,
               weights: LossWeights) -> dict:
    """Every term of the variant as a tensor (terms with weight 0 are skipped) keyed by TERM_NAMES.
    ICLD is a mean over pairs under either `reduction`: the paper prints it that way."""
    impl = config.loss_impl
    xe, xs = out["xe"], out.get("xs")
    terms: dict[str, torch.Tensor] = {}
    reduction = config.reduction
    if weights.task_emo:
        terms["loss_emo_ce"] = cross_entropy(out["emo_logits"], emotion, reduction=reduction)
    if weights.task_spk:
        terms["loss_spk_ce"] = cross_entropy(out["spk_logits"], speaker, reduction=reduction)
    if weights.icld:
        terms["loss_icld"] = icld_loss(
            xe, xs, emotion, speaker, margin=config.icld_margin, negative=config.icld_negative,
            positive=config.icld_positive, impl=impl,
        )
    if weights.supcon:
        x, labels = supcon_inputs(xe, xs, emotion, speaker, embedding=config.supcon_embedding,
                                  labels=config.supcon_labels)
        terms["loss_supcon"] = supcon_loss(
            x, labels, temperature=config.temperature, ensure_positives=config.ensure_positives, impl=impl,
            reduction=reduction,
        )
    if weights.lcl:
        terms["loss_lcl"] = lcl_loss(
            out["anchors"], xe, emotion, temperature=config.temperature, impl=impl, reduction=reduction
        )
    if weights.orth:
        # not printed in the paper: under "printed" it keeps its ratio to the (summed) task loss
        terms["loss_orth"] = orth_loss(xe, xs) * (len(emotion) if reduction == "printed" else 1)
    return terms


def weighted_total(terms: dict, weights: LossWeights) -> torch.Tensor:
    by_term = weights.by_term()
    return sum(by_term[name] * value for name, value in terms.items())

