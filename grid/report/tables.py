"""The report's tables and statistics, from one outcome per trial with its `setting` label.

Every table is computed per setting (the labels in `settings`, see grid.report.settings)
and never pools two settings. Numbers are percent; cells are mean ± sample std (ddof=1) over the
finished folds; NaN metrics are left out of a mean and counted in `<metric>_n`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import polars.selectors as cs

from grid.plan import GRIDS
from grid.report import paper
from grid.report.load import recorded
from grid.report.stats import (
    DEFAULT_ROPE,
    WILCOXON_ZEROS,
    FoldPredictions,
    holm,
    paired_bootstrap_ua,
    paired_test,
    wilcoxon_can_reach,
)
from hcld.data.folds import N_FOLDS
from hcld.labels import EMOTIONS
from hcld.metrics import ACCURACIES, EMOTION_F1, PROBES

CELL = ("setting", "variant", "row_backbone")  # one row of a table; its folds are the pairs
REPLICATE = "seed"  # trials of one cell and fold that differ in this are replicates, averaged
FOLD_SIZES = ("n_train", "n_test")  # utterances per fold, when the trials table records them
SIGNIFICANCE_PAIRS: tuple[tuple[str, str], ...] = (("hcld", "emo_only"), ("hcld", "orth"))
EMOTION_ACCURACIES: tuple[str, ...] = tuple(m for m in ACCURACIES if m.startswith("emo_"))  # emo_wa, emo_ua
# Tested HCLD vs controls: the emotion accuracies and macro-F1 (EmoBox reports it; the paper does not).
SIGNIFICANCE_METRICS: tuple[str, ...] = (*EMOTION_ACCURACIES, EMOTION_F1)
# Table II's metrics in column order: emotion WA, UA and macro-F1, then the speaker accuracies.
TABLE2_METRICS: tuple[str, ...] = (*SIGNIFICANCE_METRICS, *(m for m in ACCURACIES if m not in EMOTION_ACCURACIES))


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


def _recorded_folds(df: pl.DataFrame, columns: tuple[str, ...]) -> pl.DataFrame:
    """Per cell, `<c>_recorded`: its finished folds where some seed's row recorded metric c
    (grid.report.load.recorded; a frame not read by load_trials: a non-null value)."""
    flags = [(pl.col(recorded(c)) if recorded(c) in df.columns else pl.col(c).is_not_null()).alias(c)
             for c in columns]
    per_fold = df.filter(pl.col("status") == "done").group_by(*CELL, "fold").agg(f.any() for f in flags)
    return per_fold.group_by(*CELL).agg(pl.col(c).sum().cast(pl.Int64).alias(f"{c}_recorded") for c in columns)


def _aggregate(df: pl.DataFrame, columns: tuple[str, ...]) -> pl.DataFrame:
    """Per cell, over its finished folds (each fold the mean of its seeds, `fold_means`): mean,
    sample std (ddof=1) and count of defined values, in percent; the seed spread `<c>_seed_sd`
    (mean over folds of the within-fold std across seeds, null with one seed per fold); the folds
    where the metric was recorded at all (`<c>_recorded`: 0 in a table older than the metric); the
    folds done and the fewest / most seeds a done fold has."""
    aggs = [pl.len().alias("n_done"), pl.col("n_seeds").min().alias("n_seeds_min"),
            pl.col("n_seeds").max().alias("n_seeds_max")]
    for c in columns:
        aggs += [
            (pl.col(c).mean() * 100).alias(f"{c}_mean"),
            (pl.col(c).std(ddof=1) * 100).alias(f"{c}_std"),
            pl.col(c).count().cast(pl.Int64).alias(f"{c}_n"),
            (pl.col(f"{c}_seed_sd").mean() * 100).alias(f"{c}_seed_sd"),
        ]
    stats = fold_means(df, columns).group_by(*CELL, maintain_order=True).agg(aggs)
    return stats.join(_recorded_folds(df, columns), on=list(CELL), how="left",
                      maintain_order="left").rename({"row_backbone": "backbone"})


def _failed_folds(df: pl.DataFrame) -> pl.DataFrame:
    """Per cell, the folds that have a failed trial and no finished one (a fold where one seed
    failed and another finished is done)."""
    fold = (*CELL, "fold")
    done = df.filter(pl.col("status") == "done").select(fold).unique()
    return (df.filter(pl.col("status") == "failed").select(fold).unique().join(done, on=fold, how="anti")
            .group_by(*CELL).agg(n_failed=pl.len()).rename({"row_backbone": "backbone"}))


def paper_settings(df: pl.DataFrame, settings: list[str]) -> dict[str, bool]:
    """Per setting, whether its corpus and classes are the paper's (grid.report.paper.compares_with_paper):
    only then are the paper's IEMOCAP numbers shown beside it. A setting never crosses corpora."""
    emotions = pl.col("emotions").drop_nulls().first() if "emotions" in df.columns else pl.lit(None, pl.String)
    seen = {s: (c, e) for s, c, e in df.group_by("setting").agg(pl.col("corpus").first(), emotions).iter_rows()}
    return {s: paper.compares_with_paper(*seen.get(s, (None, None))) for s in settings}


def ablation_table(df: pl.DataFrame, settings: list[str], grid: str) -> pl.DataFrame:
    """Table II: every paper cell (and ours-only cells), our mean ± std, the paper's value, Δ.
    `in_paper`: the paper's Table II has this (variant, backbone) cell; `paper_corpus`: the
    setting's corpus is the paper's, so its numbers are filled in (else null)."""
    cells = _cells(df, settings, grid)
    stats = _aggregate(df, TABLE2_METRICS)
    table = (
        cells.join(_expected_folds(df, grid), on="setting", how="left")
        .join(stats, on=["setting", "variant", "backbone"], how="left")
        .join(_failed_folds(df), on=["setting", "variant", "backbone"], how="left")
        .with_columns(pl.col("n_done", "n_failed").fill_null(0).cast(pl.Int64))
        .with_columns(n_missing=pl.max_horizontal(pl.col("n_expected") - pl.col("n_done") - pl.col("n_failed"), 0))
    )
    compared = paper_settings(df, settings)
    paper_cols = {f"{m}_paper": [] for m in TABLE2_METRICS}
    in_paper, on_corpus, types, models = [], [], [], []
    for s, v, b in zip(table["setting"].to_list(), table["variant"].to_list(), table["backbone"].to_list()):
        row = paper.ablation_row(v, b)
        in_paper.append(row is not None)
        on_corpus.append(compared[s])
        types.append(paper.VARIANT_LABELS.get(v, f"{v} (ours only)"))
        models.append(paper.BACKBONE_LABELS.get(b, b))
        for m in TABLE2_METRICS:
            paper_cols[f"{m}_paper"].append(paper.paper_value(row, m) if compared[s] else None)
    table = table.with_columns(
        pl.Series("type", types, dtype=pl.String),
        pl.Series("model", models, dtype=pl.String),
        pl.Series("in_paper", in_paper, dtype=pl.Boolean),
        pl.Series("paper_corpus", on_corpus, dtype=pl.Boolean),
        *(pl.Series(k, v, dtype=pl.Float64) for k, v in paper_cols.items()),
    ).with_columns(*((pl.col(f"{m}_mean") - pl.col(f"{m}_paper")).alias(f"{m}_diff") for m in TABLE2_METRICS))
    order = ["setting", "type", "model", "variant", "backbone", "in_paper", "paper_corpus", "n_expected", "n_done",
             "n_failed", "n_missing", "n_seeds_min", "n_seeds_max"]
    for m in TABLE2_METRICS:
        order += [f"{m}_mean", f"{m}_std", f"{m}_seed_sd", f"{m}_n", f"{m}_recorded", f"{m}_paper", f"{m}_diff"]
    return table.sort("setting", "rank").select(order)


def comparison_table(table2: pl.DataFrame, settings: list[str]) -> pl.DataFrame:
    """Table I: quoted baselines, the paper's HCLD rows and ours (emotion WA/UA). The quoted and
    paper rows (IEMOCAP numbers) only when some setting is on the paper's corpus; ours with Δ only
    there (`paper_corpus`, from Table II)."""
    compared = dict(table2.select("setting", "paper_corpus").unique().iter_rows())
    any_compared = any(compared.get(s, False) for s in settings)
    rows = []
    for r in paper.TABLE_I:
        if r.backbone is None and any_compared:
            rows.append(dict(setting="", model=r.model, ref=r.ref, source=f"quoted, not re-run ({r.citation})",
                             backbone=None, wa=r.wa, ua=r.ua))
    for r in paper.TABLE_I:
        if r.backbone is None:
            continue
        if any_compared:
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
                paper_corpus=ours["paper_corpus"],
            ))
    schema = {"setting": pl.String, "model": pl.String, "ref": pl.String, "source": pl.String,
              "backbone": pl.String, "ours": pl.Boolean, "paper_corpus": pl.Boolean, "wa": pl.Float64,
              "wa_std": pl.Float64,
              "ua": pl.Float64, "ua_std": pl.Float64, "wa_n": pl.Int64, "ua_n": pl.Int64,
              "n_done": pl.Int64, "n_expected": pl.Int64,
              "wa_diff": pl.Float64, "ua_diff": pl.Float64}
    flags = {"ours": False, "paper_corpus": True}  # a quoted or paper row is the paper's own
    return pl.DataFrame([{k: row.get(k, flags.get(k)) for k in schema} for row in rows], schema=schema)


def fold_means(df: pl.DataFrame, metrics: tuple[str, ...]) -> pl.DataFrame:
    """Done trials per (setting, variant, row_backbone, fold): the unit every fold statistic and
    paired test uses. Seeds are replicates: each metric is the mean over the fold's seeds (a seed
    that ran twice counts once, as its mean), `<metric>_seed_sd` their sample std (ddof=1; null
    with one seed) and `n_seeds` how many there are; `n_train` / `n_test` (when the table has
    them) the fold's sizes and `fold_scheme` its scheme. Sorted: group_by's row order varies from
    run to run, and a mean over these rows in another order differs in the last bits (committed
    report CSVs would churn on every regeneration)."""
    keys = (*CELL, "fold")
    sizes = [c for c in FOLD_SIZES if c in df.columns]
    per_seed = (df.filter(pl.col("status") == "done")
                .group_by(*keys, REPLICATE).agg(*(pl.col(c).mean() for c in (*metrics, *sizes)),
                                                pl.col("fold_scheme").first()).sort(*keys, REPLICATE))
    return per_seed.group_by(*keys, maintain_order=True).agg(
        pl.len().alias("n_seeds"), pl.col("fold_scheme").first(),
        *(pl.col(c).mean() for c in (*metrics, *sizes)),
        *(pl.col(m).std(ddof=1).alias(f"{m}_seed_sd") for m in metrics),
    )


def pair_on_fold(per_fold: pl.DataFrame, setting: str, backbone: str, a: str, b: str) -> pl.DataFrame | None:
    """Folds where variants a and b both finished, a's metrics beside b's (suffix `_b`), by fold;
    None when neither ran."""
    in_cell = per_fold.filter((pl.col("setting") == setting) & (pl.col("row_backbone") == backbone))
    side_a = in_cell.filter(pl.col("variant") == a)
    side_b = in_cell.filter(pl.col("variant") == b)
    if side_a.is_empty() and side_b.is_empty():
        return None
    return side_a.join(side_b, on="fold", suffix="_b").sort("fold")


def test_train_ratio(pairs: pl.DataFrame) -> tuple[float | None, str]:
    """n_test / n_train for the corrected tests, and where it came from: the mean over the paired
    folds of the folds' own sizes when every paired fold records them, else 1/(k - 1) for the k
    folds of the scheme (hcld.data.folds.N_FOLDS; the folds seen if the scheme is unknown)."""
    if pairs.is_empty():
        return None, ""
    if all(c in pairs.columns for c in FOLD_SIZES) and not pairs.select(FOLD_SIZES).null_count().sum_horizontal()[0]:
        return float((pairs["n_test"] / pairs["n_train"]).mean()), "fold sizes"
    k = N_FOLDS.get(pairs["fold_scheme"][0], pairs.height)
    return 1.0 / (k - 1), f"1/(k-1), k={k}"


def compare(pairs: pl.DataFrame, metric: str, rope: float) -> dict:
    """grid.report.stats.paired_test of a's fold means of `metric` against b's (`metric`_b), in
    percent, with each side's seed spread (mean over the paired folds of the within-fold std
    across seeds; None with one seed) and the test/train ratio the corrected tests used."""
    ratio, source = test_train_ratio(pairs)
    a, b = (pairs[c].fill_null(float("nan")).to_numpy() * 100 for c in (metric, f"{metric}_b"))
    test = paired_test(a, b, test_train_ratio=ratio or 0.0, rope=rope)
    spread = {side: pairs[f"{metric}_seed_sd{suffix}"].mean() for side, suffix in (("a", ""), ("b", "_b"))}
    return {**test.to_dict(), "seed_sd_a": None if spread["a"] is None else spread["a"] * 100,
            "seed_sd_b": None if spread["b"] is None else spread["b"] * 100,
            "test_train_ratio": ratio, "ratio_source": source, "rope": rope}


# What `compare` adds to a row, with its types: the CSV columns of every comparison.
COMPARISON_SCHEMA: dict[str, pl.DataType] = {
    "n": pl.Int64, "mean_a": pl.Float64, "mean_b": pl.Float64, "mean_diff": pl.Float64, "sd_diff": pl.Float64,
    "seed_sd_a": pl.Float64, "seed_sd_b": pl.Float64, "cohen_dz": pl.Float64, "t_corr": pl.Float64,
    "p_corr": pl.Float64, "p_holm": pl.Float64, "p_better": pl.Float64, "p_equiv": pl.Float64,
    "p_worse": pl.Float64, "p_plain_t": pl.Float64, "p_wilcoxon": pl.Float64, "test_train_ratio": pl.Float64,
    "ratio_source": pl.String, "rope": pl.Float64, "note": pl.String,
}


@dataclass(frozen=True)
class Family:
    """One family of comparisons that Holm's correction runs over: the p-values in the `columns`
    (p column, adjusted column) of every row of a table, one family per distinct value of `by`."""

    description: str
    columns: tuple[tuple[str, str], ...]
    by: tuple[str, ...] = ()


def adjust_families(table: pl.DataFrame, families: tuple[Family, ...]) -> pl.DataFrame:
    """The table with each family's Holm-adjusted p columns filled (grid.report.stats.holm)."""
    adjusted: dict[str, list] = {}
    for family in families:
        groups = [tuple(r) for r in table.select(family.by).rows()] if family.by else [()] * table.height
        for name in (out for _, out in family.columns):
            adjusted[name] = [None] * table.height
        for group in dict.fromkeys(groups):
            cells = [(i, p, out) for i in range(table.height) if groups[i] == group
                     for p, out in family.columns]
            for (i, _, out), q in zip(cells, holm([table[p][i] for i, p, _ in cells])):
                adjusted[out][i] = q
    return table.with_columns(pl.Series(name, values, dtype=pl.Float64) for name, values in adjusted.items())


def drop_unreachable_wilcoxon(table: pl.DataFrame, n_columns: list[str]) -> pl.DataFrame:
    """The table without its Wilcoxon p columns (and the notes about them) when no row has enough
    pairs for the test to reach ALPHA (grid.report.stats.min_wilcoxon_p; never with 5 folds)."""
    n_max = max((n for c in n_columns for n in table[c].drop_nulls().to_list()), default=0)
    if wilcoxon_can_reach(n_max):
        return table
    notes = [c for c in table.columns if c == "note"]
    return table.drop(cs.starts_with("p_wilcoxon")).with_columns(
        pl.col(c).replace(WILCOXON_ZEROS, "") for c in notes)


def wilcoxon_dropped(table: pl.DataFrame) -> bool:
    """Whether a comparison table left its Wilcoxon column out (drop_unreachable_wilcoxon)."""
    return any(c.startswith("p_corr") for c in table.columns) and not any(
        c.startswith("p_wilcoxon") for c in table.columns)


def backbones_of(df: pl.DataFrame) -> list[str]:
    """The paper's backbones in its order, then any other row_backbone seen (e.g. cnn+lstm)."""
    return list(paper.PAPER_BACKBONES) + sorted(set(df["row_backbone"].to_list()) - set(paper.PAPER_BACKBONES))


SIGNIFICANCE_FAMILIES: tuple[Family, ...] = (
    Family("per setting and metric: every HCLD-vs-control comparison of the table (backbones x controls)",
           columns=(("p_corr", "p_holm"),), by=("setting", "metric")),
)


BOOTSTRAP_SCHEMA: dict[str, pl.DataType] = {"boot_diff": pl.Float64, "boot_low": pl.Float64,
                                            "boot_high": pl.Float64}


def n_emotions(trials: pl.DataFrame) -> int:
    """The class count of these trials (one corpus): their `emotions`; IEMOCAP's four for rows
    written before the column was."""
    named = [e for e in trials["emotions"].unique().to_list() if e] if "emotions" in trials.columns else []
    if len(named) > 1:
        raise ValueError(f"trials of one setting with different label sets: {named}")
    return len(named[0].split(",")) if named else len(EMOTIONS)


def bootstrap_ua(df: pl.DataFrame, predictions: pl.DataFrame | None, setting: str, backbone: str,
                 a: str, b: str, folds: list[int]) -> dict:
    """The paired bootstrap of ΔUA pooled over `folds` (grid.report.stats.paired_bootstrap_ua)
    from the trials' test predictions, seeds paired by value; nulls when a fold lacks them."""
    empty = dict.fromkeys(BOOTSTRAP_SCHEMA)
    if predictions is None or not folds:
        return empty
    done = df.filter((pl.col("status") == "done") & (pl.col("setting") == setting)
                     & (pl.col("row_backbone") == backbone))
    per_fold = []
    for fold in folds:
        sides = {v: done.filter((pl.col("variant") == v) & (pl.col("fold") == fold)).unique("seed").sort("seed")
                 for v in (a, b)}
        seeds = sorted(set(sides[a]["seed"].to_list()) & set(sides[b]["seed"].to_list()))
        preds = {}
        for v, trials in sides.items():
            ids = trials.filter(pl.col("seed").is_in(seeds))["trial_id"].to_list()
            rows = predictions.filter(pl.col("trial_id").is_in(ids)).sort("utt_id")
            preds[v] = [rows.filter(pl.col("trial_id") == t) for t in ids]
        frames = preds[a] + preds[b]
        if not seeds or any(f.is_empty() for f in frames) or any(
                f["utt_id"].to_list() != frames[0]["utt_id"].to_list() for f in frames):
            return empty  # a missing or mismatched prediction set: no interval rather than a wrong one
        per_fold.append(FoldPredictions(
            true=frames[0]["emotion_true"].to_numpy(),
            pred_a=np.stack([f["emotion_pred"].to_numpy() for f in preds[a]]),
            pred_b=np.stack([f["emotion_pred"].to_numpy() for f in preds[b]])))
    diff, low, high = paired_bootstrap_ua(per_fold, n_emotions(done))
    return {"boot_diff": diff, "boot_low": low, "boot_high": high}


def significance_table(df: pl.DataFrame, settings: list[str], rope: float = DEFAULT_ROPE,
                       predictions: pl.DataFrame | None = None) -> pl.DataFrame:
    """HCLD vs emo_only / orth per backbone, paired on fold (each fold the mean of its seeds); for
    emotion UA also the paired bootstrap interval from the test predictions, when stored."""
    per_fold = fold_means(df, SIGNIFICANCE_METRICS)
    rows = []
    for s in settings:
        for b in backbones_of(per_fold.filter(pl.col("setting") == s)):
            for a_name, b_name in SIGNIFICANCE_PAIRS:
                pairs = pair_on_fold(per_fold, s, b, a_name, b_name)
                if pairs is None:
                    continue
                folds = pairs["fold"].to_list()
                for m in SIGNIFICANCE_METRICS:
                    boot = (bootstrap_ua(df, predictions, s, b, a_name, b_name, folds) if m == "emo_ua"
                            else dict.fromkeys(BOOTSTRAP_SCHEMA))
                    rows.append({"setting": s, "backbone": b, "comparison": f"{a_name} vs {b_name}", "metric": m,
                                 "folds": ",".join(str(f) for f in folds), **compare(pairs, m, rope), **boot})
    schema = {"setting": pl.String, "backbone": pl.String, "comparison": pl.String, "metric": pl.String,
              "folds": pl.String, **COMPARISON_SCHEMA, **BOOTSTRAP_SCHEMA}
    table = adjust_families(pl.DataFrame(rows, schema=schema), SIGNIFICANCE_FAMILIES)
    return drop_unreachable_wilcoxon(table, ["n"])


def probe_table(df: pl.DataFrame, table2: pl.DataFrame) -> pl.DataFrame:
    """Decoupling probes: speaker accuracy of a linear probe on X_e (lower = more decoupled), etc."""
    stats = _aggregate(df, PROBES)
    return (
        table2.select("setting", "type", "model", "variant", "backbone", "n_expected")
        .join(stats, on=["setting", "variant", "backbone"], how="left")
        .with_columns(pl.col("n_done").fill_null(0).cast(pl.Int64))
    )
