"""Table cells as text: the markers for absent numbers and one row formatter per table.

Every renderer (Markdown, LaTeX, HTML) shows these strings, so a cell reads the same everywhere.
A row formatter takes a section's frame and returns (headers, rows of strings).
"""

from __future__ import annotations

import math

import polars as pl

from grid.report import paper
from grid.report.stats import DEFAULT_ROPE
from grid.report.tables import TABLE2_METRICS
from hcld.metrics import ACCURACIES, EMOTION_F1, PROBES

MISSING = "—"  # no finished fold for this cell, or none recorded the metric (a table older than it)
NOT_REPORTED = "-"  # the paper prints "-", or reports no such metric
UNDEFINED = "n/a"  # finished, but the metric is undefined (NaN) or a std of one value
ONE_SEED = "1 seed"  # a seed spread where every fold ran one seed
MARKERS_LEGEND = (f"`{MISSING}` no finished fold (or none that recorded the metric: trials older than it), "
                  f"`{NOT_REPORTED}` not reported by the paper, `{UNDEFINED}` "
                  f"undefined (NaN metric, or std of a single fold), `{ONE_SEED}` no seed spread (one seed per "
                  "fold); [n=k]: metric defined on k folds only")
# "emo_wa" -> "Emo WA", ... for every accuracy of hcld.metrics; the emotion head's macro-F1
METRIC_TITLES = {m: f"{task.capitalize()} {kind.upper()}" for m in ACCURACIES for task, kind in [m.split("_")]}
METRIC_TITLES[EMOTION_F1] = "Emo macro-F1"

Rows = tuple[list[str], list[list[str]]]


def _is_num(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def fmt_cell(mean, std, n, n_done, recorded=None) -> str:
    """mean ± std [n=k]; `recorded`: the finished folds that recorded the metric (None: all)."""
    if n_done == 0 or recorded == 0:
        return MISSING
    if not n:
        return UNDEFINED
    text = f"{mean:.2f} ± {std:.2f}" if _is_num(std) else f"{mean:.2f} ± {UNDEFINED}"
    return text + (f" [n={n}]" if n < n_done else "")


def fmt_paper(value, in_paper: bool) -> str:
    if not in_paper:
        return ""
    return f"{value:.2f}" if _is_num(value) else NOT_REPORTED


def fmt_diff(diff, paper_value, in_paper: bool, mean) -> str:
    if not in_paper:
        return ""
    if not _is_num(paper_value):
        return NOT_REPORTED
    if not _is_num(mean):
        return MISSING
    return f"{diff:+.2f}"


def fmt_p(p) -> str:
    if not _is_num(p):
        return MISSING
    return f"{p:.3g}" if p >= 1e-4 else f"{p:.1e}"


def fmt_num(x, spec: str = "{:.2f}", absent: str = MISSING) -> str:
    return spec.format(x) if _is_num(x) else absent


def fmt_seeds(low, high) -> str:
    """Seeds per finished fold of a cell: '3', or '2–3' when folds ran different numbers."""
    if low is None:
        return MISSING
    return str(low) if low == high else f"{low}–{high}"


def fmt_seed_sd(*spreads) -> str:
    """One or more seed spreads ('0.41', or '0.41 / 0.37' for A / B); ONE_SEED where none has one."""
    if not any(_is_num(x) for x in spreads):
        return ONE_SEED
    return " / ".join(fmt_num(x, absent=ONE_SEED) for x in spreads)


def table2_rows(t: pl.DataFrame) -> Rows:
    """Table II; the paper and Δ columns only when some row's setting is on the paper's corpus
    (`paper_corpus`): the paper reports IEMOCAP only."""
    with_paper = bool(t.height) and any(t["paper_corpus"].to_list())
    headers = ["Type", "Model", "done/exp", "failed", "missing", "seeds/fold"]
    for m in TABLE2_METRICS:
        headers += [f"{METRIC_TITLES[m]} (ours)", "seed sd"] + (["paper", "Δ"] if with_paper else [])
    rows = []
    for r in t.iter_rows(named=True):
        row = [r["type"], r["model"], f"{r['n_done']}/{r['n_expected']}", str(r["n_failed"]), str(r["n_missing"]),
               fmt_seeds(r["n_seeds_min"], r["n_seeds_max"])]
        compared = r["in_paper"] and r["paper_corpus"]
        for m in TABLE2_METRICS:
            row += [
                fmt_cell(r[f"{m}_mean"], r[f"{m}_std"], r[f"{m}_n"], r["n_done"], r[f"{m}_recorded"]),
                fmt_seed_sd(r[f"{m}_seed_sd"]) if r["n_done"] and r[f"{m}_recorded"] != 0 else MISSING,
            ]
            if with_paper:
                row += [fmt_paper(r[f"{m}_paper"], compared),
                        fmt_diff(r[f"{m}_diff"], r[f"{m}_paper"], compared, r[f"{m}_mean"])]
        rows.append(row)
    return headers, rows


def table1_rows(t: pl.DataFrame) -> Rows:
    """Table I; the Δ columns only when it holds the paper's rows (some setting on its corpus)."""
    with_paper = not t.filter(~pl.col("ours")).is_empty()
    headers = ["Model", "Ref", "Source", "WA (%)", "UA (%)"] + (["Δ WA vs paper", "Δ UA vs paper"] if with_paper
                                                               else [])
    rows = []
    for r in t.iter_rows(named=True):
        if r["ours"]:
            wa = fmt_cell(r["wa"], r["wa_std"], r["wa_n"], r["n_done"])
            ua = fmt_cell(r["ua"], r["ua_std"], r["ua_n"], r["n_done"])
            dwa, dua = ((fmt_num(r["wa_diff"], "{:+.2f}"), fmt_num(r["ua_diff"], "{:+.2f}")) if r["paper_corpus"]
                        else ("", ""))
        else:
            wa, ua = fmt_num(r["wa"], absent=NOT_REPORTED), fmt_num(r["ua"], absent=NOT_REPORTED)
            dwa = dua = ""
        rows.append([r["model"], r["ref"], r["source"], wa, ua] + ([dwa, dua] if with_paper else []))
    return headers, rows


def comparison_headers(label: str, rope: float, wilcoxon: bool, *, effect_size: bool = True) -> list[str]:
    """Headers of one paired comparison's cells (`comparison_cells`); each p column names its test."""
    r = f"{rope:g} pp"
    return ([f"{label} (pp)", "fold sd Δ", "seed sd A / B", "p corrected t (Nadeau–Bengio)",
             "p Holm (corrected t)", f"Bayes P(Δ > {r})", f"Bayes P(|Δ| ≤ {r})", f"Bayes P(Δ < −{r})",
             "p plain t (anti-conservative)"] + (["d_z"] if effect_size else [])
            + (["p Wilcoxon"] if wilcoxon else []))


def comparison_cells(r: dict, key=lambda name: name, wilcoxon: bool = False, *, effect_size: bool = True,
                     full: int | None = None) -> list[str]:
    """One paired comparison (grid.report.tables.compare) of row r as cells; `key` maps a column of
    the comparison to the row's name for it (e.g. 'p_corr' -> 'p_corr_orth'). Δ says on how many
    folds it rests when that is fewer than `full`."""
    c = lambda name: r[key(name)]  # noqa: E731
    n = c("n")
    if not n:
        diff = MISSING
    else:
        diff = fmt_num(c("mean_diff"), "{:+.2f}") + (f" [n={n}]" if full and n < full else "")
    cells = [diff, fmt_num(c("sd_diff")), fmt_seed_sd(c("seed_sd_a"), c("seed_sd_b")) if n else MISSING,
             fmt_p(c("p_corr")), fmt_p(c("p_holm")),
             *(fmt_num(c(p), "{:.3f}") for p in ("p_better", "p_equiv", "p_worse")), fmt_p(c("p_plain_t"))]
    if effect_size:
        cells.append(fmt_num(c("cohen_dz")))
    if wilcoxon:
        cells.append(fmt_p(c("p_wilcoxon")))
    return cells


def fmt_interval(point: float | None, low: float | None, high: float | None, *, applies: bool) -> str:
    """'-7.40 [-9.12, -5.61]'; NOT_REPORTED where the interval is not made for this row, MISSING
    where it is but the predictions it needs are not stored."""
    if not applies:
        return NOT_REPORTED
    if point is None or low is None or high is None:
        return MISSING
    return f"{point:+.2f} [{low:+.2f}, {high:+.2f}]"


def significance_rows(t: pl.DataFrame) -> Rows:
    rope = t["rope"][0] if t.height else DEFAULT_ROPE
    wilcoxon = "p_wilcoxon" in t.columns
    headers = (["Backbone", "Comparison", "Metric", "n pairs", "mean A", "mean B"]
               + comparison_headers("mean Δ", rope, wilcoxon) + ["bootstrap 95% CI of pooled ΔUA (pp)", "note"])
    rows = []
    for r in t.iter_rows(named=True):
        rows.append([
            paper.BACKBONE_LABELS.get(r["backbone"], r["backbone"]), r["comparison"], METRIC_TITLES[r["metric"]],
            str(r["n"]), fmt_num(r["mean_a"]), fmt_num(r["mean_b"]), *comparison_cells(r, wilcoxon=wilcoxon),
            fmt_interval(r.get("boot_diff"), r.get("boot_low"), r.get("boot_high"), applies=r["metric"] == "emo_ua"),
            r["note"],
        ])
    return headers, rows


def probe_rows(t: pl.DataFrame) -> Rows:
    headers = ["Type", "Model", "done/exp", "speaker probe on X_e (%)", "emotion probe on X_s (%)"]
    rows = []
    for r in t.iter_rows(named=True):
        rows.append([r["type"], r["model"], f"{r['n_done']}/{r['n_expected']}"] + [
            fmt_cell(r[f"{p}_mean"], r[f"{p}_std"], r[f"{p}_n"], r["n_done"], r[f"{p}_recorded"]) for p in PROBES])
    return headers, rows
