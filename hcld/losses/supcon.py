"""Supervised contrastive loss (paper III-D-3, Khosla et al. 2020), L_SCL.

    z = x / ||x||,  A(i) = {a != i},  P(i) = {p in A(i): y_p = y_i}
    l_i = -1/|P(i)| sum_{p in P(i)} log( exp(z_i.z_p / tau) / sum_{a in A(i)} exp(z_i.z_a / tau) )
    L_SCL = mean of l_i over anchors with |P(i)| > 0  (0 if there is none)

Which embedding and which labels is configurable (`supcon_embedding` xe|xs, `supcon_labels`
emotion|speaker). The paper prints X_s but motivates the loss as keeping *emotion* categories
compact after ICLD; our default is X_e with emotion labels (docs/paper-notes.md). Before the loss
the batch goes through `sampling.ensure_positive_index` when `ensure_positives` is on, so every
anchor has a positive. The math is `kernels.supcon`.
"""

from __future__ import annotations

import torch

from hcld import kernels
from hcld.losses.sampling import ensure_positive_index


def supcon_loss(
    x: torch.Tensor,
    labels: torch.Tensor,
    *,
    temperature: float,
    ensure_positives: bool,
    impl: str,
    reduction: str,
) -> torch.Tensor:
    """`reduction="mean"`: the mean over anchors with a positive; "printed": their sum (the
    paper's -sum_{i in I}), i.e. the mean times the number of such anchors."""
    if ensure_positives:
        idx = ensure_positive_index(labels)
        x, labels = x[idx], labels[idx]
    loss = kernels.supcon(x, labels, temperature=temperature, impl=impl)
    if reduction == "printed":
        loss = loss * anchors_with_positive(labels)
    return loss


def anchors_with_positive(labels: torch.Tensor) -> torch.Tensor:
    """How many rows share their label with at least one other row (SupCon's anchors I), as a
    tensor on the labels' device (no host sync)."""
    same = labels[:, None] == labels[None, :]
    return ((same.sum(dim=1) > 1).sum()).to(torch.float32)


def supcon_inputs(
    xe: torch.Tensor, xs: torch.Tensor | None, emotion: torch.Tensor, speaker: torch.Tensor, *,
    embedding: str, labels: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick (embedding, labels) for SupCon from the configuration names (xe|xs, emotion|speaker)."""
    x = xe if embedding == "xe" else xs
    if x is None:
        raise ValueError("supcon_embedding='xs' needs the speaker branch")
    return x, (emotion if labels == "emotion" else speaker)
