"""Instance-level contrastive decoupling loss (paper III-D-1), L_CLD = L_positive + L_negative.

    x+ = pairs (i, j), same speaker and different emotion
    x- = pairs (i, j), different speaker and same emotion
    L_positive = 1/|x+| sum_{x+} (1 - cos(X_e[i], X_e[j]))^2
    L_negative = 1/|x-| sum_{x-} max(0, cos(X_s[i], X_s[j]) - m)^2     ("text", our default)
               = 1/|x-| sum_{x-} max(0, m - cos(X_s[i], X_s[j]))^2     ("printed")

The printed hinge max(0, m - cos)^2 penalises speaker features that are too *dissimilar*, which
contradicts the text ("we want the speaker features to be further apart ... similarity less than a
preset threshold"); "text" implements the sentence. See docs/paper-notes.md. An empty pair set
contributes 0 (never NaN). The math is `kernels.icld`.
"""

from __future__ import annotations

import torch

import kernels
from hcld.losses import call_kernel


def icld_loss(
    xe: torch.Tensor,
    xs: torch.Tensor,
    emotion: torch.Tensor,
    speaker: torch.Tensor,
    *,
    margin: float = 0.0,
    negative: str = "text",
    impl: str = "torch",
) -> torch.Tensor:
    return call_kernel(kernels.icld, xe, xs, emotion, speaker, margin=margin, negative=negative, impl=impl)
