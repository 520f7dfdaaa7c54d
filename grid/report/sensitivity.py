"""The sensitivity table: does HCLD help under each reading (setting) of the paper, per backbone?

One row per setting and backbone: HCLD's emotion UA minus that of each control (EMO-only, the
multi-task model without a decoupling term, orth), paired on fold (each fold the mean of its
seeds) with the tests of grid.report.stats (corrected resampled t as the headline, Holm within the
table's FAMILIES, the Bayesian correlated t with a ROPE, the plain t labelled), and the speaker
probe on X_e of HCLD and of EMO-only with their paired difference (lower = less speaker
information in the emotion embedding: what decoupling is for).
"""

from __future__ import annotations

import polars as pl

from grid.report import paper
from grid.report.cells import Rows, comparison_cells, comparison_headers, fmt_num
from grid.report.stats import DEFAULT_ROPE
from grid.report.tables import (
    COMPARISON_SCHEMA,
    Family,
    adjust_families,
    backbones_of,
    compare,
    drop_unreachable_wilcoxon,
    fold_means,
    pair_on_fold,
    wilcoxon_dropped,
)

CONTROLS: tuple[str, ...] = ("emo_only", "multitask", "orth")
CONTROL_TITLES = {"emo_only": "EMO-only", "multitask": "multitask", "orth": "orth"}
GAIN = "emo_ua"  # of hcld.metrics.ACCURACIES: what HCLD is said to improve
PROBE = "probe_spk_from_xe"  # of hcld.metrics.PROBES: what decoupling is for


# The columns of one comparison in this table (grid.report.tables.compare), each suffixed with
# `_<control>` for the UA gains and `_probe` for the probe difference.
COMPARED = ("n", "mean_diff", "sd_diff", "seed_sd_a", "seed_sd_b", "p_corr", "p_holm", "p_better", "p_equiv",
            "p_worse", "p_plain_t", "p_wilcoxon", "test_train_ratio", "ratio_source")
FAMILIES: tuple[Family, ...] = (
    Family("the emotion-UA gain of HCLD over every control, in every setting and backbone of the table",
           columns=tuple((f"p_corr_{c}", f"p_holm_{c}") for c in CONTROLS)),
    Family("the speaker-probe differences (HCLD - EMO-only), in every setting and backbone",
           columns=(("p_corr_probe", "p_holm_probe"),)),
)


def _compared(pairs, metric: str, suffix: str, rope: float) -> dict:
    result = compare(pairs, metric, rope) if pairs is not None else {"n": 0}
    return {f"{k}_{suffix}": result.get(k) for k in COMPARED}


def sensitivity_table(df: pl.DataFrame, settings: list[str], rope: float = DEFAULT_ROPE) -> pl.DataFrame:
    per_fold = fold_means(df, (GAIN, PROBE))
    rows = []
    for s in settings:
        in_setting = per_fold.filter(pl.col("setting") == s)
        with_hcld = set(in_setting.filter(pl.col("variant") == "hcld")["row_backbone"].to_list())
        for b in [b for b in backbones_of(in_setting) if b in with_hcld]:
            row: dict = {"setting": s, "backbone": b, "rope": rope}
            for control in CONTROLS:
                row |= _compared(pair_on_fold(per_fold, s, b, "hcld", control), GAIN, control, rope)
            for variant in ("hcld", "emo_only"):
                cell = in_setting.filter((pl.col("row_backbone") == b) & (pl.col("variant") == variant))
                row[f"probe_{variant}"] = cell[PROBE].mean() * 100 if cell[PROBE].count() else None
            row |= _compared(pair_on_fold(per_fold, s, b, "hcld", "emo_only"), PROBE, "probe", rope)
            rows.append(row)
    schema = {"setting": pl.String, "backbone": pl.String, "rope": pl.Float64}
    for suffix in (*CONTROLS, "probe"):
        if suffix == "probe":
            schema |= {"probe_hcld": pl.Float64, "probe_emo_only": pl.Float64}
        schema |= {f"{k}_{suffix}": COMPARISON_SCHEMA[k] for k in COMPARED}
    table = adjust_families(pl.DataFrame(rows, schema=schema), FAMILIES)
    return drop_unreachable_wilcoxon(table, [f"n_{s}" for s in (*CONTROLS, "probe")])


def sensitivity_rows(t: pl.DataFrame) -> Rows:
    rope = t["rope"][0] if t.height else DEFAULT_ROPE
    wilcoxon = not wilcoxon_dropped(t)
    headers = ["Setting", "Backbone"]
    for control in CONTROLS:
        headers += comparison_headers(f"HCLD − {CONTROL_TITLES[control]} UA", rope, wilcoxon, effect_size=False)
    headers += ["spk probe on X_e: HCLD (%)", "EMO-only (%)"]
    headers += comparison_headers("probe Δ", rope, wilcoxon, effect_size=False)
    full = max((n for c in CONTROLS for n in t[f"n_{c}"].to_list()), default=0)
    short = distinguishing_parts(t["setting"].unique(maintain_order=True).to_list())
    rows = []
    for r in t.iter_rows(named=True):
        row = [short[r["setting"]], paper.BACKBONE_LABELS.get(r["backbone"], r["backbone"])]
        for control in CONTROLS:
            row += comparison_cells(r, lambda k: f"{k}_{control}", wilcoxon, effect_size=False, full=full)
        row += [fmt_num(r["probe_hcld"]), fmt_num(r["probe_emo_only"])]
        row += comparison_cells(r, lambda k: f"{k}_probe", wilcoxon, effect_size=False)
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
