"""The report as Markdown (`report.md`); the CLI also prints this page."""

from __future__ import annotations

from pathlib import Path

from grid.report import Report
from grid.report.render._common import markdown_head, write_text

FORMAT = "md"


def figure_list(report: Report) -> list[str]:
    """One line per figure note, each setting's introduced by its label when there are several."""
    lines = []
    for index, setting in enumerate(report.settings):
        notes = [f.note for f in report.figures if f.setting == setting]
        if notes and len(report.settings) > 1:
            lines.append(f"setting{index + 1} = {setting}")
        lines += notes
    return lines


def _md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    out = ["| " + " | ".join(map(esc, headers)) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    return out


def render_markdown(report: Report) -> str:
    lines = markdown_head(report)
    for section in report.sections:
        lines += [f"## {section.title}", ""]
        for setting, frame in report.frames(section):
            if setting:
                lines += [f"### Setting: {setting}", ""]
            lines += _md_table(*section.rows(frame)) + [""]
        if section.note:
            lines += [section.note, ""]
    lines += ["## Notes", ""] + [f"- {n}" for n in report.notes] + [""]
    if report.figures:
        lines += ["## Figures", ""] + [f"- {line}" for line in figure_list(report)] + [""]
    return "\n".join(lines)


def write(report: Report, out_dir: Path) -> list[Path]:
    return write_text(out_dir, "report.md", render_markdown(report))
