"""Shared set-up of the fused-kernel tests: import a kernel module under Triton's interpreter,
tolerances, tile sizes and seeded inputs."""

import importlib
import os

import torch
from torch.utils._python_dispatch import TorchDispatchMode

# relative to the largest gradient entry. Half precision: the gradient weights stay fp32, so what is
# left is the output's own rounding (fp16 2^-11, bf16 2^-8 of an entry) and the cosines' fp32 sums
GRAD_TOL = {torch.float32: 2e-5, torch.float16: 1e-3, torch.bfloat16: 1e-2}
SMALL_TILES = dict(block_m=16, block_n=16, block_k=16)


def import_interpreted(module: str):
    """Triton picks interpreter or compiler when a kernel is decorated, i.e. at import: import the
    kernel module under TRITON_INTERPRET=1, then restore the variable so other test files see the
    process environment they expect (each kernel test file sets it again with a fixture, because
    kernels.resolve_impl reads it at call time)."""
    previous = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        return importlib.import_module(module)
    finally:
        if previous is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = previous


def rand_x(n, d, seed, dtype=torch.float32):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)).to(dtype)


def rand_labels(n, k, seed):
    return torch.randint(0, k, (n,), generator=torch.Generator().manual_seed(seed))


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor (in bytes) any aten op produces while active."""

    def __init__(self):
        super().__init__()
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.bytes = max(self.bytes, t.numel() * t.element_size())
        return out
