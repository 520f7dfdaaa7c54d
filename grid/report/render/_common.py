"""What several renderers share: the report's title, its head as Markdown lines, writing one file.

Not a format (its name starts with "_", so grid.report.render does not register it).
"""

from __future__ import annotations

from pathlib import Path

from grid.report import Report


def title(report: Report) -> str:
    return f"HCLD reproduction report: grid `{report.grid}`"


def markdown_head(report: Report) -> list[str]:
    """Title, corpus warning and protocol as Markdown lines (the Markdown page opens with them; the
    LaTeX file carries them as comments)."""
    lines = [f"# {title(report)}", ""]
    if report.protocol.corpus_warning:
        lines += [f"> **⚠ {report.protocol.corpus_warning}**", ""]
    lines += ["## Protocol", ""] + [f"- {term}: {value}" for term, value in report.protocol.items] + [""]
    return lines


def write_text(out_dir: Path, name: str, text: str) -> list[Path]:
    """Write one UTF-8 file of the report; returns [its path], as a format's `write` does."""
    path = Path(out_dir) / name
    path.write_text(text, encoding="utf-8")
    return [path]
