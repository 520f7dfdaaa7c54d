"""`hcld-grid bench kernels`: fused Triton losses vs eager PyTorch vs torch.compile, forward+backward.

Writes one CSV row per (loss, impl, N, D, dtype) and prints the table as it goes. On a machine
without a GPU it runs a tiny configuration through triton's interpreter (a smoke test of the code
path, not a measurement).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click


def load_bench(name: str = "kernel_bench"):
    """benchmarks.<name>: the benchmarks live outside the installed packages (next to them in a
    source checkout), so fall back to the checkout root when the package is not importable."""
    import importlib

    try:
        return importlib.import_module(f"benchmarks.{name}")
    except ModuleNotFoundError:
        root = Path(__file__).resolve().parents[2]
        if not (root / "benchmarks" / f"{name}.py").is_file():
            raise click.ClickException(f"benchmarks/{name}.py not found: run from a source checkout") from None
        sys.path.insert(0, str(root))
        return importlib.import_module(f"benchmarks.{name}")


def _ints(_ctx, _param, value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError as err:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from err


def _names(known: tuple[str, ...]):
    def parse(_ctx, _param, value: str | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        names = tuple(v.strip() for v in value.split(",") if v.strip())
        bad = [n for n in names if n not in known]
        if bad:
            raise click.BadParameter(f"unknown {bad}; known: {', '.join(known)}")
        return names

    return parse


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@click.command(context_settings={"max_content_width": 100})
@click.option("--n", "ns", callback=_ints, metavar="LIST",
              help="Batch sizes N, comma-separated. Default: 32,256,1024,4096,16384,65536 on a GPU, 32 on CPU.")
@click.option("--d", "ds", callback=_ints, metavar="LIST",
              help="Embedding widths D, comma-separated. Default: 256,768 on a GPU, 32 on CPU.")
@click.option("--dtype", "dtypes", default="fp32", show_default=True, callback=_names(("fp32", "fp16", "bf16")),
              metavar="LIST", help="Input dtypes, comma-separated (fp32, fp16, bf16); accumulation is fp32.")
@click.option("--loss", "losses", default="icld,supcon,lcl", show_default=True,
              callback=_names(("icld", "supcon", "lcl")), metavar="LIST", help="Losses to time.")
@click.option("--impl", "impls", callback=_names(("eager", "compiled", "fused")), metavar="LIST",
              help="Implementations: eager (PyTorch reference), compiled (torch.compile of it), fused "
                   "(Triton). Default: all three on a GPU, eager,fused on CPU.")
@click.option("--device", default=None, help="torch device. Default: cuda if available, else cpu.")
@click.option("--repeats", type=click.IntRange(min=1), help="Timed runs per cell (median reported). "
              "Default: 20 on a GPU, 2 on CPU.")
@click.option("--warmup", type=click.IntRange(min=0), help="Untimed runs first. Default: 3 on a GPU, 1 on CPU.")
@click.option("--max-seconds", type=float, default=10.0, show_default=True,
              help="Stop repeating a cell once it has run this long (at least one timed run).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="CSV path. Default: results/bench/kernels-<device>.csv")
def kernels(ns, ds, dtypes, losses, impls, device, repeats, warmup, max_seconds, out) -> None:
    """Time fused vs eager vs compiled forward+backward of ICLD, SupCon and LCL."""
    device = device or _default_device()
    gpu = device.startswith("cuda")
    if not gpu:
        from kernels import interpret_cpu_launches

        interpret_cpu_launches()  # before the benchmark module imports the kernels
    bench = load_bench()  # after the device is known: torch/triton load here, not at CLI start

    cfg = bench.BenchConfig(
        device=device, losses=losses, impls=impls or (bench.IMPLS if gpu else ("eager", "fused")),
        ns=ns or (bench.PAPER_NS if gpu else (32,)), ds=ds or (bench.PAPER_DS if gpu else (32,)),
        dtypes=dtypes, repeats=repeats or (20 if gpu else 2), warmup=warmup if warmup is not None else (3 if gpu else 1),
        max_seconds=max_seconds)
    out = out or Path("results") / "bench" / f"kernels-{bench.device_slug(device)}.csv"
    click.echo(f"device: {bench.device_name(device)}" + ("" if gpu else " (no GPU: triton interpreter, "
                                                          "timings are not kernel measurements)"))
    click.echo(bench.TABLE_HEADER)

    with bench.csv_rows(out) as write:
        def on_row(row: dict) -> None:
            write(row)
            click.echo(bench.format_row(row))

        rows = bench.run_benchmark(cfg, on_row=on_row)
    click.echo(f"wrote {len(rows)} rows to {out}")
