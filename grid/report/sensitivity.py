"""The sensitivity table: does HCLD help under each reading (setting) of the paper, per backbone?

One row per setting and backbone: HCLD's emotion UA minus that of each control (EMO-only, the
multi-task model without a decoupling term, orth), paired on fold with a t-test and a Wilcoxon
signed-rank test (grid.report.stats), and the speaker probe on X_e of HCLD and of EMO-only with their
paired difference (lower = less speaker information in the emotion embedding: what decoupling is
for).
"""

from __future__ import annotations

import polars as pl

from grid.report import paper
from grid.report.cells import MISSING, Rows, fmt_num, fmt_p
from grid.report.tables import backbones_of, fold_means, pair_on_fold, paired_percent

CONTROLS: tuple[str, ...] = ("emo_only", "multitask", "orth")
CONTROL_TITLES = {"emo_only": "EMO-only", "multitask": "multitask", "orth": "orth"}
GAIN = "emo_ua"  # of hcld.metrics.ACCURACIES: what HCLD is said to improve
PROBE = "probe_spk_from_xe"  # of hcld.metrics.PROBES: what decoupling is for


def sensitivity_table(df: pl.DataFrame, settings: list[str]) -> pl.DataFrame:
    per_fold = fold_means(df, (GAIN, PROBE))
    rows = []
    for s in settings:
        in_setting = per_fold.filter(pl.col("setting") == s)
        with_hcld = set(in_setting.filter(pl.col("variant") == "hcld")["row_backbone"].to_list())
        for b in [b for b in backbones_of(in_setting) if b in with_hcld]:
            row: dict = {"setting": s, "backbone": b}
            for control in CONTROLS:
                pairs = pair_on_fold(per_fold, s, b, "hcld", control)
                t = paired_percent(pairs, GAIN) if pairs is not None else None
                row |= {f"n_{control}": t.n if t else 0,
                        f"diff_{control}": t.mean_diff if t else None,
                        f"t_p_{control}": t.t_p if t else None,
                        f"wilcoxon_p_{control}": t.wilcoxon_p if t else None}
            for variant in ("hcld", "emo_only"):
                cell = in_setting.filter((pl.col("row_backbone") == b) & (pl.col("variant") == variant))
                row[f"probe_{variant}"] = cell[PROBE].mean() * 100 if cell[PROBE].count() else None
            pairs = pair_on_fold(per_fold, s, b, "hcld", "emo_only")
            probe = paired_percent(pairs, PROBE) if pairs is not None else None
            row |= {"probe_diff": probe.mean_diff if probe else None, "probe_t_p": probe.t_p if probe else None}
            rows.append(row)
    schema = {"setting": pl.String, "backbone": pl.String}
    for control in CONTROLS:
        schema |= {f"n_{control}": pl.Int64, f"diff_{control}": pl.Float64, f"t_p_{control}": pl.Float64,
                   f"wilcoxon_p_{control}": pl.Float64}
    schema |= {"probe_hcld": pl.Float64, "probe_emo_only": pl.Float64, "probe_diff": pl.Float64,
               "probe_t_p": pl.Float64}
    return pl.DataFrame(rows, schema=schema)


def sensitivity_rows(t: pl.DataFrame) -> Rows:
    headers = ["Setting", "Backbone"]
    for control in CONTROLS:
        title = CONTROL_TITLES[control]
        headers += [f"HCLD − {title} UA (pp)", "t p", "Wilcoxon p"]
    headers += ["spk probe on X_e: HCLD (%)", "EMO-only (%)", "Δ (pp)", "t p"]
    full = max((n for c in CONTROLS for n in t[f"n_{c}"].to_list()), default=0)
    short = distinguishing_parts(t["setting"].unique(maintain_order=True).to_list())
    rows = []
    for r in t.iter_rows(named=True):
        row = [short[r["setting"]], paper.BACKBONE_LABELS.get(r["backbone"], r["backbone"])]
        for control in CONTROLS:
            n = r[f"n_{control}"]
            diff = fmt_num(r[f"diff_{control}"], "{:+.2f}") + (f" [n={n}]" if n and n < full else "")
            row += [diff if n else MISSING, fmt_p(r[f"t_p_{control}"]), fmt_p(r[f"wilcoxon_p_{control}"])]
        row += [fmt_num(r["probe_hcld"]), fmt_num(r["probe_emo_only"]), fmt_num(r["probe_diff"], "{:+.2f}"),
                fmt_p(r["probe_t_p"])]
        rows.append(row)
    return headers, rows


def distinguishing_parts(settings: list[str]) -> dict[str, str]:
    """Each setting label without the key=value parts every setting shares (the protocol lists
    those), so a row shows what sets it apart: 'trunk=shared temperature=0.2'."""
    if len(settings) == 1:
        return {settings[0]: "the grid's one setting (see the protocol)"}
    parts = [label.split(" ") for label in settings]
    common = set.intersection(*(set(p) for p in parts))
    return {label: " ".join(x for x in p if x not in common) or label for label, p in zip(settings, parts)}
