"""Label-based contrastive loss (paper III-D-2), L_Label, contrasting label anchors with X_e.

    E_c = projected anchor of emotion class c (RoBERTa embedding of the label word, hcld.anchors,
          through the model's learnable Linear to X_e's size), hats are L2-normalised
    l_c = -1/|P(c)| sum_{p in P(c)} log( exp(E_c.X_e[p] / tau) / sum_{a in batch} exp(E_c.X_e[a] / tau) )
    L_Label = sum_c |P(c)| l_c / N   (the printed sum over samples i with E[i] = E_{y_i}, as a mean)

The anchor is a label vector, not a sample, so every sample is itself a positive of its class
anchor: no replication is needed for LCL (see sampling.py). The math is
`kernels.label_contrastive`.
"""

from __future__ import annotations

import torch

from hcld import kernels


def lcl_loss(
    anchors: torch.Tensor, xe: torch.Tensor, emotion: torch.Tensor, *, temperature: float, impl: str, reduction: str
) -> torch.Tensor:
    """`reduction="mean"`: the mean over samples; "printed": the paper's sum over i in I."""
    loss = kernels.label_contrastive(anchors, xe, emotion, temperature=temperature, impl=impl)
    return loss * len(emotion) if reduction == "printed" else loss
