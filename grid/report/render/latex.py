"""The report as LaTeX tables (`report.tex`, booktabs), the protocol as comments above them."""

from __future__ import annotations

from pathlib import Path

from grid.report import Report
from grid.report.render._common import markdown_head, write_text

FORMAT = "latex"

_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "±": r"$\pm$", "Δ": r"$\Delta$", "—": "---", "×": r"$\times$", "…": r"\ldots{}",
                  "⚠": "(!)", "–": "--", "−": "$-$", "≤": r"$\le$", "|": r"$|$"}


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


def write(report: Report, out_dir: Path) -> list[Path]:
    return write_text(out_dir, "report.tex", render_latex(report))
