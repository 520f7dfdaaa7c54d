"""Cross-validation folds, stored with the data so every trial of a grid sees the same split.

A folds table has one row per utterance: (utt_id, fold). Fold k's test set is the rows with
fold == k and its training set is every other row, so test sets are disjoint and cover the corpus.

- random5: the paper's protocol, stratified by emotion, seeded: each fold is an 80/20 split with
  the corpus' class proportions. Speakers appear on both sides (speaker-dependent).
- loso: leave one session out (fold k tests Ses0{k+1}): both of its speakers are unseen in training.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hcld.errors import DataError
from hcld.fileio import read_parquet_checked, write_parquet_atomic
from hcld.labels import EMOTIONS, SESSIONS

if TYPE_CHECKING:  # polars where used: FOLD_SCHEMES and N_FOLDS are read by code that has none
    import polars as pl

FOLD_SCHEMES: tuple[str, ...] = ("random5", "loso")
N_FOLDS: dict[str, int] = {"random5": 5, "loso": len(SESSIONS)}


def folds_filename(scheme: str, seed: int = 0) -> str:
    """Where `data prepare` stores a scheme next to the manifest (loso does not depend on the seed)."""
    _check_scheme(scheme)
    return f"folds-{scheme}.parquet" if scheme == "loso" or seed == 0 else f"folds-{scheme}-seed{seed}.parquet"


def make_folds(manifest: pl.DataFrame, scheme: str, *, seed: int = 0) -> pl.DataFrame:
    """utt_id -> fold for every manifest row; DataError if any fold would have an empty test set."""
    _check_scheme(scheme)
    df = manifest.select("utt_id", "emotion", "session").sort("utt_id")  # independent of row order
    if scheme == "loso":
        index = {s: i for i, s in enumerate(SESSIONS)}
        unknown = sorted(set(df["session"].unique()) - set(index))
        if unknown:
            raise DataError(f"loso folds: sessions {unknown} are not among {list(SESSIONS)}")
        fold = np.array([index[s] for s in df["session"]], dtype=np.int64)
    else:
        fold = _stratified(df["emotion"].to_list(), N_FOLDS[scheme], seed)
    import polars as pl

    out = pl.DataFrame({"utt_id": df["utt_id"], "fold": fold}, schema={"utt_id": pl.String, "fold": pl.Int64})
    sizes = np.bincount(fold, minlength=N_FOLDS[scheme])
    empty = [k for k, n in enumerate(sizes) if n == 0]
    if empty:
        what = f"sessions {[SESSIONS[k] for k in empty]} have no utterances" if scheme == "loso" else \
            f"only {df.height} utterances for {N_FOLDS[scheme]} folds"
        raise DataError(f"{scheme} folds: fold(s) {empty} would have an empty test set ({what})")
    return out


def _stratified(emotions: list[str], k: int, seed: int) -> np.ndarray:
    """Shuffle each class, then deal the classes one after another round-robin into k folds.

    Dealing continues across classes (the counter is not reset), so fold sizes differ by at most
    one overall and every class differs by at most one between folds.
    """
    rng = np.random.default_rng(seed)
    labels = np.array(emotions)
    fold = np.empty(len(labels), dtype=np.int64)
    dealt = 0
    for emotion in sorted(set(emotions), key=lambda e: (EMOTIONS.index(e) if e in EMOTIONS else len(EMOTIONS), e)):
        members = rng.permutation(np.flatnonzero(labels == emotion))
        fold[members] = (dealt + np.arange(len(members))) % k
        dealt += len(members)
    return fold


def write_folds(df: pl.DataFrame, path: Path | str) -> Path:
    path = Path(path)
    write_parquet_atomic(df.select("utt_id", "fold"), path)
    return path


def read_folds(path: Path | str) -> pl.DataFrame:
    path = Path(path)
    df = read_parquet_checked(path, "folds file", "run `hcld-grid data prepare` or `data folds`")
    if not {"utt_id", "fold"} <= set(df.columns):
        raise DataError(f"{path}: folds file needs columns utt_id and fold, has {df.columns}")
    if df.height == 0 or df["utt_id"].n_unique() != df.height:
        raise DataError(f"{path}: folds file is empty or lists an utterance twice")
    import polars as pl

    return df.select("utt_id", pl.col("fold").cast(pl.Int64))


def _check_scheme(scheme: str) -> None:
    if scheme not in FOLD_SCHEMES:
        raise DataError(f"unknown fold scheme {scheme!r}; choose one of {list(FOLD_SCHEMES)}")
