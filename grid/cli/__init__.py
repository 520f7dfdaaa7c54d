"""The `hcld-grid` command line: one module per command under grid/cli/, options shared in
grid/cli/options.py. A command's module is imported only when it is invoked (or listed by
`--help`), so a command needs only its own dependencies: `hcld-grid bench` runs on a machine
without polars/ray."""

from __future__ import annotations

import click

from grid.cli.options import LazyGroup
from hcld import __version__

# command name -> "module:attribute" of its click command
COMMANDS = {
    "data": "grid.cli.data:data",
    "features": "grid.cli.features:features",
    "run": "grid.cli.run:run",
    "tune": "grid.cli.tune:tune",
    "report": "grid.cli.report:report",
    "predict": "grid.cli.predict:predict",
    "bench": "grid.cli.bench:bench",
}


@click.group(cls=LazyGroup, commands=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="hcld-grid")
def main() -> None:
    """Reproduce HCLD (ICASSP 2025): build data, extract features, run the ablation grid, report."""
