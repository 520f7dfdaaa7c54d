"""`hcld-grid bench kernels`: forward+backward of the pairwise losses by each implementation, the
config's `torch` (the PyTorch reference) and `triton` (the fused kernels) and `torch-compile`
(torch.compile of the reference).

For every (loss, N, D, dtype) `torch` runs first in the same process, so speed-up and memory ratios
compare like with like; in fp16/bf16 it runs under autocast in that dtype (a dtype-matched baseline,
not fp32 math). Every other implementation's loss and gradients are checked against torch's on the
same inputs (`max_grad_err`; status "mismatch" beyond the dtype's tolerance). Time is the median
over repeats (CUDA events on a GPU, perf_counter on CPU); a sample times `calls_per_sample`
back-to-back calls so that small N measures the kernels, not launch gaps from an idle GPU. Memory is
torch.cuda.max_memory_allocated over one separate forward+backward (inputs included). FLOP/s counts
the useful work of the loss (`useful_flops`, the same for every impl); `executed_gflop` is what the
implementation executes (the triton backward recomputes the cosines). The matmul precision is pinned
(TF32 on or off for torch and triton alike, from hcld.kernels.tiles.FP32_DOT_PRECISION) and recorded. A
triton row records the tile configs it ran with (`tiles`: what hcld.kernels.autotune picked on the device
during the cell's untimed first call, or the defaults). An out-of-memory is caught and recorded as
"oom". Rows go to a CSV as they are measured and the table is printed as it goes.

On a machine without a GPU the command runs a tiny configuration through triton's interpreter (a
smoke test of the code path, not a measurement). torch, triton and the kernels are imported when a
benchmark runs, not with this module: on CPU the interpreter must be chosen before any kernel
module is imported (kernels.interpret_cpu_launches).
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

from benchmarks.common import csv_rows, default_device, dtype_names, torch_dtype
from grid.cli.options import names_option, numbers_option, parse_names
from hcld.labels import EMOTIONS, PaperShapes

if TYPE_CHECKING:
    import torch

LOSSES = ("icld", "supcon", "lcl")
COMPILED = "torch-compile"  # torch.compile of the torch reference: an implementation only benchmarks run
PAPER_NS = (32, 256, 1024, 4096, 16384, 65536)
PAPER_DS = (256, 768)
N_EMOTIONS, N_SPEAKERS, N_ANCHORS = len(EMOTIONS), PaperShapes.SPEAKERS, len(EMOTIONS)  # LCL: an anchor per class

# Dense peak TFLOP/s by device-name fragment (first match wins, so specific names come first):
# NVIDIA's datasheet figures, halved where they are quoted with sparsity. "fp32" is the CUDA-core
# rate (exact fp32 dots), "tf32" the tensor-core rate used when FP32_DOT_PRECISION = "tf32".
PEAK_TFLOPS = (
    ("H100 PCIe", {"fp32": 51.2, "tf32": 378.0, "fp16": 756.0, "bf16": 756.0}),
    ("H100 NVL", {"fp32": 60.0, "tf32": 417.5, "fp16": 835.5, "bf16": 835.5}),
    ("H200 NVL", {"fp32": 60.0, "tf32": 417.5, "fp16": 835.5, "bf16": 835.5}),
    ("H100", {"fp32": 66.9, "tf32": 494.7, "fp16": 989.4, "bf16": 989.4}),  # SXM
    ("H200", {"fp32": 66.9, "tf32": 494.7, "fp16": 989.4, "bf16": 989.4}),
    ("A100", {"fp32": 19.5, "tf32": 156.0, "fp16": 312.0, "bf16": 312.0}),
    ("L40S", {"fp32": 91.6, "tf32": 183.0, "fp16": 362.0, "bf16": 362.0}),
    ("L4", {"fp32": 30.3, "tf32": 60.0, "fp16": 121.0, "bf16": 121.0}),
)

COLUMNS = ("device", "loss", "impl", "ran", "n", "d", "dtype", "precision", "status", "ms_median", "ms_min",
           "repeats", "calls_per_sample", "peak_mem_mib", "gflop", "executed_gflop", "tflops", "peak_tflops",
           "peak_frac", "speedup_vs_torch", "mem_vs_torch", "loss_err", "max_grad_err", "tiles", "torch", "triton")
# triton / torch-compile vs torch on the same inputs, relative to torch's loss / largest gradient entry
CHECK_TOL = {"fp32": 1e-4, "tf32": 2e-2, "fp16": 5e-3, "bf16": 3e-2}
SMALL_N = 4096  # below this a sample is several back-to-back calls


def impl_names() -> tuple[str, ...]:
    """What a cell can time: the config's loss implementations (kernels.IMPLS: torch, triton) and
    torch-compile."""
    from hcld import kernels

    return (*kernels.IMPLS, COMPILED)


@dataclass
class BenchConfig:
    device: str = "cuda"
    losses: tuple[str, ...] = LOSSES
    impls: tuple[str, ...] = ("torch", "triton", COMPILED)
    ns: tuple[int, ...] = PAPER_NS
    ds: tuple[int, ...] = PAPER_DS
    dtypes: tuple[str, ...] = ("fp32",)
    repeats: int = 20
    warmup: int = 3
    max_seconds: float = 10.0  # per cell: stop repeating early (at least 1 timed run) on slow cells
    seed: int = 0
    extra: dict = field(default_factory=dict)


def device_name(device: str) -> str:
    import torch

    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    return "cpu"


def device_slug(device: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", device_name(device).lower()).strip("-")


def peak_tflops(name: str, dtype: str) -> float | None:
    """dtype: fp32 (CUDA cores), tf32, fp16 or bf16."""
    for fragment, peaks in PEAK_TFLOPS:
        if fragment.lower() in name.lower():
            return peaks[dtype]
    return None


def useful_flops(loss: str, n: int, d: int) -> float:
    """Multiply-adds x2 of the Gram products a loss needs: forward cosines (2 N^2 D per embedding)
    plus the gradient product G = W Z (2 N^2 D per embedding). ICLD has two embeddings; LCL is
    rectangular (anchors x N) with two gradient products (anchors and samples). The triton backward
    recomputes the cosines, so it executes 1.5x this count (executed_flops)."""
    if loss == "icld":
        return 2 * 4.0 * n * n * d
    if loss == "supcon":
        return 4.0 * n * n * d
    return 6.0 * N_ANCHORS * n * d


def executed_flops(loss: str, impl: str, n: int, d: int) -> float:
    """What the implementation multiplies: the triton backward recomputes the forward's cosines."""
    return useful_flops(loss, n, d) * (1.5 if impl == "triton" else 1.0)


def precision_label(dtype: str) -> str:
    """The dot precision a cell runs with: fp32 inputs 'ieee' or 'tf32', else the input dtype."""
    from hcld.kernels import tiles

    return tiles.FP32_DOT_PRECISION if dtype == "fp32" else dtype


def pin_matmul_precision() -> None:
    """torch's fp32 matmuls use TF32 exactly when the triton kernels do, so the comparison is fair."""
    import torch

    from hcld.kernels import tiles

    tf32 = tiles.FP32_DOT_PRECISION == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")


def make_inputs(loss: str, n: int, d: int, dtype: torch.dtype, device: str, seed: int) -> list[torch.Tensor]:
    import torch

    g = torch.Generator().manual_seed(seed)
    emb = lambda rows: torch.randn(rows, d, generator=g).to(device=device, dtype=dtype).requires_grad_(True)
    emotion = torch.randint(0, N_EMOTIONS, (n,), generator=g).to(device)
    speaker = torch.randint(0, N_SPEAKERS, (n,), generator=g).to(device)
    if loss == "icld":
        return [emb(n), emb(n), emotion, speaker]
    if loss == "supcon":
        return [emb(n), emotion]
    return [emb(N_ANCHORS), emb(n), emotion]


def _dtype_matched(fn, dtype: torch.dtype, device: str):
    """The reference computes in fp32; for half inputs on a GPU run it under autocast in that dtype,
    so the baseline's matmuls are half-precision tensor-core products like the triton kernels'."""
    import torch

    if dtype == torch.float32 or torch.device(device).type != "cuda":
        return fn

    def matched(*args):
        with torch.autocast("cuda", dtype=dtype):
            return fn(*args)

    return matched


def loss_fn(loss: str, impl: str, dtype: torch.dtype | None = None, device: str = "cpu") -> Callable[..., torch.Tensor]:
    """The forward of `loss` by `impl`: triton through the kernels' dispatch, torch the reference
    (dtype-matched: see _dtype_matched; dtype None is fp32), torch-compile the compiled reference."""
    import torch

    from hcld import kernels
    from hcld.kernels import reference

    if impl == "triton":
        return {"icld": lambda xe, xs, e, s: kernels.icld(xe, xs, e, s, margin=0.2, impl="triton"),
                "supcon": lambda x, y: kernels.supcon(x, y, impl="triton"),
                "lcl": lambda a, x, y: kernels.label_contrastive(a, x, y, impl="triton")}[loss]
    fn = {"icld": lambda xe, xs, e, s: reference.icld(xe, xs, e, s, margin=0.2),
          "supcon": lambda x, y: reference.supcon(x, y),
          "lcl": lambda a, x, y: reference.label_contrastive(a, x, y)}[loss]
    fn = _dtype_matched(fn, dtype or torch.float32, device)
    if impl != COMPILED:
        return fn
    # a fresh cache per cell: the same lambda over many shapes would hit dynamo's recompile limit
    # and silently run uncompiled
    torch._dynamo.reset()
    return torch.compile(fn, dynamic=False)


def _step(fn, inputs):
    for t in inputs:
        t.grad = None
    out = fn(*inputs)
    out.backward()
    return out


def outputs(fn, inputs) -> tuple[float, list[torch.Tensor]]:
    """(loss, gradients) of one call, for the value check."""
    loss = _step(fn, inputs)
    return float(loss.detach()), [t.grad.detach().clone() for t in inputs if t.is_floating_point()]


def value_errors(got, want) -> tuple[float, float]:
    """(loss relative error, largest gradient error relative to want's largest entry)."""
    loss_err = abs(got[0] - want[0]) / max(abs(want[0]), 1e-12)
    grad_err = max((float((g.float() - w.float()).abs().max()) / max(float(w.float().abs().max()), 1e-30)
                    for g, w in zip(got[1], want[1])), default=0.0)
    return loss_err, grad_err


def _is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def time_cell(fn, inputs, device: str, cfg: BenchConfig, calls: int = 1) -> tuple[list[float], float | None]:
    """(milliseconds per forward+backward, peak MiB of one call or None off-GPU). Each sample times
    `calls` back-to-back calls and divides."""
    import torch

    cuda = torch.device(device).type == "cuda"
    for _ in range(cfg.warmup):
        _step(fn, inputs)
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < max(cfg.repeats, 1):
        if cuda:
            torch.cuda.synchronize(device)
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            for _ in range(calls):
                _step(fn, inputs)
            end.record()
            end.synchronize()
            times.append(begin.elapsed_time(end) / calls)
        else:
            t0 = time.perf_counter()
            for _ in range(calls):
                _step(fn, inputs)
            times.append((time.perf_counter() - t0) * 1e3 / calls)
        if time.perf_counter() - started > cfg.max_seconds:
            break
    peak = None
    if cuda:  # one call on its own: its peak, not the maximum over the repeats
        for t in inputs:
            t.grad = None
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        _step(fn, inputs)
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    return times, peak


def tiles_label(loss: str, n: int, d: int, dtype: torch.dtype, device: str) -> str:
    """The tile configs a triton cell ran with: the tuned pick per kernel, or why the defaults ran."""
    import torch

    from hcld.kernels import autotune, tiles

    if not autotune.enabled(torch.device(device)):
        why = f"{autotune.ENV}=0" if torch.device(device).type == "cuda" else "not tuned off a GPU"
        return f"defaults ({why})"
    if not autotune.large_enough(n, N_ANCHORS):
        return f"defaults (N < {autotune.MIN_TUNED_SIZE}: launch-bound, not tuned)"
    prefix = {"icld": "icld_text_", "supcon": "supcon_", "lcl": "lcl_"}[loss]
    picks = sorted((key.kernel, autotune.describe(config)) for key, config in autotune.chosen().items()
                   if key.kernel.startswith(prefix) and key.config_row == tiles.config_key(dtype) and key.d == d
                   and autotune.bucket(n) in (key.rows, key.cols))
    return "; ".join(f"{kernel} {config}" for kernel, config in picks)


def _ran(impl: str, device: str) -> str:
    """What a cell's impl executes: kernels.resolve_impl's answer (torch, triton, triton-interpreter),
    or torch-compile."""
    from hcld import kernels

    return COMPILED if impl == COMPILED else kernels.resolve_impl(impl, device)


def run_benchmark(cfg: BenchConfig, on_row: Callable[[dict], None] | None = None) -> list[dict]:
    import torch

    from hcld import kernels

    if torch.device(cfg.device).type == "cuda":
        if kernels.interpreting():
            raise RuntimeError("TRITON_INTERPRET is set: the triton rows would run triton's CPU interpreter on a "
                               "GPU run and be mislabelled; unset it")
        pin_matmul_precision()
    name = device_name(cfg.device)
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = ""
    rows = []
    for dtype_name in cfg.dtypes:
        for loss in cfg.losses:
            for d in cfg.ds:
                for n in cfg.ns:
                    baseline, want = None, None
                    # torch first: the ratios and the value check need it, measured in this same process
                    for impl in sorted(cfg.impls, key=lambda i: i != "torch"):
                        row, got = _bench_one(cfg, name, loss, impl, n, d, dtype_name)
                        row.update(torch=torch.__version__, triton=triton_version)
                        if impl == "torch":
                            baseline, want = row, got
                        elif got is not None and want is not None:
                            _check_values(row, got, want, dtype_name)
                        _ratios(row, baseline)
                        rows.append(row)
                        if on_row:
                            on_row(row)
    return rows


def _bench_one(cfg: BenchConfig, name: str, loss: str, impl: str, n: int, d: int, dtype_name: str):
    """(row, (loss, gradients) of the first call or None)."""
    import torch

    ran = _ran(impl, cfg.device)
    row = dict(device=name, loss=loss, impl=impl, ran=ran, n=n, d=d, dtype=dtype_name,
               precision=precision_label(dtype_name), status="ok")
    if impl == "triton" and ran == "torch":
        row["status"] = "skipped: no GPU and TRITON_INTERPRET unset"
        return row, None
    cuda = torch.device(cfg.device).type == "cuda"
    calls = 10 if cuda and n < SMALL_N else 1
    dtype = torch_dtype(dtype_name)
    inputs = got = None
    try:
        inputs = make_inputs(loss, n, d, dtype, cfg.device, cfg.seed)
        fn = loss_fn(loss, impl, dtype, cfg.device)
        got = outputs(fn, inputs)
        times, peak = time_cell(fn, inputs, cfg.device, cfg, calls)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a recorded row, the sweep goes on
        if not _is_oom(exc):
            row["status"] = f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            return row, None
        row["status"] = "oom"
        return row, None
    finally:
        del inputs
        if cuda:
            torch.cuda.empty_cache()
    ms = statistics.median(times)
    flops = useful_flops(loss, n, d)
    peak_tf = peak_tflops(name, "tf32" if row["precision"] == "tf32" else dtype_name)
    row.update(ms_median=ms, ms_min=min(times), repeats=len(times), calls_per_sample=calls, peak_mem_mib=peak,
               gflop=flops / 1e9, executed_gflop=executed_flops(loss, impl, n, d) / 1e9,
               tflops=flops / (ms * 1e-3) / 1e12, peak_tflops=peak_tf)
    row["peak_frac"] = row["tflops"] / peak_tf if peak_tf else None
    if impl == "triton":
        row["tiles"] = tiles_label(loss, n, d, dtype, cfg.device)
    return row, got


def _check_values(row: dict, got, want, dtype_name: str) -> None:
    row["loss_err"], row["max_grad_err"] = value_errors(got, want)
    tol = CHECK_TOL["tf32" if row["precision"] == "tf32" else dtype_name]
    if row["status"] == "ok" and max(row["loss_err"], row["max_grad_err"]) > tol:
        row["status"] = f"mismatch: differs from torch by more than {tol:g}"


def _ratios(row: dict, baseline: dict | None) -> None:
    """speedup_vs_torch and mem_vs_torch of a row against the cell's torch row."""
    ok = lambda r: r is not None and r.get("status") == "ok"
    if ok(row) and ok(baseline):
        row["speedup_vs_torch"] = baseline["ms_median"] / row["ms_median"]
        if row.get("peak_mem_mib") and baseline.get("peak_mem_mib"):
            row["mem_vs_torch"] = row["peak_mem_mib"] / baseline["peak_mem_mib"]


def _fmt(value, width: int, decimals: int) -> str:
    text = "-" if value is None or value == "" else f"{value:.{decimals}f}"
    return text.rjust(width)


def format_row(row: dict) -> str:
    return (f"{row['loss']:<7}{row['impl']:<14}{row['dtype']:<5}{row['n']:>7}{row['d']:>6}  "
            f"{_fmt(row.get('ms_median'), 10, 3)}{_fmt(row.get('peak_mem_mib'), 11, 1)}"
            f"{_fmt(row.get('tflops'), 9, 3)}{_fmt(row.get('peak_frac'), 8, 3)}"
            f"{_fmt(row.get('speedup_vs_torch'), 8, 2)}{_fmt(row.get('max_grad_err'), 10, 6)}  {row['status']}")


TABLE_HEADER = (f"{'loss':<7}{'impl':<14}{'dtype':<5}{'N':>7}{'D':>6}  {'ms':>10}{'peak MiB':>11}"
                f"{'TFLOP/s':>9}{'of peak':>8}{'x torch':>8}{'grad err':>10}  status")


@click.command("kernels", context_settings={"max_content_width": 100})
@click.option("--n", "ns", callback=numbers_option(int), metavar="LIST",
              help="Batch sizes N, comma-separated. Default: 32,256,1024,4096,16384,65536 on a GPU, 32 on CPU.")
@click.option("--d", "ds", callback=numbers_option(int), metavar="LIST",
              help="Embedding widths D, comma-separated. Default: 256,768 on a GPU, 32 on CPU.")
@click.option("--dtype", "dtypes", default="fp32", show_default=True, metavar="LIST",
              help="Input dtypes, comma-separated (fp32, fp16, bf16); accumulation is fp32.")
@click.option("--loss", "losses", default=",".join(LOSSES), show_default=True, callback=names_option(LOSSES),
              metavar="LIST", help="Losses to time.")
@click.option("--impl", "impls", metavar="LIST",
              help="Implementations: torch (the PyTorch reference), torch-compile (torch.compile of it), triton "
                   "(the fused kernels). Default: all three on a GPU, torch,triton on CPU.")
@click.option("--device", default=None, help="torch device. Default: cuda if available, else cpu.")
@click.option("--repeats", type=click.IntRange(min=1), help="Timed runs per cell (median reported). "
              "Default: 20 on a GPU, 2 on CPU.")
@click.option("--warmup", type=click.IntRange(min=0), help="Untimed runs first. Default: 3 on a GPU, 1 on CPU.")
@click.option("--max-seconds", type=float, default=10.0, show_default=True,
              help="Stop repeating a cell once it has run this long (at least one timed run).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="CSV path. Default: results/bench/kernels-<device>.csv")
def kernels_command(ns, ds, dtypes, losses, impls, device, repeats, warmup, max_seconds, out) -> None:
    """Time torch vs torch-compile vs triton forward+backward of ICLD, SupCon and LCL."""
    device = device or default_device()
    gpu = device.startswith("cuda")
    if not gpu:
        from hcld.kernels import interpret_cpu_launches

        interpret_cpu_launches()  # before anything imports a kernel module (hcld.kernels.tiles, triton)
    # parsed here, not by click: the names come from hcld.kernels.tiles, which must not load before the line above
    dtypes = parse_names(dtypes, dtype_names(), "'--dtype'")
    impls = parse_names(impls, impl_names(), "'--impl'") if impls is not None else None
    cfg = BenchConfig(
        device=device, losses=losses, impls=impls or (impl_names() if gpu else ("torch", "triton")),
        ns=ns or (PAPER_NS if gpu else (32,)), ds=ds or (PAPER_DS if gpu else (32,)),
        dtypes=dtypes, repeats=repeats or (20 if gpu else 2),
        warmup=warmup if warmup is not None else (3 if gpu else 1), max_seconds=max_seconds)
    out = out or Path("results") / "bench" / f"kernels-{device_slug(device)}.csv"
    click.echo(f"device: {device_name(device)}" + ("" if gpu else " (no GPU: triton interpreter, "
                                                   "timings are not kernel measurements)"))
    click.echo(TABLE_HEADER)

    with csv_rows(out, COLUMNS) as write:
        def on_row(row: dict) -> None:
            write(row)
            click.echo(format_row(row))

        rows = run_benchmark(cfg, on_row=on_row)
    click.echo(f"wrote {len(rows)} rows to {out}")
