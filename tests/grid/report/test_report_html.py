"""The HTML report, read back with an HTML parser: sections, contents, tables, embedded figures,
and no Markdown syntax left in the text a reader sees."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import polars as pl
from click.testing import CliRunner
from test_figures import grid_with_artifacts
from test_report import hand_rows, trial, write

from grid import report as R
from grid.cli.report import report as report_cmd
from grid.report.render.html import render_html

VOID = {"meta", "img", "br", "hr", "link", "input", "source", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None):
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def all(self, tag: str | None = None, **attrs) -> list[Node]:
        found = []
        for c in self.children:
            if isinstance(c, Node):
                if (tag is None or c.tag == tag) and all(attrs[k] in (c.attrs.get(k) or "").split()
                                                         for k in attrs):
                    found.append(c)
                found += c.all(tag, **attrs)
        return found

    def by_id(self, anchor: str) -> Node:
        hits = [n for n in self.all() if n.attrs.get("id") == anchor]
        assert len(hits) == 1, (anchor, len(hits))
        return hits[0]


class TreeBuilder(HTMLParser):
    """A DOM-like tree from html.parser, checking that every element is closed where it opened."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs), self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_endtag(self, tag):
        assert self.cur.tag == tag, f"</{tag}> closes <{self.cur.tag}>"
        self.cur = self.cur.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def parse(page: str) -> Node:
    builder = TreeBuilder()
    builder.feed(page)
    builder.close()
    assert builder.cur is builder.root, f"<{builder.cur.tag}> never closed"
    return builder.root


def visible_text(root: Node) -> str:
    def walk(node: Node) -> str:
        if node.tag in ("style", "script", "head"):
            return ""
        return "".join(c if isinstance(c, str) else walk(c) for c in node.children)
    return walk(root)


def table_rows(table: Node) -> tuple[list[str], list[list[str]]]:
    headers = [th.text() for th in table.all("th")]
    return headers, [[td.text() for td in tr.all("td")] for tr in table.all("tbody")[0].all("tr")]


def assert_no_markdown_left(root: Node) -> None:
    text = visible_text(root)
    assert "`" not in text and "**" not in text
    for line in text.splitlines():
        assert not re.match(r"\s*(#{1,6} |> |\|.*\||- )", line), line


def assert_offline(root: Node) -> None:
    assert not root.all("link") and not root.all("script")
    for node in root.all():
        assert node.attrs.get("href", "#").startswith("#"), node.attrs  # only links within the page
        assert node.attrs.get("src", "data:").startswith("data:"), node.attrs["src"][:80]


def test_page_shows_every_table_and_figure_of_the_markdown_report(tmp_path):
    grid_dir = grid_with_artifacts(tmp_path)
    result = CliRunner().invoke(report_cmd, ["g", "--results-dir", str(tmp_path), "--format", "html",
                                             "--format", "md"])
    assert result.exit_code == 0, result.output
    out = grid_dir / "report"
    md = (out / "report.md").read_text()
    root = parse((out / "report.html").read_text())
    assert_no_markdown_left(root)
    assert_offline(root)

    # Contents: every section, each link resolving to its section.
    toc = root.all("nav")[0]
    anchors = [a.attrs["href"][1:] for a in toc.all("a")]
    assert anchors == ["protocol", "table1", "sensitivity", "table2", "significance", "probes", "notes"]
    assert all(root.by_id(a).tag == "section" for a in anchors)

    # As many tables as the Markdown report, each with a header and body.
    assert len(root.all("table")) == md.count("\n|---") == 5
    assert all(table.all("thead") and table.all("tbody") for table in root.all("table"))

    # Every figure the Markdown lists as written is embedded (the same bytes), beside its table.
    written = re.findall(r"^- wrote (\S+\.png)", md, flags=re.M)
    assert len(written) == 5
    embedded = {}
    for figure in root.all("figure"):
        img, = figure.all("img")
        assert img.attrs["alt"] and img.attrs["src"].startswith("data:image/png;base64,")
        name = figure.all("figcaption")[0].all("code")[0].text()
        embedded[name] = (img.attrs["src"].split(",", 1)[1], figure)
    assert sorted(embedded) == sorted(written)
    for name, (data, figure) in embedded.items():
        assert base64.b64decode(data) == (out / name).read_bytes()
        section = figure
        while section.tag != "section":
            section = section.parent
        assert section.attrs["id"] == ("probes" if name.startswith("projection") else "table2"), name
    # Figures that could not be drawn say so where they would have been.
    skipped = [p.text() for p in root.by_id("probes").all("p", **{"class": "skipped"})]
    assert any("projection_lstm.png" in s and "no embeddings.npz" in s for s in skipped)

    # The corpus warning is a banner; the protocol a definition list with code spans as <code>.
    banner, = root.all("div", **{"class": "warning"})
    assert "NOT the paper's setting" in banner.text()
    protocol = root.by_id("protocol")
    assert [dt.text() for dt in protocol.all("dt")][:3] == ["Trials table", "Data / corpus", "Features"]
    assert "trials.parquet" in [c.text() for c in protocol.all("code")]


def test_cells_match_the_markdown_and_numbers_are_right_aligned(tmp_path):
    rep = R.build_report(write(tmp_path, hand_rows()), "g")
    root = parse(render_html(rep))
    table = root.by_id("table2").all("table")[0]
    headers, rows = table_rows(table)
    hcld_cnn = next(r for r in rows if r[:2] == ["HCLD", "CNN"])
    assert hcld_cnn[5:10] == ["1", "75.00 ± 4.08", "1 seed", "75.52", "-0.52"]  # seeds/fold, ours, seed sd, paper, Δ
    aligned = {th.text(): "num" in (th.attrs.get("class") or "") for th in table.all("th")}
    assert aligned["Emo WA (ours)"] and aligned["done/exp"] and not aligned["Type"] and not aligned["Model"]
    sig_headers = [th for th in root.by_id("significance").all("th") if th.text() == "p corrected t (Nadeau–Bengio)"]
    assert "num" in sig_headers[0].attrs.get("class", "")  # p-values and their MISSING markers
    assert not root.all("div", **{"class": "warning"})  # this table claims IEMOCAP
    assert_no_markdown_left(root)


def test_each_setting_is_its_own_section_linked_from_the_contents(tmp_path):
    rows = [trial("hcld", "cnn", f, emo_wa=0.5, emo_ua=0.5, features="fbank") for f in range(2)]
    rows += [trial("hcld", "cnn", f, emo_wa=0.9, emo_ua=0.9, features="hubert") for f in range(2)]
    rep = R.build_report(write(tmp_path, rows), "g")
    root = parse(render_html(rep))
    toc_links = [a.attrs["href"] for a in root.all("nav")[0].all("a")]
    for index, setting in enumerate(rep.settings, start=1):
        section = root.by_id(f"setting-{index}")
        assert f"#setting-{index}" in toc_links and setting in section.text()
        for key in ("table2", "significance", "probes"):
            assert f"#setting-{index}-{key}" in toc_links
            assert len(section.by_id(f"setting-{index}-{key}").all("table")) == 1
        emo_wa = {r[1]: r[6] for r in table_rows(section.by_id(f"setting-{index}-table2").all("table")[0])[1]
                  if r[0] == "HCLD"}
        expected = rep.tables["table2"].filter((pl.col("setting") == setting) & (pl.col("variant") == "hcld")
                                               & (pl.col("backbone") == "cnn"))["emo_wa_mean"].item()
        assert emo_wa["CNN"].startswith(f"{expected:.2f} ± ")
    assert len(root.by_id("table1").all("table")) == 1  # grid-wide: listed once, not per setting
    assert_no_markdown_left(root)
