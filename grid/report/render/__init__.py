"""A built Report as files, one module per format: markdown, latex, csv, html.

Every renderer walks `Report.sections` (grid.report.SECTIONS) and `Report.frames`, so a new
section appears in every format without touching this package. Adding a format is adding one
module here that defines FORMAT (its `--format` name) and `write(report, out_dir) -> files
written`: WRITERS registers every module of this package whose name does not start with "_"
(those hold what renderers share, e.g. _common), and the CLI's --format choices are its keys.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from pathlib import Path

from grid.report import Report

Writer = Callable[[Report, Path], list[Path]]


def _writers() -> dict[str, Writer]:
    writers: dict[str, Writer] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if module.FORMAT in writers:
            raise ImportError(f"{module.__name__}: format {module.FORMAT!r} is registered twice")
        writers[module.FORMAT] = module.write
    return dict(sorted(writers.items()))


# Format name (the CLI's --format) -> writer(report, out_dir) -> files written.
WRITERS: dict[str, Writer] = _writers()


def write_report(report: Report, out_dir: Path, formats: Iterable[str]) -> list[Path]:
    """Write the requested formats under out_dir (figures already there are embedded in the HTML);
    returns the files written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in dict.fromkeys(formats):
        if fmt not in WRITERS:
            raise ValueError(f"unknown report format {fmt!r}; known: {tuple(WRITERS)}")
        written += WRITERS[fmt](report, out_dir)
    return written
