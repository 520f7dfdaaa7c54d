"""`hcld-grid bench ...`: the benchmarks of the benchmarks package (benchmarks.COMMANDS), each
imported when it is invoked or listed; they print measured figures and write CSVs under results/bench/."""

from __future__ import annotations

import click

from benchmarks import COMMANDS
from grid.cli.options import LazyGroup


@click.group(cls=LazyGroup, commands=COMMANDS)
def bench() -> None:
    """Benchmarks: kernels, kernel memory, training steps and epochs, grid scheduling overhead, kernel
    compilation and the GPU check."""
