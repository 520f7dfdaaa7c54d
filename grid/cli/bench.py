"""`hcld-grid bench ...`: benchmarks that print measured figures and write CSVs under results/bench/."""

import click


@click.group()
def bench() -> None:
    """Benchmarks (kernels, kernel memory, training epochs, training-step split, grid scheduling overhead)."""


def _register() -> None:
    from grid.cli import bench_epochs, bench_kernels, bench_memory, bench_scheduler, bench_steps

    bench.add_command(bench_kernels.kernels)
    bench.add_command(bench_memory.memory)
    bench.add_command(bench_epochs.epochs)
    bench.add_command(bench_scheduler.scheduler)
    bench.add_command(bench_steps.steps)


_register()
