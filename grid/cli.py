"""The `hcld-grid` command line. Each command group lives in its own module under grid/commands/."""

from __future__ import annotations

import click

from hcld import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="hcld-grid")
def main() -> None:
    """Reproduce HCLD (ICASSP 2025): build data, extract features, run the ablation grid, report."""


def _register() -> None:
    from grid.commands import bench, data, features, report, run

    main.add_command(data.data)
    main.add_command(features.features)
    main.add_command(run.run)
    main.add_command(report.report)
    main.add_command(bench.bench)


_register()

if __name__ == "__main__":
    main()
