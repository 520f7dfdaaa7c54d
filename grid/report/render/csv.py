"""The report's tables as CSV, one file per section (`<Section.key>.csv`), numbers unformatted."""

from __future__ import annotations

from pathlib import Path

from grid.report import Report

FORMAT = "csv"


def write(report: Report, out_dir: Path) -> list[Path]:
    paths = []
    for section in report.sections:
        path = Path(out_dir) / f"{section.key}.csv"
        report.tables[section.key].write_csv(path)
        paths.append(path)
    return paths
