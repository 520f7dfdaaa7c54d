"""`hcld-grid bench ...`: the benchmarks of the benchmarks package (benchmarks.COMMANDS), each
imported when it is invoked or listed; they print measured figures and write CSVs under results/bench/."""

from __future__ import annotations

import importlib

import click

from benchmarks import COMMANDS


class BenchGroup(click.Group):
    """The benchmark commands, looked up in benchmarks.COMMANDS and imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=BenchGroup)
def bench() -> None:
    """Benchmarks: kernels, kernel memory, training steps and epochs, grid scheduling overhead, kernel
    compilation and the GPU check."""
