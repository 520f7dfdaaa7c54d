"""Which implementation of a loss actually runs for a requested `impl` on a given device.

"triton" runs the fused kernels on CUDA tensors; on CPU tensors it runs them through triton's
interpreter when TRITON_INTERPRET=1 (how the tests run), and otherwise falls back to the PyTorch
reference, because compiled Triton needs a GPU. The trainer records the resolved name per trial.
"""

from __future__ import annotations

import os
import sys

import torch

IMPLS = ("torch", "triton")
RESOLVED = ("torch", "triton", "triton-interpreter")


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


def interpreting() -> bool:
    """True when triton runs kernels through its CPU interpreter (TRITON_INTERPRET=1). The one
    reading of the variable: dispatch, tiles, compile check and benchmark all ask here."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def interpret_cpu_launches() -> bool:
    """Make fused kernels launched on CPU tensors run through triton's interpreter, which must be
    chosen before any kernel module is imported (decoration time). False when that is too late:
    then "triton" on CPU resolves to the PyTorch reference, never to a half-decorated mix."""
    if interpreting():
        return True
    if "kernels._tiles" in sys.modules:  # every Triton kernel module imports it first
        return False
    os.environ["TRITON_INTERPRET"] = "1"
    return True
