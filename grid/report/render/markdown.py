"""A built Report as files: Markdown, LaTeX, CSV (and HTML, from grid.report.render.html).

Every renderer walks `Report.sections` (grid.report.SECTIONS) and `Report.frames`, so a new
section appears in every format without touching this module.
"""

from __future__ import annotations

from pathlib import Path

from grid.report import Report


def title(report: Report) -> str:
    return f"HCLD reproduction report: grid `{report.grid}`"


def figure_list(report: Report) -> list[str]:
    """One line per figure note, each setting's introduced by its label when there are several."""
    lines = []
    for index, setting in enumerate(report.settings):
        notes = [f.note for f in report.figures if f.setting == setting]
        if notes and len(report.settings) > 1:
            lines.append(f"setting{index + 1} = {setting}")
        lines += notes
    return lines


# ------------------------------------------------------------------------------------------------
# Markdown


def _md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    out = ["| " + " | ".join(map(esc, headers)) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    return out


def markdown_head(report: Report) -> list[str]:
    """Title, corpus warning and protocol as Markdown lines."""
    lines = [f"# {title(report)}", ""]
    if report.protocol.corpus_warning:
        lines += [f"> **⚠ {report.protocol.corpus_warning}**", ""]
    lines += ["## Protocol", ""] + [f"- {term}: {value}" for term, value in report.protocol.items] + [""]
    return lines


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


# ------------------------------------------------------------------------------------------------
# LaTeX

_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "±": r"$\pm$", "Δ": r"$\Delta$", "—": "---", "×": r"$\times$", "…": r"\ldots{}",
                  "⚠": "(!)"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in str(text))


def render_latex(report: Report) -> str:
    out = [f"% HCLD reproduction report, grid {report.grid}. Needs \\usepackage{{booktabs}}.", "%"]
    out += ["% " + line for line in markdown_head(report) if line]
    for section in report.sections:
        for setting, frame in report.frames(section):
            headers, rows = section.rows(frame)
            caption = section.title + (f" (Setting: {setting})" if setting else "")
            out += ["", r"\begin{table*}[t]", r"\centering\scriptsize",
                    rf"\caption{{{latex_escape(caption)}}}", rf"\begin{{tabular}}{{{'l' * len(headers)}}}",
                    r"\toprule", " & ".join(latex_escape(h) for h in headers) + r" \\", r"\midrule"]
            out += [" & ".join(latex_escape(c) for c in r) + r" \\" for r in rows]
            out += [r"\bottomrule", r"\end{tabular}", r"\end{table*}"]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------------
# Files


def _write_csv(report: Report, out_dir: Path) -> list[Path]:
    paths = []
    for section in report.sections:
        path = out_dir / f"{section.key}.csv"
        report.tables[section.key].write_csv(path)
        paths.append(path)
    return paths


def _write_text(name: str, render):
    def write(report: Report, out_dir: Path) -> list[Path]:
        path = out_dir / name
        path.write_text(render(report, out_dir), encoding="utf-8")
        return [path]
    return write


def _render_html(report: Report, out_dir: Path) -> str:
    from grid.report.render.html import render_html  # here, not on top: render_html builds on this module

    return render_html(report, figure_dir=out_dir)


# Format name (the CLI's --format) -> writer(report, out_dir) -> files written.
WRITERS = {
    "md": _write_text("report.md", lambda report, _: render_markdown(report)),
    "latex": _write_text("report.tex", lambda report, _: render_latex(report)),
    "csv": _write_csv,
    "html": _write_text("report.html", _render_html),
}


def write_report(report: Report, out_dir: Path, formats) -> list[Path]:
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
