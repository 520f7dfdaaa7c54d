"""The report's tables as CSV, one file per section (`<Section.key>.csv`), numbers unformatted but
for 12 significant digits: the last bits of a sum differ between CPUs (numpy picks SIMD code per
machine), and a rebuild of a committed table must give the same bytes on any of them."""

from __future__ import annotations

from pathlib import Path

import polars.selectors as cs

from grid.report import Report

FORMAT = "csv"
SIGNIFICANT_DIGITS = 12


def write(report: Report, out_dir: Path) -> list[Path]:
    paths = []
    for section in report.sections:
        path = Path(out_dir) / f"{section.key}.csv"
        report.tables[section.key].with_columns(cs.float().round_sig_figs(SIGNIFICANT_DIGITS)).write_csv(path)
        paths.append(path)
    return paths
