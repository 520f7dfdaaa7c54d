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

`positive="xs"` (not the paper) computes L_positive on X_s instead of X_e: same-speaker pairs of
different emotions pull their *speaker* embeddings together, making X_s emotion-invariant, the
mirror image of L_negative; the printed X_e form pulls one speaker's emotion embeddings together
across emotions (docs/paper-notes.md).
"""

from __future__ import annotations

import torch

from hcld import kernels


def icld_loss(
    xe: torch.Tensor,
    xs: torch.Tensor,
    emotion: torch.Tensor,
    speaker: torch.Tensor,
    *,
    margin: float,
    negative: str,
    positive: str,
    impl: str,
) -> torch.Tensor:
    x_pos = xe if positive == "xe" else xs
    return kernels.icld(x_pos, xs, emotion, speaker, margin=margin, negative=negative, impl=impl)
