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

import kernels
from hcld.losses import call_kernel
from hcld.losses.sampling import ensure_positive_index

SUPCON_EMBEDDINGS = ("xe", "xs")
SUPCON_LABELS = ("emotion", "speaker")


def supcon_loss(
    x: torch.Tensor,
    labels: torch.Tensor,
    *,
    temperature: float = 0.07,
    ensure_positives: bool = True,
    impl: str = "torch",
) -> torch.Tensor:
    if ensure_positives:
        idx = ensure_positive_index(labels)
        x, labels = x[idx], labels[idx]
    return call_kernel(kernels.supcon, x, labels, temperature=temperature, impl=impl)


def supcon_inputs(
    xe: torch.Tensor, xs: torch.Tensor | None, emotion: torch.Tensor, speaker: torch.Tensor, *, embedding: str, labels: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick (embedding, labels) for SupCon from the configuration names."""
    if embedding not in SUPCON_EMBEDDINGS:
        raise ValueError(f"supcon_embedding must be one of {SUPCON_EMBEDDINGS}, got {embedding!r}")
    if labels not in SUPCON_LABELS:
        raise ValueError(f"supcon_labels must be one of {SUPCON_LABELS}, got {labels!r}")
    x = xe if embedding == "xe" else xs
    if x is None:
        raise ValueError("supcon_embedding='xs' needs the speaker branch")
    return x, (emotion if labels == "emotion" else speaker)
