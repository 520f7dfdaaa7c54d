"""Task loss (paper III-C): L_task = L_emo + L_spe.

    L_emo = CE(softmax(W_e X_e + b_e), y_e),  L_spe = CE(softmax(W_s X_s + b_s), y_s)

The paper prints sums over the N samples. `reduction="mean"` (default) takes batch means (the usual
PyTorch convention), so the task terms and the contrastive terms (also means) keep the same scale
at any batch size; `reduction="printed"` takes the printed sums (docs/paper-notes.md).
The two terms are returned separately so a variant can weight them (emo_only drops L_spe).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, *, reduction: str) -> torch.Tensor:
    """L_emo or L_spe: the batch mean ("mean") or the printed sum ("printed")."""
    return F.cross_entropy(logits.float(), labels, reduction="sum" if reduction == "printed" else "mean")
