"""Reading results/<grid>/trials.parquet: every attempt row typed by the store's schema, then one
outcome per trial (its latest "done" row if it has one, else its latest row: a failure)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from grid import trials
from grid.trials import FINISHED, STATUSES
from hcld.errors import DataError
from hcld.metrics import METRICS

# Without these a row cannot be placed in any table; every other column of the store's schema may
# be absent from an older table and is read as null.
KEY_COLUMNS: tuple[str, ...] = ("trial_id", "backbone", "variant", "fold", "status")


def recorded(metric: str) -> str:
    """The column `load_trials` adds for each metric of hcld.metrics.METRICS: whether the row
    recorded it. The store writes every metric of a finished trial, as NaN where it is undefined;
    a null is a row written before the metric existed (a column an older table lacks, e.g. macro-F1),
    shown as not recorded rather than undefined."""
    return f"{metric}_recorded"


def trials_path(results_dir: Path, grid: str) -> Path:
    return Path(results_dir) / grid / "trials.parquet"


def _store_dtypes() -> dict[str, pl.DataType]:
    """The result store's row as Polars types, read from grid.trials.SCHEMA at call time."""
    return dict(pl.from_arrow(trials.SCHEMA.empty_table()).schema)


def load_trials(path: Path) -> pl.DataFrame:
    """Read the store and type it by its schema; every attempt row is kept (dedupe is `latest_outcomes`).

    A schema column the file lacks (an older table) is added as nulls; NaN metrics become null,
    after `recorded(metric)` has kept which metrics each row recorded (NaN: recorded, undefined)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no trials table at {path}: run `hcld-grid run` for this grid first")
    try:
        df = pl.read_parquet(path.read_bytes())  # one read: a running grid may replace the file meanwhile
    except Exception as exc:  # polars raises several types for a broken file
        raise DataError(f"cannot read trials table {path}: {exc}") from exc
    missing = [c for c in KEY_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"trials table {path} lacks column(s) {missing}")
    bad_status = sorted(set(df["status"].drop_nulls().to_list()) - set(STATUSES))
    if bad_status or df["status"].null_count():
        raise DataError(f"trials table {path}: status must be one of {', '.join(STATUSES)}, "
                        f"found {bad_status or [None]}")
    dtypes = _store_dtypes()
    try:
        df = df.with_columns(
            (pl.col(name) if name in df.columns else pl.lit(None)).cast(dtype).alias(name)
            for name, dtype in dtypes.items()
        )
        df = df.with_columns(pl.col(m).is_not_null().alias(recorded(m)) for m in METRICS if m in dtypes)
        # NaN and null both mean "no number": keep one representation.
        df = df.with_columns(pl.col(c).fill_nan(None) for c, t in dtypes.items() if t.is_float())
    except Exception as exc:
        raise DataError(f"trials table {path}: unexpected column types ({exc})") from exc
    return df


def latest_outcomes(raw: pl.DataFrame) -> pl.DataFrame:
    """One row per trial_id: the latest finished (done or stopped) row, or the latest failed row if
    it never finished.

    Adds `failed_attempts` (failed rows seen for the trial), `attempt_rows` (all rows) and
    `row_backbone` (cnn, or cnn+lstm for mixed branches: the Model a table row shows)."""
    counts = raw.group_by("trial_id").agg(
        attempt_rows=pl.len(), failed_attempts=(pl.col("status") == "failed").sum().cast(pl.Int64)
    )
    chosen = (
        raw.with_columns(_done=pl.col("status").is_in(FINISHED))
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


def load_predictions(path: Path) -> pl.DataFrame | None:
    """results/<grid>/predictions.parquet (grid.trials.PREDICTION_SCHEMA), or None if the grid has
    none (trials run before predictions were stored)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return pl.read_parquet(path.read_bytes())  # one read, as in load_trials
    except Exception as exc:
        raise DataError(f"cannot read predictions table {path}: {exc}") from exc
