"""The report's tables and statistics, from one outcome per trial with its `setting` label.

Every table is computed per setting (the labels in `settings`, see grid.report.settings)
and never pools two settings. Numbers are percent; cells are mean ± sample std (ddof=1) over the
finished folds; NaN metrics are left out of a mean and counted in `<metric>_n`.
"""

from __future__ import annotations

import polars as pl

from grid.plan import GRIDS
from grid.report import paper
from grid.report.stats import PairedTest, paired_test
from hcld.data.folds import N_FOLDS
from hcld.metrics import ACCURACIES, PROBES

SIGNIFICANCE_PAIRS: tuple[tuple[str, str], ...] = (("hcld", "emo_only"), ("hcld", "orth"))
SIGNIFICANCE_METRICS: tuple[str, ...] = tuple(m for m in ACCURACIES if m.startswith("emo_"))  # emo_wa, emo_ua


def _cells(df: pl.DataFrame, settings: list[str], grid: str) -> pl.DataFrame:
    """All (setting, variant, backbone) rows to show: the paper's cells first (those of the
    variants the named grid runs: `readings` has no wo.SupCon rows to miss), then ours-only ones."""
    spec = GRIDS.get(grid)
    variants = [v for v in paper.PAPER_VARIANTS if spec is None or v in spec.variants]
    rows = []
    for s in settings:
        seen = df.filter(pl.col("setting") == s).select("variant", "row_backbone").unique()
        seen_pairs = set(zip(seen["variant"].to_list(), seen["row_backbone"].to_list()))
        order = [(v, b) for v in variants for b in paper.PAPER_BACKBONES]
        extra = sorted(seen_pairs - set(order))
        for rank, (v, b) in enumerate(order + extra):
            rows.append({"setting": s, "variant": v, "backbone": b, "rank": rank})
    return pl.DataFrame(
        rows, schema={"setting": pl.String, "variant": pl.String, "backbone": pl.String, "rank": pl.Int64}
    )


def spec_folds(grid: str) -> tuple[int, ...] | None:
    """The folds a named grid runs when it does not run all of them (e.g. `smoke`: fold 0 only)."""
    spec = GRIDS.get(grid)
    return spec.folds if spec is not None else None


def _expected_folds(df: pl.DataFrame, grid: str) -> pl.DataFrame:
    """Folds each setting should have: the grid's fold list, else the scheme's count (as
    hcld.data.folds makes them); never fewer than the folds actually seen (so a cell is never more
    than complete)."""
    per = df.group_by("setting").agg(pl.col("fold_scheme").first(), seen=pl.col("fold").n_unique())
    folds = spec_folds(grid)
    if folds is not None:
        known = pl.lit(len(folds), dtype=pl.Int64)
    else:
        known = pl.col("fold_scheme").replace_strict(N_FOLDS, default=0, return_dtype=pl.Int64)
    return per.select("setting", n_expected=pl.max_horizontal(known, pl.col("seen").cast(pl.Int64)))


def _aggregate(df: pl.DataFrame, columns: tuple[str, ...]) -> pl.DataFrame:
    """Mean, sample std (ddof=1) and count of defined values per cell, in percent."""
    done = df.filter(pl.col("status") == "done")
    aggs = [pl.len().alias("n_done")]
    for c in columns:
        aggs += [
            (pl.col(c).mean() * 100).alias(f"{c}_mean"),
            (pl.col(c).std(ddof=1) * 100).alias(f"{c}_std"),
            pl.col(c).count().cast(pl.Int64).alias(f"{c}_n"),
        ]
    return done.group_by("setting", "variant", pl.col("row_backbone").alias("backbone")).agg(aggs)


def ablation_table(df: pl.DataFrame, settings: list[str], grid: str) -> pl.DataFrame:
    """Table II: every paper cell (and ours-only cells), our mean ± std, the paper's value, Δ."""
    cells = _cells(df, settings, grid)
    stats = _aggregate(df, ACCURACIES)
    failed = (
        df.filter(pl.col("status") == "failed")
        .group_by("setting", "variant", pl.col("row_backbone").alias("backbone"))
        .agg(n_failed=pl.len())
    )
    table = (
        cells.join(_expected_folds(df, grid), on="setting", how="left")
        .join(stats, on=["setting", "variant", "backbone"], how="left")
        .join(failed, on=["setting", "variant", "backbone"], how="left")
        .with_columns(pl.col("n_done", "n_failed").fill_null(0).cast(pl.Int64))
        .with_columns(n_missing=pl.max_horizontal(pl.col("n_expected") - pl.col("n_done") - pl.col("n_failed"), 0))
    )
    paper_cols = {f"{m}_paper": [] for m in ACCURACIES}
    in_paper, types, models = [], [], []
    for v, b in zip(table["variant"].to_list(), table["backbone"].to_list()):
        row = paper.ablation_row(v, b)
        in_paper.append(row is not None)
        types.append(paper.VARIANT_LABELS.get(v, f"{v} (ours only)"))
        models.append(paper.BACKBONE_LABELS.get(b, b))
        for m in ACCURACIES:
            paper_cols[f"{m}_paper"].append(getattr(row, m) if row else None)
    table = table.with_columns(
        pl.Series("type", types, dtype=pl.String),
        pl.Series("model", models, dtype=pl.String),
        pl.Series("in_paper", in_paper, dtype=pl.Boolean),
        *(pl.Series(k, v, dtype=pl.Float64) for k, v in paper_cols.items()),
    ).with_columns(*((pl.col(f"{m}_mean") - pl.col(f"{m}_paper")).alias(f"{m}_diff") for m in ACCURACIES))
    order = ["setting", "type", "model", "variant", "backbone", "in_paper", "n_expected", "n_done", "n_failed",
             "n_missing"]
    for m in ACCURACIES:
        order += [f"{m}_mean", f"{m}_std", f"{m}_n", f"{m}_paper", f"{m}_diff"]
    return table.sort("setting", "rank").select(order)


def comparison_table(table2: pl.DataFrame, settings: list[str]) -> pl.DataFrame:
    """Table I: quoted baselines, the paper's HCLD rows and ours (emotion WA/UA)."""
    rows = []
    for r in paper.TABLE_I:
        if r.backbone is None:
            rows.append(dict(setting="", model=r.model, ref=r.ref, source=f"quoted, not re-run ({r.citation})",
                             backbone=None, wa=r.wa, ua=r.ua))
    for r in paper.TABLE_I:
        if r.backbone is None:
            continue
        rows.append(dict(setting="", model=r.model, ref="", source="paper, Table I", backbone=r.backbone,
                         wa=r.wa, ua=r.ua))
        for s in settings:
            ours = table2.filter((pl.col("setting") == s) & (pl.col("variant") == "hcld")
                                 & (pl.col("backbone") == r.backbone)).row(0, named=True)
            label = f"{r.model} (ours)" if len(settings) == 1 else f"{r.model} (ours, {s})"
            rows.append(dict(
                setting=s, model=label, ref="", source=f"this run, {ours['n_done']}/{ours['n_expected']} folds",
                backbone=r.backbone, wa=ours["emo_wa_mean"], ua=ours["emo_ua_mean"], wa_std=ours["emo_wa_std"],
                ua_std=ours["emo_ua_std"], wa_n=ours["emo_wa_n"], ua_n=ours["emo_ua_n"],
                n_done=ours["n_done"], n_expected=ours["n_expected"],
                wa_diff=ours["emo_wa_diff"], ua_diff=ours["emo_ua_diff"], ours=True,
            ))
    schema = {"setting": pl.String, "model": pl.String, "ref": pl.String, "source": pl.String,
              "backbone": pl.String, "ours": pl.Boolean, "wa": pl.Float64, "wa_std": pl.Float64,
              "ua": pl.Float64, "ua_std": pl.Float64, "wa_n": pl.Int64, "ua_n": pl.Int64,
              "n_done": pl.Int64, "n_expected": pl.Int64,
              "wa_diff": pl.Float64, "ua_diff": pl.Float64}
    return pl.DataFrame([{k: row.get(k, False if k == "ours" else None) for k in schema} for row in rows],
                        schema=schema)


def fold_means(df: pl.DataFrame, metrics: tuple[str, ...]) -> pl.DataFrame:
    """Done trials' metrics per (setting, variant, row_backbone, fold): the unit a paired test pairs
    on (a fold that ran twice counts once, as its mean). Sorted: group_by's row order varies from run
    to run, and a mean over these rows in another order differs in the last bits (committed report
    CSVs would churn on every regeneration)."""
    keys = ("setting", "variant", "row_backbone", "fold")
    return df.filter(pl.col("status") == "done").group_by(*keys).agg(*(pl.col(m).mean() for m in metrics)).sort(*keys)


def pair_on_fold(per_fold: pl.DataFrame, setting: str, backbone: str, a: str, b: str) -> pl.DataFrame | None:
    """Folds where variants a and b both finished, a's metrics beside b's (suffix `_b`), by fold;
    None when neither ran."""
    in_cell = per_fold.filter((pl.col("setting") == setting) & (pl.col("row_backbone") == backbone))
    side_a = in_cell.filter(pl.col("variant") == a)
    side_b = in_cell.filter(pl.col("variant") == b)
    if side_a.is_empty() and side_b.is_empty():
        return None
    return side_a.join(side_b, on="fold", suffix="_b").sort("fold")


def paired_percent(pairs: pl.DataFrame, metric: str) -> PairedTest:
    """grid.report.stats.paired_test of a's `metric` against b's (`metric`_b), in percent."""
    return paired_test(*(pairs[c].fill_null(float("nan")).to_numpy() * 100 for c in (metric, f"{metric}_b")))


def backbones_of(df: pl.DataFrame) -> list[str]:
    """The paper's backbones in its order, then any other row_backbone seen (e.g. cnn+lstm)."""
    return list(paper.PAPER_BACKBONES) + sorted(set(df["row_backbone"].to_list()) - set(paper.PAPER_BACKBONES))


def significance_table(df: pl.DataFrame, settings: list[str]) -> pl.DataFrame:
    """HCLD vs emo_only / orth per backbone, paired on fold (fold means if a fold ran twice)."""
    per_fold = fold_means(df, SIGNIFICANCE_METRICS)
    rows = []
    for s in settings:
        for b in backbones_of(per_fold.filter(pl.col("setting") == s)):
            for a_name, b_name in SIGNIFICANCE_PAIRS:
                pairs = pair_on_fold(per_fold, s, b, a_name, b_name)
                if pairs is None:
                    continue
                for m in SIGNIFICANCE_METRICS:
                    t = paired_percent(pairs, m)
                    rows.append({"setting": s, "backbone": b, "comparison": f"{a_name} vs {b_name}", "metric": m,
                                 "folds": ",".join(str(f) for f in pairs["fold"].to_list()), **t.to_dict()})
    schema = {"setting": pl.String, "backbone": pl.String, "comparison": pl.String, "metric": pl.String,
              "folds": pl.String, "n": pl.Int64, "mean_a": pl.Float64, "mean_b": pl.Float64,
              "mean_diff": pl.Float64, "sd_diff": pl.Float64, "cohen_dz": pl.Float64, "t_stat": pl.Float64,
              "t_p": pl.Float64, "wilcoxon_stat": pl.Float64, "wilcoxon_p": pl.Float64, "note": pl.String}
    return pl.DataFrame(rows, schema=schema)


def probe_table(df: pl.DataFrame, table2: pl.DataFrame) -> pl.DataFrame:
    """Decoupling probes: speaker accuracy of a linear probe on X_e (lower = more decoupled), etc."""
    stats = _aggregate(df, PROBES)
    return (
        table2.select("setting", "type", "model", "variant", "backbone", "n_expected")
        .join(stats, on=["setting", "variant", "backbone"], how="left")
        .with_columns(pl.col("n_done").fill_null(0).cast(pl.Int64))
    )
