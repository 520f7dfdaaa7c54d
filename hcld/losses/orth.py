"""Orthogonality baseline (the paper's "orth" rows, after Wang et al., ICASSP 2022).

The paper gives no formula. We penalise linear dependence between the two embeddings over the
batch: standardise every feature column over the batch (zero mean, unit variance), form the
cross-correlation matrix C = X̂_eᵀ X̂_s / B  ([D_e, D_s], entries in [-1, 1]) and take

    L_orth = ||C||_F² / (D_e · D_s)    (mean squared cross-correlation)

Dividing the squared Frobenius norm by the number of entries keeps the term in [0, 1] whatever the
embedding sizes, comparable to the other unit-weight terms. 0 when the batch has < 2 samples.
"""

from __future__ import annotations

import torch

STD_EPS = 1e-6  # floor on a column's std: a constant column standardises to 0, not NaN


def orth_loss(xe: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    n = xe.shape[0]
    if n < 2:
        return (xe.sum() + xs.sum()) * 0.0
    xe, xs = xe.float(), xs.float()
    ze = (xe - xe.mean(0)) / (xe.std(0, unbiased=False) + STD_EPS)
    zs = (xs - xs.mean(0)) / (xs.std(0, unbiased=False) + STD_EPS)
    corr = ze.T @ zs / n
    return corr.pow(2).mean()
