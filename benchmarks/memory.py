"""`hcld-grid bench memory`: peak memory of one forward+backward of each loss, triton (the fused
kernels) against torch (the PyTorch reference), as planned for a GPU but measured without one.

The fused losses' host code decides every buffer the kernels use (per-row statistics, the
[slices, rows, D] fp32 gradient slabs, the inverse norms) from the launch plan, which depends only
on the shapes and the GPU's multiprocessor count. So this runs that host code on CPU tensors as it
would plan on a GPU with `sms` multiprocessors (hcld.kernels.tiles.planning_for) with every kernel
launch replaced by a no-op, and records each torch allocation and free with the profiler: the peak
of live bytes, inputs and gradients included, is what torch.cuda.max_memory_allocated would report
for the same call, less the caching allocator's rounding. torch runs for real on CPU, where its
autograd graph holds the same tensors as on a GPU.

Measured for fp32 inputs. In fp16/bf16 the fused buffers stay fp32 while an autocast torch holds
half-precision products: the device benchmark (`bench kernels`, benchmarks/kernels.py) measures those.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import click

from benchmarks.common import write_csv
from benchmarks.compile_check import H100_SMS
from benchmarks.kernels import LOSSES, loss_fn, make_inputs
from grid.cli.options import names_option, numbers_option

NS = (32, 256, 1024, 4096, 16384)
DS = (256, 768)
COLUMNS = ("loss", "n", "d", "sms", "torch_peak_mib", "triton_peak_mib", "triton_vs_torch")


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
    # kineto logs an error for the GPU it looks for on a CPU-only machine; it reads this at first use
    os.environ.setdefault("KINETO_LOG_LEVEL", "5")
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, acc_events=True) as prof:
        step()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    live = peak = 0
    for event in events:
        live += event.nbytes()  # negative for a free
        peak = max(peak, live)
    return peak / 2**20


def _triton(loss: str):
    """The fused loss called directly (kernels' dispatch would pick the reference on a CPU without the
    interpreter; with the launches skipped either way of decorating the kernels allocates alike)."""
    from hcld.kernels import triton_icld, triton_supcon

    return {"icld": lambda xe, xs, e, s: triton_icld.icld(xe, xs, e, s, margin=0.2),
            "supcon": lambda x, e: triton_supcon.supcon(x, e),
            "lcl": lambda a, x, e: triton_supcon.label_contrastive(a, x, e)}[loss]


def footprint(loss: str, impl: str, n: int, d: int, sms: int = H100_SMS, seed: int = 0) -> float:
    """Peak MiB of one forward+backward of `loss` by `impl` ("torch" | "triton") at [n, d], fp32, on
    the kernel benchmark's inputs, created inside the measured step (as its peak counts them)."""
    import torch

    if impl not in ("torch", "triton"):
        raise ValueError(f"impl must be torch or triton, got {impl!r}")
    fn = _triton(loss) if impl == "triton" else loss_fn(loss, "torch")

    def step():
        fn(*make_inputs(loss, n, d, torch.float32, "cpu", seed)).backward()

    if impl == "torch":
        return peak_mib(step)
    from hcld.kernels import tiles

    with launches_skipped(), tiles.planning_for(sms):
        return peak_mib(step)


def measure(losses=LOSSES, ns=NS, ds=DS, sms: int = H100_SMS, on_row=None) -> list[dict]:
    rows = []
    for loss in losses:
        for d in ds:
            for n in ns:
                base, fused = footprint(loss, "torch", n, d, sms), footprint(loss, "triton", n, d, sms)
                row = dict(loss=loss, n=n, d=d, sms=sms, torch_peak_mib=round(base, 3),
                           triton_peak_mib=round(fused, 3), triton_vs_torch=round(fused / base, 4))
                rows.append(row)
                if on_row:
                    on_row(row)
    return rows


@click.command(context_settings={"max_content_width": 100})
@click.option("--n", "ns", callback=numbers_option(int), metavar="LIST",
              help="Batch sizes N. Default: 32,256,1024,4096,16384.")
@click.option("--d", "ds", callback=numbers_option(int), metavar="LIST", help="Embedding widths D. Default: 256,768.")
@click.option("--loss", "losses", default=",".join(LOSSES), show_default=True, callback=names_option(LOSSES),
              metavar="LIST", help="Losses to measure.")
@click.option("--sms", type=click.IntRange(min=1), default=H100_SMS, show_default=True,
              help="Multiprocessors of the GPU the triton launches are planned for (H100/H200 SXM: 132).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("results/bench/memory.csv"),
              show_default=True, help="CSV path.")
def memory(ns, ds, losses, sms, out) -> None:
    """Peak MiB of triton vs torch forward+backward (fp32, inputs included); exit 1 if triton is above torch."""
    click.echo(f"{'loss':<8}{'N':>7}{'D':>6}{'torch MiB':>12}{'triton MiB':>12}{'triton/torch':>14}")
    rows = measure(losses, ns or NS, ds or DS, sms, on_row=lambda r: click.echo(
        f"{r['loss']:<8}{r['n']:>7}{r['d']:>6}{r['torch_peak_mib']:>12.2f}{r['triton_peak_mib']:>12.2f}"
        f"{r['triton_vs_torch']:>14.3f}"))
    write_csv(out, rows, COLUMNS)
    above = [r for r in rows if r["triton_vs_torch"] > 1]
    click.echo(f"wrote {len(rows)} rows to {out}; triton above torch in {len(above)}")
    if above:
        raise SystemExit(1)
