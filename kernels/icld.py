"""ICLD behind one interface: the PyTorch reference or the fused Triton kernel (kernels.triton_icld).

The Triton module is imported on first use, so `import kernels` neither needs a GPU nor freezes
triton's interpreter setting before a test has chosen it.
"""

from __future__ import annotations

import torch

from kernels import reference
from kernels.dispatch import resolve_impl


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
    """kernels.reference.icld, computed by `impl` ("torch" | "triton"; see kernels.dispatch)."""
    if resolve_impl(impl, xe.device) == "torch" or xe.shape[0] == 0:
        return reference.icld(xe, xs, emotion, speaker, margin=margin, negative=negative)
    from kernels.triton_icld import icld as fused

    return fused(xe, xs, emotion, speaker, margin=margin, negative=negative)
