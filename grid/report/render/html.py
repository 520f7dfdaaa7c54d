"""The report as one self-contained HTML page: the page a researcher opens and sends on.

The figures are embedded as base64 PNG data URIs beside the tables they explain (Section.figures),
so the single file can be mailed and works offline; nothing is loaded from the network. With
several settings the page has one section per setting, each linked from the contents.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import polars as pl

from grid.report import Report, Section
from grid.report.cells import MISSING, NOT_REPORTED, ONE_SEED, UNDEFINED
from grid.report.render._common import title, write_text

FORMAT = "html"

_CODE_SPAN = re.compile(r"`([^`]+)`")
# A cell that is a number (mean ± std [n=k], a signed Δ, a p-value, done/expected, seeds 2–3,
# seed spreads A / B) or a marker.
_NUMERIC = re.compile(
    r"[+-]?\d+(\.\d+)?(e[+-]?\d+)?( ± ([\d.]+|n/a))?( \[n=\d+\])?|\d+/\d+|\d+–\d+"
    rf"|([\d.]+|{ONE_SEED})( / ([\d.]+|{ONE_SEED}))+"
)
_MARKERS = {MISSING, NOT_REPORTED, UNDEFINED, ONE_SEED, ""}

_CSS = """
:root { color-scheme: light; }
body { margin: 0; color: #1f2328; background: #fff;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1440px; margin: 0 auto; padding: 20px 24px 64px; }
h1 { font-size: 1.6rem; margin: 0 0 .4rem; }
h2 { font-size: 1.3rem; margin: 2.2rem 0 .6rem; padding-bottom: .25rem; border-bottom: 1px solid #d0d7de; }
h3 { font-size: 1.08rem; margin: 1.8rem 0 .5rem; }
code { font: .88em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: #f3f4f6;
  padding: .05em .3em; border-radius: 4px; }
a { color: #0550ae; }
.warning { background: #fff4e5; border: 1px solid #f0b429; border-left: 6px solid #d97706; color: #7a3e00;
  padding: .8rem 1rem; margin: 1rem 0; font-weight: 600; }
nav.toc { background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px; padding: .4rem 1.4rem .6rem;
  margin: 1rem 0; display: inline-block; min-width: 22rem; }
nav.toc h2 { font-size: 1rem; border: 0; margin: .4rem 0 .2rem; padding: 0; }
nav.toc ol { margin: .1rem 0; padding-left: 1.4rem; }
nav.toc .label { color: #57606a; font-size: .85em; }
dl.protocol { display: grid; grid-template-columns: max-content 1fr; gap: .35rem 1.4rem; margin: 0; }
dl.protocol dt { font-weight: 600; }
dl.protocol dd { margin: 0; }
.setting-label { margin: -.2rem 0 1rem; }
.table-wrap { overflow-x: auto; margin: .4rem 0 .6rem; }
table { border-collapse: collapse; font-size: 12.5px; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #d8dee4; padding: 3px 7px; text-align: left; vertical-align: top; }
th, td.num { white-space: nowrap; }
td { max-width: 30rem; }
thead th { background: #f6f8fa; border-bottom: 2px solid #afb8c1; vertical-align: bottom; }
th.num, td.num { text-align: right; }
tbody tr:nth-child(even) { background: #fafbfc; }
tbody tr:hover { background: #eef6ff; }
p.note { color: #57606a; font-size: .92rem; max-width: 62rem; }
p.skipped { color: #8c6d1f; font-size: .88rem; margin: .2rem 0; }
.figures { display: flex; flex-direction: column; gap: 1rem; margin: .8rem 0; }
figure { margin: 0; border: 1px solid #d8dee4; border-radius: 6px; padding: .6rem; }
figure img { display: block; max-width: 100%; height: auto; margin: 0 auto; }
figcaption { font-size: .88rem; color: #57606a; margin-top: .4rem; }
@page { size: A4 landscape; margin: 12mm; }
@media print {
  body { font-size: 10pt; }
  main { max-width: none; padding: 0; }
  .table-wrap { overflow: visible; }
  table { font-size: 7.5pt; }
  th, td { padding: 2px 4px; }
  tbody tr:nth-child(even), tbody tr:hover { background: none; }
  section.setting { break-before: page; }
  h2, h3 { break-after: avoid; }
  figure, tr { break-inside: avoid; }
  a { color: inherit; text-decoration: none; }
}
"""


def inline(text: str) -> str:
    """Escape text for HTML and turn its `code spans` (the only markup report text carries) into <code>."""
    return _CODE_SPAN.sub(r"<code>\1</code>", html.escape(str(text), quote=False))


def _is_numeric_column(cells: list[str]) -> bool:
    """Numbers and markers only (a p-value column may hold only MISSING), and not all empty."""
    return any(cells) and all(c in _MARKERS or _NUMERIC.fullmatch(c) for c in cells)


def table_html(headers: list[str], rows: list[list[str]]) -> str:
    numeric = [_is_numeric_column([r[i] for r in rows]) for i in range(len(headers))]
    cls = lambda i: ' class="num"' if numeric[i] else ""  # noqa: E731
    head = "".join(f'<th scope="col"{cls(i)}>{inline(h)}</th>' for i, h in enumerate(headers))
    body = "\n".join("<tr>" + "".join(f"<td{cls(i)}>{inline(c)}</td>" for i, c in enumerate(r)) + "</tr>"
                     for r in rows)
    return (f'<div class="table-wrap"><table>\n<thead><tr>{head}</tr></thead>\n'
            f"<tbody>\n{body}\n</tbody>\n</table></div>")


def _png_data_uri(path: Path) -> str | None:
    try:
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    except OSError:
        return None


class _Page:
    """Collects the page body and its table of contents while the sections are laid out."""

    def __init__(self, report: Report, figure_dir: Path | None):
        self.report = report
        self.figure_dir = figure_dir
        self.body: list[str] = []
        self.toc: list[tuple[int, str, str, str]] = []  # (level, anchor, title, label)
        self.placed: set[int] = set()  # ids of the figures shown beside a table

    def open(self, level: int, anchor: str, text: str, label: str = "", css: str = "") -> None:
        """Start a <section> with its heading, listed in the contents."""
        self.toc.append((level, anchor, text, label))
        klass = f' class="{css}"' if css else ""
        self.body.append(f'<section id="{anchor}"{klass}><h{level + 1}>{inline(text)}</h{level + 1}>')

    def figures(self, section: Section, settings: list[str]) -> None:
        shown = [f for f in self.report.figures if f.kind in section.figures and f.setting in settings]
        self.placed.update(id(f) for f in shown)
        drawn = []
        for fig in shown:
            uri = _png_data_uri(self.figure_dir / fig.file) if fig.file and self.figure_dir else None
            if uri is None:
                self.body.append(f'<p class="skipped">Figure not drawn: {inline(fig.note)}</p>')
                continue
            drawn.append(f'<figure><img src="{uri}" alt="{html.escape(fig.caption)}">'
                         f"<figcaption>{inline(fig.caption)} (<code>{inline(fig.file)}</code>)</figcaption></figure>")
        if drawn:
            self.body.append('<div class="figures">' + "\n".join(drawn) + "</div>")

    def section(self, section: Section, setting: str | None, anchor: str, level: int) -> None:
        """One table (of one setting, or the whole grid's), its note and its figures."""
        table = self.report.tables[section.key]
        if setting is not None:
            table = table.filter(pl.col("setting") == setting)
        self.open(level, anchor, section.title)
        self.body.append(table_html(*section.rows(table)))
        if section.note:
            self.body.append(f'<p class="note">{inline(section.note)}</p>')
        self.figures(section, [setting] if setting is not None else self.report.settings)
        self.body.append("</section>")


def _layout(page: _Page) -> None:
    report = page.report
    page.open(1, "protocol", "Protocol")
    page.body.append('<dl class="protocol">' + "".join(
        f"<dt>{inline(term)}</dt><dd>{inline(value)}</dd>" for term, value in report.protocol.items) + "</dl>")
    page.body.append("</section>")
    for section in report.sections:
        if not section.per_setting:
            page.section(section, None, section.key, 1)
    per_setting = [s for s in report.sections if s.per_setting]
    if len(report.settings) == 1:
        for section in per_setting:
            page.section(section, None, section.key, 1)
    else:
        for index, setting in enumerate(report.settings, start=1):
            anchor = f"setting-{index}"
            page.open(1, anchor, f"Setting {index}", setting, css="setting")
            page.body.append(f'<p class="setting-label"><code>{inline(setting)}</code></p>')
            for section in per_setting:
                page.section(section, setting, f"{anchor}-{section.key}", 2)
            page.body.append("</section>")
    page.open(1, "notes", "Notes")
    unplaced = [f.note for f in report.figures if id(f) not in page.placed]
    page.body.append("<ul>" + "".join(f"<li>{inline(n)}</li>" for n in report.notes + unplaced) + "</ul>")
    if page.placed:
        page.body.append('<p class="note">The figures are embedded in this file; the same PNGs are in the '
                         "report folder.</p>")
    page.body.append("</section>")


def _toc_html(toc: list[tuple[int, str, str, str]]) -> str:
    out, depth = ["<ol>"], 1
    for level, anchor, text, label in toc:
        if level > depth:
            out[-1] = out[-1].removesuffix("</li>")
            out.append("<ol>")
        elif level < depth:
            out.append("</ol></li>")
        depth = level
        extra = f' <span class="label">{inline(label)}</span>' if label else ""
        out.append(f'<li><a href="#{anchor}">{inline(text)}</a>{extra}</li>')
    out += ["</ol></li>"] * (depth - 1) + ["</ol>"]
    return '<nav class="toc" aria-label="Contents"><h2>Contents</h2>' + "\n".join(out) + "</nav>"


def render_html(report: Report, figure_dir: Path | None = None) -> str:
    """The page; figures listed in `report.figures` are read from figure_dir and embedded."""
    page = _Page(report, Path(figure_dir) if figure_dir is not None else None)
    _layout(page)
    warning = report.protocol.corpus_warning
    banner = f'<div class="warning" role="alert">⚠ {inline(warning)}</div>' if warning else ""
    return "\n".join([
        "<!doctype html>",
        '<html lang="en">',
        '<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>HCLD report: grid {html.escape(report.grid)}</title>",
        f"<style>{_CSS}</style></head>",
        "<body><main>",
        f"<header><h1>{inline(title(report))}</h1></header>",
        banner,
        _toc_html(page.toc),
        *page.body,
        "</main></body></html>",
    ]) + "\n"


def write(report: Report, out_dir: Path) -> list[Path]:
    """report.html, with the figures already in out_dir embedded."""
    return write_text(out_dir, "report.html", render_html(report, figure_dir=out_dir))
