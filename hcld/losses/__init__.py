"""The training losses of HCLD, one small module per loss (formula in each docstring).

- task.py     L_task = CE(emotion) + CE(speaker)
- icld.py     instance-level contrastive decoupling (the paper's L_CLD)
- supcon.py   supervised contrastive loss (L_SCL)
- lcl.py      label-anchored contrastive loss (L_Label)
- orth.py     orthogonality baseline (the paper's "orth" rows)
- sampling.py replicate-and-downsample so every contrastive anchor has a positive
- variants.py the rows of Table II as data (name -> loss weights) and the weighted total

The pairwise math lives once, in `kernels` (PyTorch reference + Triton); these modules only pick
inputs, apply the configuration and call it.
"""

from __future__ import annotations

import inspect
from typing import Callable

LOSS_IMPLS = ("torch", "triton")


def call_kernel(fn: Callable, *args, impl: str = "torch", **kwargs):
    """Call a `kernels` loss with `impl=` when that function accepts it.

    Older `kernels` functions (plain PyTorch references) take no `impl`; they are the torch
    implementation, so "torch" still works and "triton" fails with a clear message.
    """
    if impl not in LOSS_IMPLS:
        raise ValueError(f"loss_impl must be one of {LOSS_IMPLS}, got {impl!r}")
    if "impl" in inspect.signature(fn).parameters:
        return fn(*args, impl=impl, **kwargs)
    if impl != "torch":
        raise ValueError(f"loss_impl={impl!r} requested but kernels.{fn.__name__} has no `impl` option yet")
    return fn(*args, **kwargs)


def kernel_supports(fn: Callable, impl: str) -> bool:
    """Whether `call_kernel(fn, ..., impl=impl)` can run."""
    return impl == "torch" or "impl" in inspect.signature(fn).parameters
