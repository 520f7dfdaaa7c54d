"""Pairwise contrastive losses: PyTorch references and fused Triton kernels behind one interface.

    icld(xe, xs, emotion, speaker, *, margin, negative, impl="torch")
    supcon(x, labels, *, temperature, impl="torch")
    label_contrastive(anchors, x, labels, *, temperature, impl="torch")
    resolve_impl(requested, device) -> "torch" | "triton" | "triton-interpreter"  (what runs)

This package imports only torch and triton (never hcld or grid); triton only when a fused kernel
is first used. The submodules kernels.icld / kernels.supcon are imported here once, so the names
below stay bound to the functions.
"""

from kernels.dispatch import resolve_impl
from kernels.icld import icld
from kernels.supcon import label_contrastive, supcon

__all__ = ["icld", "supcon", "label_contrastive", "resolve_impl"]
