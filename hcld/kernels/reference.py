"""PyTorch reference implementations of the pairwise losses (the ground truth for the Triton kernels).

Every function normalises its inputs itself (cosine geometry), takes integer label vectors, returns
a scalar, and is differentiable by autograd. Terms with no eligible pair/anchor contribute 0, never NaN.
This module imports only torch: it is shared by `hcld.losses` (training) and `kernels` (tests).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

NORM_EPS = 1e-8  # F.normalize's floor on ||x||: a zero vector normalises to zero (cosine 0 with all)
ICLD_NEGATIVE_FORMS = ("text", "printed")


def _wide(x: torch.Tensor) -> torch.Tensor:
    """Compute in fp32, or in fp64 for fp64 inputs (the high-precision reference of the GPU tests)."""
    return x if x.dtype == torch.float64 else x.float()


def _mean_over(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` where `mask` holds; 0 (with a gradient path) when the mask is empty."""
    count = mask.sum()
    total = (values * mask).sum()
    return total / count.clamp(min=1)


def icld(
    xe: torch.Tensor,
    xs: torch.Tensor,
    emotion: torch.Tensor,
    speaker: torch.Tensor,
    *,
    margin: float = 0.0,
    negative: str = "text",
) -> torch.Tensor:
    """Instance-level contrastive decoupling loss, L_CLD = L_positive + L_negative.

    positives x+ = ordered pairs (i, j), same speaker, different emotion:
        L_positive = 1/|x+| * sum (1 - cos(Xe[i], Xe[j]))^2
    negatives x- = ordered pairs (i, j), different speaker, same emotion:
        text:    L_negative = 1/|x-| * sum max(0, cos(Xs[i], Xs[j]) - margin)^2
        printed: L_negative = 1/|x-| * sum max(0, margin - cos(Xs[i], Xs[j]))^2
    Ordered pairs count each unordered pair twice in sum and count alike, so the means are the same.
    """
    if negative not in ICLD_NEGATIVE_FORMS:
        raise ValueError(f"icld negative form must be one of {ICLD_NEGATIVE_FORMS}, got {negative!r}")
    ze = F.normalize(_wide(xe), dim=1, eps=NORM_EPS)
    zs = F.normalize(_wide(xs), dim=1, eps=NORM_EPS)
    same_spk = speaker[:, None] == speaker[None, :]
    same_emo = emotion[:, None] == emotion[None, :]
    positive = (same_spk & ~same_emo).to(ze.dtype)
    negative_mask = (~same_spk & same_emo).to(ze.dtype)
    cos_e = ze @ ze.T
    cos_s = zs @ zs.T
    l_pos = _mean_over((1.0 - cos_e).pow(2), positive)
    hinge = (cos_s - margin) if negative == "text" else (margin - cos_s)
    l_neg = _mean_over(F.relu(hinge).pow(2), negative_mask)
    return l_pos + l_neg


def supcon(x: torch.Tensor, labels: torch.Tensor, *, temperature: float = 0.07) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, L_out), the paper's L_SCL.

    For anchor i: A(i) = all j != i, P(i) = {p in A(i): label p == label i},
        l_i = -1/|P(i)| * sum_{p in P(i)} log( exp(z_i.z_p/tau) / sum_{a in A(i)} exp(z_i.z_a/tau) )
    L = mean of l_i over anchors with |P(i)| > 0 (the paper prints a sum; the mean keeps the scale
    independent of the batch size, as in Khosla et al.'s code). 0 when no anchor has a positive.
    """
    n = x.shape[0]
    z = F.normalize(_wide(x), dim=1, eps=NORM_EPS)
    logits = (z @ z.T) / temperature
    self_mask = torch.eye(n, dtype=torch.bool, device=x.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positive = (labels[:, None] == labels[None, :]) & ~self_mask
    n_pos = positive.sum(dim=1)
    # where(): -inf * 0 on the diagonal would be NaN
    pos_log_prob = torch.where(positive, log_prob, torch.zeros_like(log_prob)).sum(dim=1)
    has_pos = n_pos > 0
    per_anchor = -pos_log_prob / n_pos.clamp(min=1)
    return _mean_over(per_anchor, has_pos.to(per_anchor.dtype))


def label_contrastive(
    anchors: torch.Tensor, x: torch.Tensor, labels: torch.Tensor, *, temperature: float = 0.07
) -> torch.Tensor:
    """Label-anchored contrastive loss (the paper's L_Label), rectangular form.

    anchors: [C, D], one vector per class (projected RoBERTa embeddings of the label words);
    x: [N, D] emotion embeddings; labels: [N] in 0..C-1.
        l_c = -1/|P(c)| * sum_{p in P(c)} log( exp(E_c.x_p/tau) / sum_{a=1..N} exp(E_c.x_a/tau) )
    with P(c) the samples labelled c. The printed sum over samples i uses E[i] = E_{label i}, so
    class c's term appears |P(c)| times: L = sum_c |P(c)| l_c / N = mean over samples of the term of
    their class. (The anchor is a label vector, not a sample, so no self-pair is excluded.)
    """
    a = F.normalize(_wide(anchors), dim=1, eps=NORM_EPS)
    z = F.normalize(_wide(x), dim=1, eps=NORM_EPS)
    logits = (a @ z.T) / temperature  # [C, N]
    log_norm = torch.logsumexp(logits, dim=1)  # [C]
    own = logits.gather(0, labels.view(1, -1)).squeeze(0)  # [N]: E_{label i} . x_i / tau
    if x.shape[0] == 0:
        return logits.sum() * 0.0
    return -(own - log_norm[labels]).mean()
