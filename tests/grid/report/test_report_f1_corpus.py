"""Table II's macro-F1 beside emotion WA and UA, and the paper's numbers only beside its corpus.

Rows are written by hand (test_report.trial); the expected cells are worked out in the comments.
macro-F1 comes from hcld.metrics like every metric the report names; the paper prints none ("-"),
and a trials table older than the metric did not record it: its cells are missing, never 0.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import polars as pl
import pytest
from test_report import find, md_table, trial, write

from grid import report as R
from grid.report import paper, tables
from grid.report.cells import METRIC_TITLES, MISSING, NOT_REPORTED, UNDEFINED
from grid.report.render import write_report
from grid.report.render.markdown import render_markdown
from hcld.metrics import EMOTION_F1

F1 = f"{METRIC_TITLES[EMOTION_F1]} (ours)"
RESULTS = Path(__file__).resolve().parents[3] / "results"


def f1_rows(**setting):
    """HCLD / CNN on folds 0-3 with macro-F1 60, 70, 65, 65 (fold 0 twice: seeds 0 and 1, 0.58 and
    0.62, mean 0.60); EMO-only / CNN with an undefined (NaN) F1 on two folds."""
    rows = [trial("hcld", "cnn", 0, emo_wa=0.7, emo_ua=0.7, emo_f1=0.58, trial_id="h0s0", seed=0, **setting),
            trial("hcld", "cnn", 0, emo_wa=0.7, emo_ua=0.7, emo_f1=0.62, trial_id="h0s1", seed=1, **setting)]
    rows += [trial("hcld", "cnn", f, emo_wa=0.7, emo_ua=0.7, emo_f1=v, **setting)
             for f, v in ((1, 0.70), (2, 0.65), (3, 0.65))]
    rows += [trial("emo_only", "cnn", f, emo_wa=0.6, emo_ua=0.6, emo_f1=math.nan, **setting) for f in (0, 1)]
    return rows


def setting_table(md: str, title: str, setting: str) -> list[dict[str, str]]:
    """The Markdown table of `title` under `### Setting: <setting>` (md_table reads the first one)."""
    section = md.split("## " + title, 1)[1]
    return md_table("## T\n" + section.split(f"### Setting: {setting}\n", 1)[1], "T")


def test_table2_shows_macro_f1_beside_emotion_wa_and_ua(tmp_path):
    rep = R.build_report(write(tmp_path, f1_rows()), "g")
    md = render_markdown(rep)
    header = next(line for line in md.split("## Table II")[1].splitlines() if line.startswith("|"))
    titles = [h.strip() for h in header.strip("|").split("|") if h.strip().endswith("(ours)")]
    assert titles == ["Emo WA (ours)", "Emo UA (ours)", F1, "Spk WA (ours)", "Spk UA (ours)"]
    hcld = find(md_table(md, "Table II"), Type="HCLD", Model="CNN")
    # 60, 70, 65, 65: mean 65, std sqrt((25+25)/3) = 4.08; seed sd: fold 0's only, std(58, 62) = 2.83
    assert hcld[F1] == "65.00 ± 4.08"
    assert hcld["seed sd#3"] == "2.83"
    # The paper reports no F1: its "-" in the paper and Δ columns
    assert (hcld["paper#3"], hcld["Δ#3"]) == (NOT_REPORTED, NOT_REPORTED)
    assert (hcld["paper"], hcld["paper#2"]) == ("75.52", "76.08")  # WA and UA still compared
    assert find(md_table(md, "Table II"), Type="EMO-only", Model="CNN")[F1] == UNDEFINED  # NaN: recorded
    assert find(md_table(md, "Table II"), Type="HCLD", Model="LSTM")[F1] == MISSING  # never run

    write_report(rep, tmp_path / "out", ["csv", "latex", "html"])
    t2 = pl.read_csv(tmp_path / "out" / "table2.csv")
    row = t2.filter((pl.col("variant") == "hcld") & (pl.col("backbone") == "cnn")).row(0, named=True)
    f1 = {k.removeprefix(EMOTION_F1 + "_"): v for k, v in row.items() if k.startswith(EMOTION_F1 + "_")}
    assert f1["mean"] == pytest.approx(65.0) and f1["std"] == pytest.approx(math.sqrt(50 / 3))
    assert (f1["n"], f1["recorded"], f1["paper"], f1["diff"]) == (4, 4, None, None)
    assert f1["seed_sd"] == pytest.approx(100 * math.sqrt(0.0008))
    cols = t2.columns
    assert cols.index(f"{EMOTION_F1}_mean") > cols.index("emo_ua_mean") and cols.index(
        f"{EMOTION_F1}_mean") < cols.index("spk_wa_mean")
    tex = (tmp_path / "out" / "report.tex").read_text()
    assert r"Emo macro-F1 (ours)" in tex and r"65.00 $\pm$ 4.08 & 2.83 & - & -" in tex
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Emo macro-F1 (ours)</th>" in html and '<td class="num">65.00 ± 4.08</td>' in html


def test_a_table_older_than_macro_f1_shows_it_missing(tmp_path):
    rows = [{k: v for k, v in r.items() if k != EMOTION_F1} for r in f1_rows()]  # no such column
    rep = R.build_report(write(tmp_path, rows), "g")
    md = render_markdown(rep)
    for r in md_table(md, "Table II"):
        assert r[F1] == MISSING and r["seed sd#3"] == MISSING, r  # not 0, not undefined
    hcld = find(md_table(md, "Table II"), Type="HCLD", Model="CNN")
    assert hcld["Emo WA (ours)"] == "70.00 ± 0.00" and hcld["paper#3"] == NOT_REPORTED
    row = rep.tables["table2"].filter((pl.col("variant") == "hcld") & (pl.col("backbone") == "cnn")).row(0, named=True)
    assert (row[f"{EMOTION_F1}_mean"], row[f"{EMOTION_F1}_n"], row[f"{EMOTION_F1}_recorded"]) == (None, 0, 0)


def test_rows_older_than_macro_f1_in_a_newer_table_count_as_not_recorded(tmp_path):
    # A grid resumed with newer code: folds 0-1 ran before F1 (null), folds 2-3 after.
    rows = f1_rows()
    for r in rows:
        if r["trial_id"] in ("h0s0", "h0s1") or r["fold"] == 1:
            r[EMOTION_F1] = None
    md = render_markdown(R.build_report(write(tmp_path, rows), "g"))
    assert find(md_table(md, "Table II"), Type="HCLD", Model="CNN")[F1] == "65.00 ± 0.00 [n=2]"


def test_the_committed_demo_report_shows_the_macro_f1_its_rows_recorded():
    # results/demo was re-run with macro-F1 in every row: its committed tables show it in every cell.
    trials = pl.read_parquet(RESULTS / "demo" / "trials.parquet")
    assert trials[EMOTION_F1].null_count() == 0
    t2 = pl.read_csv(RESULTS / "demo" / "report" / "table2.csv").filter(pl.col("n_done") > 0)
    assert t2.height and (t2[f"{EMOTION_F1}_recorded"] == t2["n_done"]).all()
    rows = md_table((RESULTS / "demo" / "report" / "report.md").read_text(), "Table II")
    ours = [r[F1] for r in rows if r[F1] != MISSING]
    assert len(ours) == t2.height and all(re.fullmatch(r"\d+\.\d\d ± \d+\.\d\d", v) for v in ours)


# The paper's numbers that would give it away: Table II cells and a quoted Table I baseline.
PAPER_NUMBERS = ("75.52", "76.08", "70.84", "81.69", "73.29", "75.03")


@pytest.mark.parametrize("corpus", ["crema-d", "manifest"])
def test_no_paper_numbers_beside_another_corpus(tmp_path, corpus):
    rep = R.build_report(write(tmp_path, f1_rows(corpus=corpus, features="fbank")), "g")
    write_report(rep, tmp_path / "out", ["md", "latex", "html", "csv"])
    out = tmp_path / "out"
    md = (out / "report.md").read_text()
    t2 = md_table(md, "Table II")
    assert not any(k.startswith(("paper", "Δ")) for k in t2[0])  # no paper or Δ column
    assert find(t2, Type="HCLD", Model="CNN")["Emo WA (ours)"] == "70.00 ± 0.00"
    t1 = md_table(md, "Table I:")
    assert [r["Model"] for r in t1] == ["HCLD-CNN (ours)", "HCLD-RNN (ours)", "HCLD-transformers (ours)"]
    assert "Δ WA vs paper" not in t1[0]
    assert "Paper: IEMOCAP only" in md and f"corpus {corpus}" in md
    assert "The paper reports IEMOCAP only" in md.split("## Protocol")[0]  # the banner says why
    for text in (md, (out / "report.tex").read_text(), (out / "report.html").read_text()):
        for number in PAPER_NUMBERS:
            assert not re.search(rf"(?<![\d.]){re.escape(number)}(?!\d)", text), number
    csv = pl.read_csv(out / "table2.csv")
    assert not csv["paper_corpus"].any()
    numbers = [c for c in csv.columns if c.endswith(("_paper", "_diff")) and c != "in_paper"]
    assert len(numbers) == 2 * len(tables.TABLE2_METRICS)
    assert all(csv[c].null_count() == csv.height for c in numbers)
    assert set(pl.read_csv(out / "table1.csv")["source"].str.starts_with("this run").to_list()) == {True}


@pytest.mark.parametrize("corpus", ["iemocap", "synthetic(seed=0,n=1000)"])
def test_paper_numbers_beside_iemocap_and_its_synthetic_stand_in(tmp_path, corpus):
    rep = R.build_report(write(tmp_path, f1_rows(corpus=corpus)), "g")
    md = render_markdown(rep)
    hcld = find(md_table(md, "Table II"), Type="HCLD", Model="CNN")
    assert (hcld["paper"], hcld["Δ"]) == ("75.52", "-5.52")
    assert find(md_table(md, "Table I:"), Model="LGFA")["WA (%)"] == "73.29"
    assert "Paper: IEMOCAP only" not in md
    assert ("NOT the paper's setting" in md.split("## Protocol")[0]) == (corpus != "iemocap")


def test_a_grid_on_two_corpora_compares_only_the_iemocap_setting(tmp_path):
    rows = f1_rows() + [{**r, "trial_id": r["trial_id"] + "-c"} for r in f1_rows(corpus="crema-d")]
    rep = R.build_report(write(tmp_path, rows), "g")
    md = render_markdown(rep)
    assert len(rep.settings) == 2
    iemocap = next(s for s in rep.settings if "corpus=iemocap" in s)
    crema = next(s for s in rep.settings if "corpus=crema-d" in s)
    assert find(setting_table(md, "Table II", iemocap), Type="HCLD", Model="CNN")["paper"] == "75.52"
    other = setting_table(md, "Table II", crema)
    assert "paper" not in other[0] and find(other, Type="HCLD", Model="CNN")[F1] == "65.00 ± 4.08"
    t1 = md_table(md, "Table I:")
    assert find(t1, Model="LGFA")["WA (%)"] == "73.29"
    assert find(t1, Model=f"HCLD-CNN (ours, {iemocap})")["Δ WA vs paper"] == "-5.52"
    assert find(t1, Model=f"HCLD-CNN (ours, {crema})")["Δ WA vs paper"] == ""
    assert f"none is shown beside setting(s) `{crema}` (corpus crema-d)" in md


def test_which_corpora_are_compared_with_the_paper():
    assert paper.compares_with_paper("iemocap") and paper.compares_with_paper("synthetic(seed=0,n=64)")
    assert not any(paper.compares_with_paper(c) for c in ("crema-d", "manifest", "emodb", None))


def test_table2_metrics_come_from_hcld_metrics_and_name_f1_once():
    assert tables.TABLE2_METRICS == ("emo_wa", "emo_ua", EMOTION_F1, "spk_wa", "spk_ua")
    package = Path(tables.__file__).parent
    assert not [p for p in package.rglob("*.py") if f'"{EMOTION_F1}"' in p.read_text()]  # one home: hcld.metrics


def test_iemocap_with_another_label_set_is_not_compared_with_the_paper(tmp_path):
    # --label-map fru=fru on IEMOCAP keeps a fifth class: another task than the paper's four.
    rows = [{**r, "emotions": "ang,fru,hap,neu,sad"} for r in f1_rows()]
    md = render_markdown(R.build_report(write(tmp_path, rows), "g"))
    assert "paper" not in md_table(md, "Table II")[0]
    assert "none is shown beside this grid (corpus iemocap; classes ang,fru,hap,neu,sad)" in md
    # the paper's four in another order are still the paper's task
    rows = [{**r, "emotions": "sad,neu,hap,ang"} for r in f1_rows()]
    md = render_markdown(R.build_report(write(tmp_path, rows), "g"))
    assert find(md_table(md, "Table II"), Type="HCLD", Model="CNN")["paper"] == "75.52"
    assert paper.compares_with_paper("iemocap", None)  # rows from before they named their classes
