"""Task loss (paper III-C): L_task = L_emo + L_spe.

    L_emo = CE(softmax(W_e X_e + b_e), y_e),  L_spe = CE(softmax(W_s X_s + b_s), y_s)

The paper prints sums over the N samples; we take batch means (the usual PyTorch convention), so
the task terms and the contrastive terms (also means) keep the same scale at any batch size.
The two terms are returned separately so a variant can weight them (emo_only drops L_spe).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def emotion_ce(emo_logits: torch.Tensor, emotion: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(emo_logits.float(), emotion)


def speaker_ce(spk_logits: torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(spk_logits.float(), speaker)
