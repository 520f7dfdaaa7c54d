"""SupCon and the label-contrastive loss behind one interface: the PyTorch reference or the fused
Triton kernels (kernels.triton_supcon, imported on first use; see kernels/icld.py for why)."""

from __future__ import annotations

import torch

from kernels import reference
from kernels.dispatch import resolve_impl


def supcon(x: torch.Tensor, labels: torch.Tensor, *, temperature: float = 0.07, impl: str = "torch") -> torch.Tensor:
    """kernels.reference.supcon, computed by `impl` ("torch" | "triton"; see kernels.dispatch)."""
    if resolve_impl(impl, x.device) == "torch" or x.shape[0] == 0:
        return reference.supcon(x, labels, temperature=temperature)
    from kernels.triton_supcon import supcon as fused

    return fused(x, labels, temperature=temperature)


def label_contrastive(
    anchors: torch.Tensor,
    x: torch.Tensor,
    labels: torch.Tensor,
    *,
    temperature: float = 0.07,
    impl: str = "torch",
) -> torch.Tensor:
    """kernels.reference.label_contrastive, computed by `impl` ("torch" | "triton")."""
    if resolve_impl(impl, x.device) == "torch" or x.shape[0] == 0 or anchors.shape[0] == 0:
        return reference.label_contrastive(anchors, x, labels, temperature=temperature)
    from kernels.triton_supcon import label_contrastive as fused

    return fused(anchors, x, labels, temperature=temperature)
