"""Turn results/<grid>/trials.parquet into the paper's tables (Polars), with the protocol on top.

Rules the numbers follow (each is tested):
- One outcome per trial_id: its latest "done" row if it has one, else its latest row (a failure).
- Cells are mean ± sample std (ddof=1) over the finished folds, in percent; Δ = ours − paper in
  percentage points. NaN metrics (undefined, e.g. speaker accuracy on unseen speakers) are left out
  of the mean and the cell says on how many folds it rests.
- A cell with no finished fold shows MISSING, never a number; failed and missing folds are counted.
- The paper's "-" stays "-"; its unlabelled stray Table II row is never compared (see grid.report.paper).
- Trials in different settings (`assign_settings`) are never averaged together: each setting gets
  its own rows.

This module loads the table, assigns settings and declares the report's sections (`SECTIONS`);
the tables are computed in grid.report.tables, their cells written in grid.report.cells, the
protocol in grid.report.protocol, and the files by grid.report.render.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from grid import trials
from grid.report import settings as sweep_settings
from grid.report.cells import Rows, probe_rows, significance_rows, table1_rows, table2_rows
from grid.report.protocol import Protocol, build_protocol
from grid.report.sensitivity import sensitivity_rows, sensitivity_table
from grid.report.tables import ablation_table, comparison_table, probe_table, significance_table
from hcld.errors import DataError

if TYPE_CHECKING:
    from grid.report.figures import Figure

# Without these a row cannot be placed in any table; every other column of the store's schema may
# be absent from an older table and is read as null.
KEY_COLUMNS: tuple[str, ...] = ("trial_id", "backbone", "variant", "fold", "status")
# Trials that differ in any of these are different experiments and are never pooled; each is read
# from the first of its columns the table has a value in. loss_impl is the one asked for (a failed
# trial has no loss_impl that ran); older tables have only loss_impl.
SETTING_FIELDS: dict[str, tuple[str, ...]] = {
    "corpus": ("corpus",), "features": ("features",), "fold_scheme": ("fold_scheme",), "epochs": ("epochs",),
    "seed": ("seed",), "loss_impl": ("loss_impl_requested", "loss_impl"),
}


@dataclass(frozen=True)
class Section:
    """One table of the report. Adding a table to every format is adding one Section to SECTIONS;
    `build` may read the tables of the sections before it (`report.tables[key]`)."""

    key: str  # key in Report.tables, CSV file stem, HTML anchor
    title: str
    build: Callable[[Report], pl.DataFrame]  # from report.trials / settings / earlier sections' tables
    rows: Callable[[pl.DataFrame], Rows]  # the frame as (headers, rows of display strings)
    note: str = ""
    per_setting: bool = True  # False: one table for the grid (its rows name their setting)
    figures: tuple[str, ...] = ()  # grid.report.figures kinds shown beside this table (HTML)


@dataclass
class Report:
    grid: str
    trials_file: Path
    settings: list[str]  # setting labels, in report order
    trials: pl.DataFrame  # one outcome per trial and setting, with `row_backbone` and `setting`
    sections: tuple[Section, ...] = ()  # what the renderers show, in order (SECTIONS unless a caller chose)
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)  # by Section.key (numeric, percent)
    protocol: Protocol = field(default_factory=lambda: Protocol(items=[], corpus_warning=None))
    notes: list[str] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)  # filled by the caller after grid.report.figures runs

    @property
    def grid_dir(self) -> Path:
        return self.trials_file.parent

    def frames(self, section: Section) -> list[tuple[str | None, pl.DataFrame]]:
        """[(setting or None, rows of the section's table)]: one per setting, or a single frame
        when the section is grid-wide or the grid has one setting."""
        table = self.tables[section.key]
        if not section.per_setting or len(self.settings) == 1:
            return [(None, table)]
        return [(s, table.filter(pl.col("setting") == s)) for s in self.settings]


SECTIONS: tuple[Section, ...] = (
    Section("table2", "Table II: ablation (emotion and speaker accuracy)",
            build=lambda r: ablation_table(r.trials, r.settings, r.grid), rows=table2_rows,
            figures=("confusion", "curves")),
    Section("table1", "Table I: comparison with the paper and the methods it cites",
            build=lambda r: comparison_table(r.tables["table2"], r.settings), rows=table1_rows,
            note="Baseline rows are quoted from the paper's Table I with its reference numbers; they were not re-run.",
            per_setting=False),  # quoted and paper rows are shared by every setting: listed once
    Section("significance", "Significance: HCLD vs EMO-only and vs orth, paired on fold",
            build=lambda r: significance_table(r.trials, r.settings), rows=significance_rows,
            note="Paired t-test and Wilcoxon signed-rank (scipy, two-sided) over folds where both variants "
                 "finished; d_z = mean Δ / sample std of Δ (ddof=1). Fewer than 3 pairs: no p-value."),
    Section("sensitivity", "Sensitivity: does HCLD help under each setting (reading of the paper)?",
            build=lambda r: sensitivity_table(r.trials, r.settings), rows=sensitivity_rows,
            note="Per setting and backbone: HCLD's emotion UA minus each control's, in percentage points, "
                 "paired on fold (t-test and Wilcoxon signed-rank, two-sided; with 5 folds the smallest "
                 "possible Wilcoxon p is 0.0625), and the speaker probe on X_e of HCLD and EMO-only with "
                 "their paired difference (lower = less speaker information in the emotion embedding). "
                 "A control that does not read a swept setting (EMO-only: trunk, temperature) is the "
                 "same trials in every setting.",
            per_setting=False),
    Section("probes", "Decoupling probes (linear probes on frozen test embeddings)",
            build=lambda r: probe_table(r.trials, r.tables["table2"]), rows=probe_rows,
            note="Speaker probe on X_e: lower means less speaker information left in the emotion embedding.",
            figures=("projection",)),
)


# ------------------------------------------------------------------------------------------------
# Loading


def trials_path(results_dir: Path, grid: str) -> Path:
    return Path(results_dir) / grid / "trials.parquet"


def _store_dtypes() -> dict[str, pl.DataType]:
    """The result store's row as Polars types, read from grid.trials.SCHEMA at call time."""
    return dict(pl.from_arrow(trials.SCHEMA.empty_table()).schema)


def load_trials(path: Path) -> pl.DataFrame:
    """Read the store and type it by its schema; every attempt row is kept (dedupe is `latest_outcomes`).

    A schema column the file lacks (an older table) is added as nulls; NaN metrics become null."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no trials table at {path}: run `hcld-grid run` for this grid first")
    try:
        df = pl.read_parquet(path)
    except Exception as exc:  # polars raises several types for a broken file
        raise DataError(f"cannot read trials table {path}: {exc}") from exc
    missing = [c for c in KEY_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"trials table {path} lacks column(s) {missing}")
    bad_status = sorted(set(df["status"].drop_nulls().to_list()) - {"done", "failed"})
    if bad_status or df["status"].null_count():
        raise DataError(f"trials table {path}: status must be 'done' or 'failed', found {bad_status or [None]}")
    dtypes = _store_dtypes()
    try:
        df = df.with_columns(
            (pl.col(name) if name in df.columns else pl.lit(None)).cast(dtype).alias(name)
            for name, dtype in dtypes.items()
        )
        # NaN and null both mean "no number": keep one representation.
        df = df.with_columns(pl.col(c).fill_nan(None) for c, t in dtypes.items() if t.is_float())
    except Exception as exc:
        raise DataError(f"trials table {path}: unexpected column types ({exc})") from exc
    return df


def latest_outcomes(raw: pl.DataFrame) -> pl.DataFrame:
    """One row per trial_id: the latest done row, or the latest failed row if it never finished.

    Adds `failed_attempts` (failed rows seen for the trial), `attempt_rows` (all rows) and
    `row_backbone` (cnn, or cnn+lstm for mixed branches: the Model a table row shows)."""
    counts = raw.group_by("trial_id").agg(
        attempt_rows=pl.len(), failed_attempts=(pl.col("status") == "failed").sum().cast(pl.Int64)
    )
    chosen = (
        raw.with_columns(_done=pl.col("status") == "done")
        .sort(["trial_id", "_done", "finished_at"], nulls_last=False)
        .unique(subset="trial_id", keep="last", maintain_order=True)
        .drop("_done")
    )
    mixed = pl.col("speaker_backbone").is_not_null() & (pl.col("speaker_backbone") != pl.col("backbone"))
    row_backbone = pl.when(mixed).then(pl.col("backbone") + "+" + pl.col("speaker_backbone")).otherwise(
        pl.col("backbone")
    )
    # rows in an order set by what the trials are, not by their ids (which change with the code
    # version) or finishing order: a mean over a cell's rows then sums in the same order whenever
    # the same results are reported, so a re-run that changes no number changes no byte
    content = ("grid", "config_json", "variant", "backbone", "corpus", "features", "fold_scheme", "fold", "seed")
    return (chosen.join(counts, on="trial_id", how="left").with_columns(row_backbone=row_backbone)
            .sort(*content, nulls_last=True, maintain_order=True))


# ------------------------------------------------------------------------------------------------
# Settings: the one place that decides which trials are comparable


def assign_settings(outcomes: pl.DataFrame) -> pl.DataFrame:
    """Add the `setting` label that every table and figure groups by: the SETTING_FIELDS columns,
    then the swept config keys (grid.report.settings). A trial that does not read a swept key
    belongs to every setting that agrees on the keys it reads: it gets one row per setting.

    Consumers only filter on `setting` and loop over `setting_order`, so everything downstream
    holds with such repeated trials (the protocol counts trials by id)."""
    def value(columns: tuple[str, ...]) -> pl.Expr:
        present = [pl.col(c).cast(pl.String) for c in columns if c in outcomes.columns]
        return pl.coalesce(*present, pl.lit("?"))

    base = outcomes.select(pl.concat_str(
        [pl.lit(f"{name}=") + value(columns) for name, columns in SETTING_FIELDS.items()], separator=" "
    ))[:, 0].to_list()
    configs = [sweep_settings.read_config(text) for text in outcomes["config_json"].to_list()]
    labels: list[list[str]] = [[] for _ in base]
    for group in dict.fromkeys(base):  # settings never cross corpus, features, folds, ...
        rows = [i for i, b in enumerate(base) if b == group]
        trials = [configs[i] for i in rows]
        keys = [k for k in sweep_settings.swept_keys(trials) if k not in SETTING_FIELDS]
        for i, combos in zip(rows, sweep_settings.memberships(trials, keys)):
            labels[i] = [" ".join([group, sweep_settings.label(c)]).strip() for c in combos]
    return (outcomes.with_columns(setting=pl.Series(labels, dtype=pl.List(pl.String)))
            .explode("setting"))


def setting_order(trials: pl.DataFrame) -> list[str]:
    return sorted(set(trials["setting"].to_list()))


# ------------------------------------------------------------------------------------------------
# Building


def build_report(results_dir: Path, grid: str, *, sections: tuple[Section, ...] = SECTIONS,
                 read_artifacts: bool = True) -> Report:
    path = trials_path(results_dir, grid)
    raw = load_trials(path)
    if raw.is_empty():
        raise DataError(f"trials table {path} has no rows")
    outcomes = latest_outcomes(raw)
    trials = assign_settings(outcomes)
    report = Report(grid=grid, trials_file=path, settings=setting_order(trials), trials=trials, sections=sections)
    for section in sections:
        report.tables[section.key] = section.build(report)
    report.protocol = build_protocol(raw, outcomes, grid, path, report.tables["table2"],
                                     read_artifacts=read_artifacts)
    report.notes.append(
        "The paper's Table II also prints an unlabelled CNN row (75.03 / 74.27 / 74.98 / 75.01) between "
        "wo.SupCon and wo.LCL; it is kept in grid.paper but excluded from every comparison."
    )
    if len(report.settings) > 1:
        report.notes.append(f"{len(report.settings)} settings in this grid are reported separately, never pooled.")
    return report
