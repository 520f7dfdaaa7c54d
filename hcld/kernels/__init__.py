"""Pairwise contrastive losses: PyTorch references and fused Triton kernels behind one interface.

    icld(xe, xs, emotion, speaker, *, margin, negative, impl="torch")
    supcon(x, labels, *, temperature, impl="torch")
    label_contrastive(anchors, x, labels, *, temperature, impl="torch")
    resolve_impl(requested, device) -> "torch" | "triton" | "triton-interpreter"  (what runs)

"triton" runs the fused kernels on CUDA tensors; on CPU tensors it runs them through triton's
interpreter when TRITON_INTERPRET=1 (how the tests run), and otherwise falls back to the PyTorch
reference, because compiled Triton needs a GPU. The trainer records the resolved name per trial.

This package imports only torch and triton (never the rest of hcld, nor grid). The Triton modules
(kernels.triton_icld, kernels.triton_supcon) are imported on first use, so `import hcld.kernels`
neither needs a GPU nor freezes triton's interpreter setting before a caller has chosen it.
"""

from __future__ import annotations

import os
import sys

import torch

from hcld.kernels import reference

IMPLS = ("torch", "triton")  # hcld.config.LossImpl lists the same two


def interpreting() -> bool:
    """True when triton runs kernels through its CPU interpreter (TRITON_INTERPRET=1). The one
    reading of the variable: dispatch, tiles, compile check and benchmarks all ask here."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def interpret_cpu_launches() -> bool:
    """Make fused kernels launched on CPU tensors run through triton's interpreter, which must be
    chosen before any kernel module is imported (decoration time). False when that is too late:
    then "triton" on CPU resolves to the PyTorch reference, never to a half-decorated mix."""
    if interpreting():
        return True
    if "kernels.tiles" in sys.modules:  # every Triton kernel module imports it first
        return False
    os.environ["TRITON_INTERPRET"] = "1"
    return True


def resolve_impl(requested: str, device: torch.device | str) -> str:
    """'torch', 'triton' (compiled, CUDA) or 'triton-interpreter' (CPU, TRITON_INTERPRET=1)."""
    if requested not in IMPLS:
        raise ValueError(f"loss impl must be one of {IMPLS}, got {requested!r}")
    if requested == "torch":
        return "torch"
    if torch.device(device).type == "cuda":
        return "triton"
    if interpreting():
        return "triton-interpreter"
    return "torch"


def icld(
    xe: torch.Tensor,
    xs: torch.Tensor,
    emotion: torch.Tensor,
    speaker: torch.Tensor,
    *,
    margin: float = 0.0,
    negative: str = "text",
    impl: str = "torch",
) -> torch.Tensor:
    """kernels.reference.icld, computed by `impl` ("torch" | "triton")."""
    if resolve_impl(impl, xe.device) == "torch" or xe.shape[0] == 0:
        return reference.icld(xe, xs, emotion, speaker, margin=margin, negative=negative)
    from hcld.kernels.triton_icld import icld as fused

    return fused(xe, xs, emotion, speaker, margin=margin, negative=negative)


def supcon(x: torch.Tensor, labels: torch.Tensor, *, temperature: float = 0.07, impl: str = "torch") -> torch.Tensor:
    """kernels.reference.supcon, computed by `impl` ("torch" | "triton")."""
    if resolve_impl(impl, x.device) == "torch" or x.shape[0] == 0:
        return reference.supcon(x, labels, temperature=temperature)
    from hcld.kernels.triton_supcon import supcon as fused

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
    from hcld.kernels.triton_supcon import label_contrastive as fused

    return fused(anchors, x, labels, temperature=temperature)


__all__ = ["IMPLS", "icld", "interpret_cpu_launches", "interpreting", "label_contrastive", "resolve_impl", "supcon"]
