"""`hcld-grid report GRID`: the paper's tables (and figures) from results/<grid>/trials.parquet."""

from __future__ import annotations

import time
from pathlib import Path

import click

from grid.cli.options import input_errors
from grid.report import build_report
from grid.report.figures import make_figures, tune_figures
from grid.report.render import WRITERS, write_report
from grid.report.render.markdown import render_markdown
from grid.report.stats import DEFAULT_ROPE


@click.command()
@click.argument("grid", default="full", required=False)
@click.option("--results-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("results"),
              show_default=True, help="Folder holding <grid>/trials.parquet.")
@click.option("--format", "formats", type=click.Choice(tuple(WRITERS)), multiple=True,
              help="File format(s) to write under <results-dir>/<grid>/report/ (repeatable). Default: md. "
                   "html is one self-contained page with the figures embedded.")
@click.option("--no-figures", is_flag=True, help="Skip the PNG figures (tables only).")
@click.option("--rope", type=click.FloatRange(min=0.0), default=DEFAULT_ROPE, show_default=True,
              help="Region of practical equivalence for the Bayesian columns: differences within ± this many "
                   "percentage points count as equivalent.")
@input_errors
def report(grid: str, results_dir: Path, formats: tuple[str, ...], no_figures: bool, rope: float) -> None:
    """Print Table I / Table II, significance and probes for GRID (default: full) and write files.

    GRID-tune (the folder `hcld-grid tune GRID` writes) gives the tune's report: the tuned Table II,
    HCLD against every control, the chosen configurations, the compute and the expected-max curves."""
    started = time.perf_counter()
    rep = build_report(results_dir, grid, rope=rope)
    table_seconds = time.perf_counter() - started
    out_dir = rep.grid_dir / "report"
    if not no_figures:
        rep.figures = (make_figures(rep.trials, rep.grid_dir, out_dir, rep.settings)
                       + tune_figures(rep.tables, out_dir, rep.settings))
    written = write_report(rep, out_dir, formats or ("md",))
    click.echo(render_markdown(rep))
    click.echo(f"tables built in {table_seconds:.2f} s; wrote {len(written)} file(s) under {out_dir}", err=True)
