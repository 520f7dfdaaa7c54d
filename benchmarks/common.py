"""What every benchmark shares: the device list, CSV output, a stage clock and dtype names. One
implementation of each; the benchmark modules import them from here (comma-list options come from
grid.cli.options, shared with every command).

Imports only the standard library and click at module level: `hcld-grid bench --help` imports every
benchmark module, and torch, triton (hcld.kernels.tiles) and numpy load when a benchmark runs.
"""

from __future__ import annotations

import contextlib
import csv
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import click

from grid.cli.options import split_list

# -- devices -------------------------------------------------------------------------------------


def default_device() -> str:
    """cuda when a GPU is present, else cpu."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def device_list(value: str) -> list[str]:
    """A --device value: comma-separated torch devices, or `auto` (cpu, plus cuda when present).
    Refuses a cuda device on a machine without one."""
    import torch

    wanted = split_list(value)
    if wanted == ["auto"]:
        wanted = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if any(d.startswith("cuda") for d in wanted) and not torch.cuda.is_available():
        raise click.ClickException("--device cuda requested but CUDA is not available on this machine")
    return wanted


# -- CSV output ----------------------------------------------------------------------------------


@contextlib.contextmanager
def csv_rows(path: Path, columns: Sequence[str], *, append: bool = False) -> Iterator[Callable[[dict], None]]:
    """Yields write(row): each row reaches the file as it is measured (flushed), so a run cut off by
    a time limit keeps every finished row. A new file (or any file without `append`) gets the header
    first; appending to a file whose header differs from `columns` is refused (the rows would land
    under the wrong names). A value of None is written empty, a missing column too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    append = append and path.exists() and path.stat().st_size > 0
    if append:
        with open(path, newline="") as fh:
            header = next(csv.reader(fh), [])
        if header != list(columns):
            raise click.ClickException(f"{path} has other columns than this benchmark writes; "
                                       "pass another --out (or move the file aside)")
    with open(path, "a" if append else "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns))
        if not append:
            writer.writeheader()

        def write(row: dict) -> None:
            writer.writerow(row)
            fh.flush()

        yield write


def write_csv(path: Path, rows: list[dict], columns: Sequence[str] | None = None, *, append: bool = False) -> Path:
    """All `rows` to `path` at once (columns: those of the first row unless given)."""
    with csv_rows(path, columns or list(rows[0]), append=append) as write:
        for row in rows:
            write(row)
    return path


# -- timing --------------------------------------------------------------------------------------


class StageClock:
    """Seconds per named stage; a device sync closes each stage, so on CUDA a stage's time is its
    own work and not the queue it left behind."""

    def __init__(self, device) -> None:
        import torch

        self.sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
        self.seconds: dict[str, list[float]] = defaultdict(list)

    @contextlib.contextmanager
    def stage(self, name: str):
        t0 = time.perf_counter()
        yield
        self.sync()
        self.seconds[name].append(time.perf_counter() - t0)

    def mean(self, name: str) -> float:
        values = self.seconds.get(name, [])
        return sum(values) / len(values) if values else 0.0


# -- dtypes --------------------------------------------------------------------------------------


def dtype_names() -> tuple[str, ...]:
    """The input dtypes the fused kernels take, by name (hcld.kernels.tiles.DTYPE_NAMES): fp32, fp16, bf16.
    Imports triton: call it after a CPU run has chosen the interpreter (kernels.interpret_cpu_launches)."""
    from hcld.kernels.tiles import DTYPE_NAMES

    return tuple(DTYPE_NAMES.values())


def torch_dtype(name: str):
    """'fp32' -> torch.float32 (the inverse of hcld.kernels.tiles.DTYPE_NAMES)."""
    from hcld.kernels.tiles import DTYPE_NAMES

    by_name = {v: k for k, v in DTYPE_NAMES.items()}
    if name not in by_name:
        raise ValueError(f"dtype must be one of {', '.join(by_name)}, got {name!r}")
    return by_name[name]
