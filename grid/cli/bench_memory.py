"""`hcld-grid bench memory`: peak memory of one forward+backward, fused kernels against eager, as
planned for a GPU but measured on this machine (benchmarks/memory_footprint.py says how)."""

from __future__ import annotations

from pathlib import Path

import click

from grid.cli.bench_kernels import _ints, _names, load_bench


@click.command(context_settings={"max_content_width": 100})
@click.option("--n", "ns", callback=_ints, metavar="LIST", help="Batch sizes N. Default: 32,256,1024,4096,16384.")
@click.option("--d", "ds", callback=_ints, metavar="LIST", help="Embedding widths D. Default: 256,768.")
@click.option("--loss", "losses", default="icld,supcon,lcl", show_default=True,
              callback=_names(("icld", "supcon", "lcl")), metavar="LIST", help="Losses to measure.")
@click.option("--sms", type=click.IntRange(min=1), default=132, show_default=True,
              help="Multiprocessors of the GPU the fused launches are planned for (H100/H200 SXM: 132).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("results/bench/memory.csv"),
              show_default=True, help="CSV path.")
def memory(ns, ds, losses, sms, out) -> None:
    """Peak MiB of fused vs eager forward+backward (fp32, inputs included); exit 1 if fused is above eager."""
    footprint = load_bench("memory_footprint")
    click.echo(f"{'loss':<8}{'N':>7}{'D':>6}{'eager MiB':>12}{'fused MiB':>12}{'fused/eager':>13}")
    rows = footprint.measure(losses, ns or footprint.NS, ds or footprint.DS, sms, on_row=lambda r: click.echo(
        f"{r['loss']:<8}{r['n']:>7}{r['d']:>6}{r['eager_peak_mib']:>12.2f}{r['fused_peak_mib']:>12.2f}"
        f"{r['fused_vs_eager']:>13.3f}"))
    footprint.write_csv(rows, out)
    above = [r for r in rows if r["fused_vs_eager"] > 1]
    click.echo(f"wrote {len(rows)} rows to {out}; fused above eager in {len(above)}")
    if above:
        raise SystemExit(1)
