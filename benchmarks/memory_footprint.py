"""Peak memory of one forward+backward of each loss, fused against eager, without a GPU.

The fused losses' host code decides every buffer the kernels use (per-row statistics, the
[slices, rows, D] fp32 gradient slabs, the inverse norms) from the launch plan, which depends only
on the shapes and the GPU's multiprocessor count. So this runs that host code on CPU tensors as it
would plan on a GPU with `sms` multiprocessors (kernels.tiles.planning_for) with every kernel
launch replaced by a no-op, and records each torch allocation and free with the profiler: the peak
of live bytes, inputs and gradients included, is what torch.cuda.max_memory_allocated would report
for the same call, less the caching allocator's rounding. Eager (the PyTorch reference) runs for
real on CPU, where its autograd graph holds the same tensors as on a GPU.

Measured for fp32 inputs. In fp16/bf16 the fused buffers stay fp32 while an autocast eager holds
half-precision products: the device benchmark (benchmarks/kernel_bench.py) measures those.
"""

from __future__ import annotations

import contextlib
import csv
import os
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.kernel_bench import loss_fn, make_inputs
from kernels.compile_check import H100_SMS

# kineto logs an error for the GPU it looks for on a CPU-only machine; it reads this at first use
os.environ.setdefault("KINETO_LOG_LEVEL", "5")

LOSSES = ("icld", "supcon", "lcl")
NS = (32, 256, 1024, 4096, 16384)
DS = (256, 768)
COLUMNS = ("loss", "n", "d", "sms", "eager_peak_mib", "fused_peak_mib", "fused_vs_eager")


@contextlib.contextmanager
def launches_skipped():
    """Every triton kernel launch (`kernel[grid](...)`) does nothing: the host code still allocates."""
    from triton.runtime.jit import KernelInterface

    real = KernelInterface.__getitem__
    KernelInterface.__getitem__ = lambda self, grid: (lambda *args, **kwargs: None)
    try:
        yield
    finally:
        KernelInterface.__getitem__ = real


def peak_mib(step) -> float:
    """Largest sum of live torch CPU allocations made during step(), in MiB."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, acc_events=True) as prof:
        step()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    live = peak = 0
    for event in events:
        live += event.nbytes()  # negative for a free
        peak = max(peak, live)
    return peak / 2**20


def _fused(loss: str):
    """The fused loss called directly (kernels' dispatch would pick the reference on a CPU without the
    interpreter; with the launches skipped either way of decorating the kernels allocates alike)."""
    from kernels import triton_icld, triton_supcon

    return {"icld": lambda xe, xs, e, s: triton_icld.icld(xe, xs, e, s, margin=0.2),
            "supcon": lambda x, e: triton_supcon.supcon(x, e),
            "lcl": lambda a, x, e: triton_supcon.label_contrastive(a, x, e)}[loss]


def footprint(loss: str, impl: str, n: int, d: int, sms: int = H100_SMS, seed: int = 0) -> float:
    """Peak MiB of one forward+backward of `loss` by `impl` ("eager" | "fused") at [n, d], fp32, on
    the kernel benchmark's inputs, created inside the measured step (as its peak counts them)."""
    fn = _fused(loss) if impl == "fused" else loss_fn(loss, "eager")

    def step():
        fn(*make_inputs(loss, n, d, torch.float32, "cpu", seed)).backward()

    if impl == "eager":
        return peak_mib(step)
    from kernels import tiles

    with launches_skipped(), tiles.planning_for(sms):
        return peak_mib(step)


def measure(losses=LOSSES, ns=NS, ds=DS, sms: int = H100_SMS, on_row=None) -> list[dict]:
    rows = []
    for loss in losses:
        for d in ds:
            for n in ns:
                eager, fused = footprint(loss, "eager", n, d, sms), footprint(loss, "fused", n, d, sms)
                row = dict(loss=loss, n=n, d=d, sms=sms, eager_peak_mib=round(eager, 3),
                           fused_peak_mib=round(fused, 3), fused_vs_eager=round(fused / eager, 4))
                rows.append(row)
                if on_row:
                    on_row(row)
    return rows


def write_csv(rows: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path
