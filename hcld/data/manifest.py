"""The manifest: one row per kept utterance of a corpus, whatever reader wrote it.

Every corpus reader (hcld.data.corpora) ends in `write_manifest`, and every later stage (folds,
features, trials) starts from `read_manifest`, so this is the one contract between them:

    utt_id       unique id (the reader's, e.g. Ses01F_impro01_M003 or 1001_DFA_ANG_XX)
    path         absolute path of the wav file
    emotion      label word after the reader's label map (lower case, e.g. ang, hap, fea)
    speaker      speaker id, unique over the corpus
    session      recording session or other group (null where a corpus has none)
    gender       F / M (null where unknown)
    duration_s, sample_rate, sha256   facts of the audio file

The label set is the data's: the sorted distinct `emotion` values (`emotion_names`). Sorted, so
IEMOCAP's four classes keep the order ang, hap, neu, sad that every committed result uses.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING

from hcld.errors import DataError
from hcld.fileio import read_parquet_checked, write_parquet_atomic

if TYPE_CHECKING:  # polars where used (the dependency rule, tests/test_packaging.py)
    import polars as pl

MANIFEST_NAME = "manifest.parquet"
MANIFEST_COLUMNS: tuple[str, ...] = (
    "utt_id", "path", "emotion", "speaker", "session", "gender", "duration_s", "sample_rate", "sha256",
)
# A label word: what file names, reports and LCL's anchor text can carry without quoting.
LABEL_WORD = re.compile(r"^[a-z][a-z0-9_-]*$")


def manifest_schema() -> dict:
    import polars as pl

    return {
        "utt_id": pl.String, "path": pl.String, "emotion": pl.String, "speaker": pl.String,
        "session": pl.String, "gender": pl.String, "duration_s": pl.Float64, "sample_rate": pl.Int64,
        "sha256": pl.String,
    }


def write_manifest(rows: list[dict], out_dir: Path | str) -> Path:
    """rows (dicts with MANIFEST_COLUMNS) -> out_dir/manifest.parquet, sorted by utt_id, checked as read."""
    import polars as pl

    df = pl.DataFrame(rows, schema=manifest_schema()).sort("utt_id")
    path = Path(out_dir) / MANIFEST_NAME
    _check(df, path)
    write_parquet_atomic(df, path)
    return path


def read_manifest(path: Path | str) -> pl.DataFrame:
    """The manifest as a DataFrame with exactly MANIFEST_COLUMNS; DataError if it is missing or malformed."""
    path = Path(path)
    df = read_parquet_checked(path, "manifest", "run `hcld-grid data prepare` first")
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{path}: manifest lacks columns {missing}")
    df = df.select(MANIFEST_COLUMNS)
    _check(df, path)
    return df


def emotion_names(manifest: pl.DataFrame) -> tuple[str, ...]:
    """The corpus' label set in class-index order (sorted label words)."""
    return tuple(sorted(manifest["emotion"].unique().to_list()))


def manifest_hash(df: pl.DataFrame) -> str:
    """Content hash of a manifest: sorted (utt_id, sha256, emotion, speaker) rows.

    Paths are left out on purpose, so moving the corpus folder keeps the feature-store key.
    """
    h = hashlib.sha256()
    for utt, sha, emo, spk in df.select("utt_id", "sha256", "emotion", "speaker").sort("utt_id").iter_rows():
        h.update(f"{utt}\t{sha}\t{emo}\t{spk}\n".encode())
    return h.hexdigest()


def _check(df: pl.DataFrame, path: Path) -> None:
    if df.height == 0:
        raise DataError(f"{path}: manifest has no rows")
    for column in ("utt_id", "path", "emotion", "speaker"):
        if df[column].null_count():
            raise DataError(f"{path}: manifest has {df[column].null_count()} row(s) without {column}")
    bad = sorted(e for e in df["emotion"].unique().to_list() if not LABEL_WORD.match(e))
    if bad:
        raise DataError(f"{path}: emotion labels {bad} are not label words (lower case letters, digits, _ or -, "
                        "starting with a letter); map them with --label-map")
    if len(emotion_names(df)) < 2:
        raise DataError(f"{path}: manifest has one emotion only ({emotion_names(df)[0]}): nothing to classify")
    if df["utt_id"].n_unique() != df.height:
        raise DataError(f"{path}: manifest lists some utterance ids twice")
