"""Turn results/<grid>/trials.parquet into the paper's tables (Polars), with the protocol on top.

Rules the numbers follow (each is tested):
- One outcome per trial_id: its latest "done" row if it has one, else its latest row (a failure).
- Cells are mean ± sample std (ddof=1) over the finished folds, in percent; Δ = ours − paper in
  percentage points. NaN metrics (undefined, e.g. speaker accuracy on unseen speakers) are left out
  of the mean and the cell says on how many folds it rests.
- A cell with no finished fold shows MISSING, never a number; failed and missing folds are counted.
- The paper's "-" stays "-"; its unlabelled stray Table II row is never compared (see grid.paper).
- Runs that differ in corpus, features, folds, epochs, seed or loss_impl are never averaged together:
  each such setting gets its own rows.
"""

from __future__ import annotations

import html
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from grid import paper
from grid.stats import paired_test
from hcld.errors import DataError
from hcld.labels import SESSIONS

METRICS: tuple[str, ...] = ("emo_wa", "emo_ua", "spk_wa", "spk_ua")
PROBES: tuple[str, ...] = ("probe_spk_from_xe", "probe_emo_from_xs")
METRIC_TITLES = {"emo_wa": "Emo WA", "emo_ua": "Emo UA", "spk_wa": "Spk WA", "spk_ua": "Spk UA"}
REQUIRED_COLUMNS: tuple[str, ...] = ("trial_id", "backbone", "variant", "fold", "status", *METRICS)
OPTIONAL_STRINGS: tuple[str, ...] = (
    "grid", "speaker_backbone", "fold_scheme", "features", "corpus", "loss_impl", "error", "device",
    "host", "code_version", "finished_at", "config_json", "artifacts",
)
OPTIONAL_INTS: tuple[str, ...] = ("epochs", "seed", "reported_epoch", "attempts")
OPTIONAL_FLOATS: tuple[str, ...] = (*PROBES, "seconds")
# Trials that differ in any of these are different experiments and are never pooled.
SETTING_FIELDS: tuple[str, ...] = ("corpus", "features", "fold_scheme", "epochs", "seed", "loss_impl")
# Folds a scheme has (as hcld.data.folds makes them); a named grid may run only some (grid.specs).
EXPECTED_FOLDS: dict[str, int] = {"random5": 5, "loso": len(SESSIONS)}
# Config fields that decide how the paper's ambiguous losses were read (docs: paper-notes).
INTERPRETATION_FIELDS: tuple[str, ...] = (
    "icld_negative", "icld_margin", "temperature", "supcon_embedding", "supcon_labels",
    "ensure_positives", "anchor_source", "loss_impl",
)
OPTIMISATION_FIELDS: tuple[str, ...] = ("model_size", "embed_dim", "batch_size", "lr", "warmup_epochs")
SIGNIFICANCE_PAIRS: tuple[tuple[str, str], ...] = (("hcld", "emo_only"), ("hcld", "orth"))
SIGNIFICANCE_METRICS: tuple[str, ...] = ("emo_wa", "emo_ua")

MISSING = "—"  # no finished fold for this cell
NOT_REPORTED = "-"  # the paper prints "-"
UNDEFINED = "n/a"  # finished, but the metric is undefined (NaN) or a std of one value


@dataclass
class Report:
    grid: str
    trials_file: Path
    protocol: list[str]  # Markdown lines
    settings: list[str]
    table2: pl.DataFrame  # numeric, percent
    table1: pl.DataFrame
    significance: pl.DataFrame
    probes: pl.DataFrame
    trials: pl.DataFrame  # one outcome per trial_id (input of the figures)
    notes: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)  # filled by the caller after grid.figures runs

    @property
    def grid_dir(self) -> Path:
        return self.trials_file.parent


# ------------------------------------------------------------------------------------------------
# Loading


def trials_path(results_dir: Path, grid: str) -> Path:
    return Path(results_dir) / grid / "trials.parquet"


def load_trials(path: Path) -> pl.DataFrame:
    """Read and type-check the store; every attempt row is kept (dedupe is `latest_outcomes`)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no trials table at {path}: run `hcld-grid run` for this grid first")
    try:
        df = pl.read_parquet(path)
    except Exception as exc:  # polars raises several types for a broken file
        raise DataError(f"cannot read trials table {path}: {exc}") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"trials table {path} lacks column(s) {missing}")
    for col in OPTIONAL_STRINGS + OPTIONAL_INTS + OPTIONAL_FLOATS:
        if col not in df.columns:
            df = df.with_columns(pl.lit(None).alias(col))
    bad_status = sorted(set(df["status"].drop_nulls().to_list()) - {"done", "failed"})
    if bad_status or df["status"].null_count():
        raise DataError(f"trials table {path}: status must be 'done' or 'failed', found {bad_status or [None]}")
    try:
        df = df.with_columns(
            *(pl.col(c).cast(pl.String) for c in ("trial_id", "backbone", "variant", "status", *OPTIONAL_STRINGS)),
            *(pl.col(c).cast(pl.Int64) for c in ("fold", *OPTIONAL_INTS)),
            # NaN and null both mean "no number": keep one representation.
            *(pl.col(c).cast(pl.Float64).fill_nan(None) for c in (*METRICS, *OPTIONAL_FLOATS)),
        )
    except Exception as exc:
        raise DataError(f"trials table {path}: unexpected column types ({exc})") from exc
    return df


def latest_outcomes(raw: pl.DataFrame) -> pl.DataFrame:
    """One row per trial_id: the latest done row, or the latest failed row if it never finished.

    Adds `failed_attempts` (failed rows seen for the trial) and `attempt_rows` (all rows)."""
    counts = raw.group_by("trial_id").agg(
        attempt_rows=pl.len(), failed_attempts=(pl.col("status") == "failed").sum().cast(pl.Int64)
    )
    chosen = (
        raw.with_columns(_done=pl.col("status") == "done")
        .sort(["trial_id", "_done", "finished_at"], nulls_last=False)
        .unique(subset="trial_id", keep="last", maintain_order=True)
        .drop("_done")
    )
    return chosen.join(counts, on="trial_id", how="left")


def _with_keys(df: pl.DataFrame) -> pl.DataFrame:
    """Add `row_backbone` (cnn, or cnn+lstm for mixed branches) and the `setting` label."""
    mixed = pl.col("speaker_backbone").is_not_null() & (pl.col("speaker_backbone") != pl.col("backbone"))
    row_backbone = pl.when(mixed).then(pl.col("backbone") + "+" + pl.col("speaker_backbone")).otherwise(
        pl.col("backbone")
    )
    setting = pl.concat_str(
        [pl.lit(f"{name}=") + pl.col(name).cast(pl.String).fill_null("?") for name in SETTING_FIELDS],
        separator=" ",
    )
    return df.with_columns(row_backbone=row_backbone, setting=setting)


# ------------------------------------------------------------------------------------------------
# Tables


def _cells(df: pl.DataFrame, settings: list[str]) -> pl.DataFrame:
    """All (setting, variant, backbone) rows to show: the paper's 15 first, then ours-only ones."""
    rows = []
    for s in settings:
        seen = df.filter(pl.col("setting") == s).select("variant", "row_backbone").unique()
        seen_pairs = set(zip(seen["variant"].to_list(), seen["row_backbone"].to_list()))
        order = [(v, b) for v in paper.PAPER_VARIANTS for b in paper.PAPER_BACKBONES]
        extra = sorted(seen_pairs - set(order))
        for rank, (v, b) in enumerate(order + extra):
            rows.append({"setting": s, "variant": v, "backbone": b, "rank": rank})
    return pl.DataFrame(
        rows, schema={"setting": pl.String, "variant": pl.String, "backbone": pl.String, "rank": pl.Int64}
    )


def spec_folds(grid: str) -> tuple[int, ...] | None:
    """The folds a named grid runs when it does not run all of them (e.g. `smoke`: fold 0 only)."""
    from grid.specs import GRIDS

    spec = GRIDS.get(grid)
    return spec.folds if spec is not None else None


def _expected_folds(df: pl.DataFrame, grid: str) -> pl.DataFrame:
    """Folds each setting should have: the grid's fold list, else the scheme's count; never fewer
    than the folds actually seen (so a cell is never more than complete)."""
    per = df.group_by("setting").agg(pl.col("fold_scheme").first(), seen=pl.col("fold").n_unique())
    folds = spec_folds(grid)
    if folds is not None:
        known = pl.lit(len(folds), dtype=pl.Int64)
    else:
        known = pl.col("fold_scheme").replace_strict(EXPECTED_FOLDS, default=0, return_dtype=pl.Int64)
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
    cells = _cells(df, settings)
    stats = _aggregate(df, METRICS)
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
    paper_cols = {f"{m}_paper": [] for m in METRICS}
    in_paper, types, models = [], [], []
    for v, b in zip(table["variant"].to_list(), table["backbone"].to_list()):
        row = paper.ablation_row(v, b)
        in_paper.append(row is not None)
        types.append(paper.VARIANT_LABELS.get(v, f"{v} (ours only)"))
        models.append(paper.BACKBONE_LABELS.get(b, b))
        for m in METRICS:
            paper_cols[f"{m}_paper"].append(getattr(row, m) if row else None)
    table = table.with_columns(
        pl.Series("type", types, dtype=pl.String),
        pl.Series("model", models, dtype=pl.String),
        pl.Series("in_paper", in_paper, dtype=pl.Boolean),
        *(pl.Series(k, v, dtype=pl.Float64) for k, v in paper_cols.items()),
    ).with_columns(*((pl.col(f"{m}_mean") - pl.col(f"{m}_paper")).alias(f"{m}_diff") for m in METRICS))
    order = ["setting", "type", "model", "variant", "backbone", "in_paper", "n_expected", "n_done", "n_failed",
             "n_missing"]
    for m in METRICS:
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


def significance_table(df: pl.DataFrame, settings: list[str]) -> pl.DataFrame:
    """HCLD vs emo_only / orth per backbone, paired on fold (fold means if a fold ran twice)."""
    done = df.filter(pl.col("status") == "done")
    per_fold = done.group_by("setting", "variant", "row_backbone", "fold").agg(
        *(pl.col(m).mean() for m in SIGNIFICANCE_METRICS)
    )
    rows = []
    for s in settings:
        in_s = per_fold.filter(pl.col("setting") == s)
        backbones = [b for b in paper.PAPER_BACKBONES] + sorted(
            set(in_s["row_backbone"].to_list()) - set(paper.PAPER_BACKBONES))
        for b in backbones:
            for a_name, b_name in SIGNIFICANCE_PAIRS:
                side_a = in_s.filter((pl.col("variant") == a_name) & (pl.col("row_backbone") == b))
                side_b = in_s.filter((pl.col("variant") == b_name) & (pl.col("row_backbone") == b))
                if side_a.is_empty() and side_b.is_empty():
                    continue
                pairs = side_a.join(side_b, on="fold", suffix="_b").sort("fold")
                for m in SIGNIFICANCE_METRICS:
                    t = paired_test(pairs[m].fill_null(float("nan")).to_numpy() * 100,
                                    pairs[f"{m}_b"].fill_null(float("nan")).to_numpy() * 100)
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


# ------------------------------------------------------------------------------------------------
# Protocol


def _tally(values) -> str:
    """'a (3), b (1)' of the distinct values, most common first; 'not recorded' if none."""
    counts = Counter("not recorded" if v is None else str(v) for v in values)
    if not counts:
        return "not recorded"
    return ", ".join(f"{v} ({n})" if len(counts) > 1 else v for v, n in counts.most_common())


def _artifact_field(grid_dir: Path, rel: str | None, key: str) -> str | None:
    if not rel:
        return None
    path = grid_dir / rel / "result.json"
    try:
        return str(json.loads(path.read_text())[key])
    except (OSError, ValueError, KeyError):
        return None


def protocol_lines(raw: pl.DataFrame, df: pl.DataFrame, grid: str, trials_file: Path,
                   table2: pl.DataFrame, *, read_artifacts: bool = True) -> list[str]:
    n_done = df.filter(pl.col("status") == "done").height
    n_failed = df.filter(pl.col("status") == "failed").height
    paper_cells = table2.filter(pl.col("in_paper"))
    missing = int(paper_cells["n_missing"].sum())
    retried = df.filter((pl.col("status") == "done") & (pl.col("failed_attempts") > 0)).height
    configs = []
    for text in df["config_json"].to_list():
        try:
            configs.append(json.loads(text) if text else {})
        except ValueError:
            configs.append({})

    def config_tally(name: str) -> str:
        text = _tally(c.get(name) for c in configs)
        return text + (" ⚠ varies across trials" if "," in text and "(" in text else "")

    lines = [f"# HCLD reproduction report: grid `{grid}`", ""]
    corpora = df["corpus"].to_list()
    synthetic = [c for c in set(corpora) if c is None or not c.startswith("iemocap")]
    if synthetic:
        lines += [
            f"> **⚠ CORPUS IS NOT IEMOCAP ({', '.join(sorted(str(c) for c in synthetic))}): NOT the paper's "
            "setting. These numbers test the pipeline; they are not comparable with the paper's.**", ""]
    features = set(df["features"].to_list())
    lines += [
        "## Protocol",
        "",
        f"- Trials table: `{trials_file.name}` ({raw.height} attempt rows, {df.height} trials: {n_done} done, "
        f"{n_failed} failed; {missing} of the paper's variant×backbone×fold cells missing; "
        f"{retried} done trials also have failed attempt rows: each trial counted once, from its latest done row)",
        f"- Data / corpus: {_tally(corpora)} (paper: IEMOCAP, 5531 utterances, 4 emotions, 10 speakers)",
        f"- Features: {_tally(df['features'].to_list())}"
        + ("" if features == {"hubert"} else " (paper: HuBERT-base, LibriSpeech 960 h)"),
        f"- Fold scheme: {_tally(df['fold_scheme'].to_list())}; folds seen: "
        f"{sorted(set(df['fold'].drop_nulls().to_list()))}; expected folds per cell: "
        f"{_tally(table2.unique('setting')['n_expected'].to_list())}"
        + (f" (grid `{grid}` runs folds {list(spec_folds(grid))})" if spec_folds(grid) is not None else "")
        + " (paper: random 80/20, five folds)",
        f"- Epochs: {_tally(df['epochs'].to_list())} (paper: 100); seeds: {_tally(df['seed'].to_list())}",
        "- Optimisation: " + "; ".join(f"{k} {config_tally(k)}" for k in OPTIMISATION_FIELDS),
        "- Loss interpretation (config_json): "
        + "; ".join(f"{k} {config_tally(k)}" for k in INTERPRETATION_FIELDS),
    ]
    if read_artifacts and n_done == 0:
        lines.append("- As run (result.json): no done trials")
    elif read_artifacts:
        done = df.filter(pl.col("status") == "done")
        grid_dir = trials_file.parent
        actual = {key: [_artifact_field(grid_dir, rel, key) for rel in done["artifacts"].to_list()]
                  for key in ("anchor_source", "loss_impl")}
        lines.append("- As run (result.json of done trials): anchor_source "
                     f"{_tally(actual['anchor_source'])}; loss_impl {_tally(actual['loss_impl'])}")
    lines += [
        f"- Devices: {_tally(df['device'].to_list())}",
        f"- Code versions: {_tally(df['code_version'].to_list())}",
        f"- Finished: {df['finished_at'].min() or 'not recorded'} … {df['finished_at'].max() or 'not recorded'}",
        "- Numbers: percent; mean ± sample std (ddof=1) over finished folds; Δ = ours − paper in "
        f"percentage points; `{MISSING}` no finished fold, `{NOT_REPORTED}` not reported by the paper, "
        f"`{UNDEFINED}` undefined (NaN metric, or std of a single fold); [n=k]: metric defined on k folds only.",
        "",
    ]
    return lines


# ------------------------------------------------------------------------------------------------
# Building


def build_report(results_dir: Path, grid: str, *, read_artifacts: bool = True) -> Report:
    path = trials_path(results_dir, grid)
    raw = load_trials(path)
    if raw.is_empty():
        raise DataError(f"trials table {path} has no rows")
    df = _with_keys(latest_outcomes(raw))
    settings = sorted(set(df["setting"].to_list()))
    table2 = ablation_table(df, settings, grid)
    report = Report(
        grid=grid,
        trials_file=path,
        protocol=protocol_lines(raw, df, grid, path, table2, read_artifacts=read_artifacts),
        settings=settings,
        table2=table2,
        table1=comparison_table(table2, settings),
        significance=significance_table(df, settings),
        probes=probe_table(df, table2),
        trials=df,
    )
    report.notes.append(
        "The paper's Table II also prints an unlabelled CNN row (75.03 / 74.27 / 74.98 / 75.01) between "
        "wo.SupCon and wo.LCL; it is kept in grid.paper but excluded from every comparison."
    )
    if len(settings) > 1:
        report.notes.append(f"{len(settings)} settings in this grid are reported separately, never pooled.")
    return report


# ------------------------------------------------------------------------------------------------
# Formatting (shared by Markdown, LaTeX and HTML)


def _is_num(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def fmt_cell(mean, std, n, n_done) -> str:
    if n_done == 0:
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


def _setting_groups(report: Report, df: pl.DataFrame):
    """[(heading or None, rows of df)] per setting; no heading when the grid has one setting."""
    if len(report.settings) == 1:
        return [(None, df)]
    return [(f"Setting: {s}", df.filter(pl.col("setting") == s)) for s in report.settings]


def table2_rows(t: pl.DataFrame) -> tuple[list[str], list[list[str]]]:
    headers = ["Type", "Model", "done/exp", "failed", "missing"]
    for m in METRICS:
        headers += [f"{METRIC_TITLES[m]} (ours)", "paper", "Δ"]
    rows = []
    for r in t.iter_rows(named=True):
        row = [r["type"], r["model"], f"{r['n_done']}/{r['n_expected']}", str(r["n_failed"]), str(r["n_missing"])]
        for m in METRICS:
            row += [
                fmt_cell(r[f"{m}_mean"], r[f"{m}_std"], r[f"{m}_n"], r["n_done"]),
                fmt_paper(r[f"{m}_paper"], r["in_paper"]),
                fmt_diff(r[f"{m}_diff"], r[f"{m}_paper"], r["in_paper"], r[f"{m}_mean"]),
            ]
        rows.append(row)
    return headers, rows


def table1_rows(t: pl.DataFrame) -> tuple[list[str], list[list[str]]]:
    headers = ["Model", "Ref", "Source", "WA (%)", "UA (%)", "Δ WA vs paper", "Δ UA vs paper"]
    rows = []
    for r in t.iter_rows(named=True):
        if r["ours"]:
            wa = fmt_cell(r["wa"], r["wa_std"], r["wa_n"], r["n_done"])
            ua = fmt_cell(r["ua"], r["ua_std"], r["ua_n"], r["n_done"])
            dwa = f"{r['wa_diff']:+.2f}" if _is_num(r["wa_diff"]) else MISSING
            dua = f"{r['ua_diff']:+.2f}" if _is_num(r["ua_diff"]) else MISSING
        else:
            wa = f"{r['wa']:.2f}" if _is_num(r["wa"]) else NOT_REPORTED
            ua = f"{r['ua']:.2f}" if _is_num(r["ua"]) else NOT_REPORTED
            dwa = dua = ""
        rows.append([r["model"], r["ref"], r["source"], wa, ua, dwa, dua])
    return headers, rows


def significance_rows(t: pl.DataFrame) -> tuple[list[str], list[list[str]]]:
    headers = ["Backbone", "Comparison", "Metric", "n pairs", "mean A", "mean B", "mean Δ (pp)", "d_z",
               "t-test p", "Wilcoxon p", "note"]
    rows = []
    for r in t.iter_rows(named=True):
        num = (lambda x, f="{:.2f}": f.format(x) if _is_num(x) else MISSING)
        rows.append([
            paper.BACKBONE_LABELS.get(r["backbone"], r["backbone"]), r["comparison"], METRIC_TITLES[r["metric"]],
            str(r["n"]), num(r["mean_a"]), num(r["mean_b"]), num(r["mean_diff"], "{:+.2f}"), num(r["cohen_dz"]),
            fmt_p(r["t_p"]), fmt_p(r["wilcoxon_p"]), r["note"],
        ])
    return headers, rows


def probe_rows(t: pl.DataFrame) -> tuple[list[str], list[list[str]]]:
    headers = ["Type", "Model", "done/exp", "speaker probe on X_e (%)", "emotion probe on X_s (%)"]
    rows = []
    for r in t.iter_rows(named=True):
        rows.append([r["type"], r["model"], f"{r['n_done']}/{r['n_expected']}"] + [
            fmt_cell(r[f"{p}_mean"], r[f"{p}_std"], r[f"{p}_n"], r["n_done"]) for p in PROBES])
    return headers, rows


SECTIONS = (
    ("Table II: ablation (emotion and speaker accuracy)", "table2", table2_rows),
    ("Table I: comparison with the paper and the methods it cites", "table1", table1_rows),
    ("Significance: HCLD vs EMO-only and vs orth, paired on fold", "significance", significance_rows),
    ("Decoupling probes (linear probes on frozen test embeddings)", "probes", probe_rows),
)
SECTION_NOTES = {
    "table1": "Baseline rows are quoted from the paper's Table I with its reference numbers; they were not re-run.",
    "significance": "Paired t-test and Wilcoxon signed-rank (scipy, two-sided) over folds where both variants "
                    "finished; d_z = mean Δ / sample std of Δ (ddof=1). Fewer than 3 pairs: no p-value.",
    "probes": "Speaker probe on X_e: lower means less speaker information left in the emotion embedding.",
}


def _section_frames(report: Report, key: str) -> list[tuple[str | None, pl.DataFrame]]:
    df = getattr(report, key)
    if key == "table1":
        # Quoted and paper rows are shared by every setting; list them once.
        return [(None, df)]
    return _setting_groups(report, df)


# ------------------------------------------------------------------------------------------------
# Renderers


def _md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    out = ["| " + " | ".join(map(esc, headers)) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    return out


def render_markdown(report: Report) -> str:
    lines = list(report.protocol)
    for title, key, make in SECTIONS:
        lines += [f"## {title}", ""]
        for heading, frame in _section_frames(report, key):
            if heading:
                lines += [f"### {heading}", ""]
            lines += _md_table(*make(frame)) + [""]
        if key in SECTION_NOTES:
            lines += [SECTION_NOTES[key], ""]
    lines += ["## Notes", ""] + [f"- {n}" for n in report.notes] + [""]
    if report.figures:
        lines += ["## Figures", ""] + [f"- {f}" for f in report.figures] + [""]
    return "\n".join(lines)


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "±": r"$\pm$", "Δ": r"$\Delta$", "—": "---", "×": r"$\times$", "…": r"\ldots{}",
                  "⚠": "(!)"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in str(text))


def render_latex(report: Report) -> str:
    out = [f"% HCLD reproduction report, grid {report.grid}. Needs \\usepackage{{booktabs}}.", "%"]
    out += ["% " + line for line in report.protocol if line]
    for title, key, make in SECTIONS:
        for heading, frame in _section_frames(report, key):
            headers, rows = make(frame)
            caption = title + (f" ({heading})" if heading else "")
            out += ["", r"\begin{table*}[t]", r"\centering\scriptsize",
                    rf"\caption{{{latex_escape(caption)}}}", rf"\begin{{tabular}}{{{'l' * len(headers)}}}",
                    r"\toprule", " & ".join(latex_escape(h) for h in headers) + r" \\", r"\midrule"]
            out += [" & ".join(latex_escape(c) for c in r) + r" \\" for r in rows]
            out += [r"\bottomrule", r"\end{tabular}", r"\end{table*}"]
    return "\n".join(out) + "\n"


def render_html(report: Report) -> str:
    e = html.escape
    out = ["<!doctype html>", "<meta charset='utf-8'>", f"<title>HCLD report: {e(report.grid)}</title>",
           "<style>table{border-collapse:collapse;font:12px sans-serif}td,th{border:1px solid #bbb;"
           "padding:2px 6px}blockquote{color:#b00;font-weight:bold}</style>"]
    for line in report.protocol:
        if line.startswith("# "):
            out.append(f"<h1>{e(line[2:])}</h1>")
        elif line.startswith("## "):
            out.append(f"<h2>{e(line[3:])}</h2>")
        elif line.startswith("> "):
            out.append(f"<blockquote>{e(line[2:].replace('**', ''))}</blockquote>")
        elif line.startswith("- "):
            out.append(f"<li>{e(line[2:])}</li>")
    for title, key, make in SECTIONS:
        out.append(f"<h2>{e(title)}</h2>")
        for heading, frame in _section_frames(report, key):
            headers, rows = make(frame)
            if heading:
                out.append(f"<h3>{e(heading)}</h3>")
            out.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in headers) + "</tr>")
            out += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows]
            out.append("</table>")
        if key in SECTION_NOTES:
            out.append(f"<p>{e(SECTION_NOTES[key])}</p>")
    out += ["<h2>Notes</h2>"] + [f"<li>{e(n)}</li>" for n in report.notes]
    if report.figures:
        out += ["<h2>Figures</h2>"] + [f"<li>{e(f)}</li>" for f in report.figures]
    return "\n".join(out) + "\n"


FORMATS: tuple[str, ...] = ("md", "latex", "csv", "html")


def write_report(report: Report, out_dir: Path, formats) -> list[Path]:
    """Write the requested formats under out_dir; returns the files written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in dict.fromkeys(formats):
        if fmt == "md":
            path = out_dir / "report.md"
            path.write_text(render_markdown(report), encoding="utf-8")
            written.append(path)
        elif fmt == "latex":
            path = out_dir / "report.tex"
            path.write_text(render_latex(report), encoding="utf-8")
            written.append(path)
        elif fmt == "html":
            path = out_dir / "report.html"
            path.write_text(render_html(report), encoding="utf-8")
            written.append(path)
        elif fmt == "csv":
            for key in ("table2", "table1", "significance", "probes"):
                path = out_dir / f"{key}.csv"
                getattr(report, key).write_csv(path)
                written.append(path)
        else:
            raise ValueError(f"unknown report format {fmt!r}; known: {FORMATS}")
    return written
