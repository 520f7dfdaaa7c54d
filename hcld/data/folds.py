"""Cross-validation folds, stored with the data so every trial of a grid sees the same split.

A folds table has one row per utterance: (utt_id, fold). Fold k's test set is the rows with
fold == k and its training set is every other row, so test sets are disjoint and cover the corpus.

- random5 (random10): the paper's protocol, stratified by emotion, seeded: each fold is an 80/20
  (90/10) split with the corpus' class proportions. Speakers appear on both sides (speaker-dependent).
- loso: leave one group out, a fold per group in sorted order: the session where every utterance
  has one (IEMOCAP: fold k tests Ses0{k+1}, both of its speakers unseen in training), else the
  speaker (RAVDESS, CREMA-D, EmoDB have no sessions). Its fold count is the corpus' group count.
- speaker5 (speaker10): speaker-independent k-fold, seeded: whole speakers are dealt to folds,
  largest first to the fold with fewest utterances, so fold sizes stay close.

Every scheme's test sets are disjoint and cover the corpus by construction (one fold per row);
`make_folds` checks that no fold is empty and, for the speaker schemes, that no speaker is on
both sides.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hcld.errors import DataError
from hcld.fileio import read_parquet_checked, write_parquet_atomic

if TYPE_CHECKING:  # polars where used: FOLD_SCHEMES and N_FOLDS are read by code that has none
    import polars as pl

FOLD_SCHEMES: tuple[str, ...] = ("random5", "random10", "loso", "speaker5", "speaker10")
# Folds per scheme; loso's is the corpus' group count, 5 for IEMOCAP's sessions and the built-in
# corpus (FOLDS_FROM_DATA: a grid on another corpus takes the count `make_folds` gives).
N_FOLDS: dict[str, int] = {"random5": 5, "random10": 10, "loso": 5, "speaker5": 5, "speaker10": 10}
FOLDS_FROM_DATA: tuple[str, ...] = ("loso",)


def folds_filename(scheme: str, seed: int = 0) -> str:
    """Where `data prepare` stores a scheme next to the manifest (loso does not depend on the seed)."""
    _check_scheme(scheme)
    return f"folds-{scheme}.parquet" if scheme == "loso" or seed == 0 else f"folds-{scheme}-seed{seed}.parquet"


def loso_groups(manifest: pl.DataFrame) -> str:
    """What loso leaves out on this corpus: "session" where every row has one, else "speaker"."""
    return "session" if manifest["session"].null_count() == 0 else "speaker"


def make_folds(manifest: pl.DataFrame, scheme: str, *, seed: int = 0) -> pl.DataFrame:
    """utt_id -> fold for every manifest row; DataError if any fold would have an empty test set."""
    _check_scheme(scheme)
    df = manifest.select("utt_id", "emotion", "speaker", "session").sort("utt_id")  # independent of row order
    if scheme == "loso":
        column = loso_groups(df)
        groups = sorted(df[column].unique().to_list())
        if len(groups) < 2:
            raise DataError(f"loso folds: the corpus has one {column} only ({groups[0]}): nothing to leave out")
        index = {g: i for i, g in enumerate(groups)}
        fold, k = np.array([index[g] for g in df[column]], dtype=np.int64), len(groups)
    elif scheme.startswith("speaker"):
        k = N_FOLDS[scheme]
        fold = _by_speaker(df["speaker"].to_list(), k, seed)
    else:
        k = N_FOLDS[scheme]
        fold = _stratified(df["emotion"].to_list(), k, seed)
    import polars as pl

    out = pl.DataFrame({"utt_id": df["utt_id"], "fold": fold}, schema={"utt_id": pl.String, "fold": pl.Int64})
    sizes = np.bincount(fold, minlength=k)
    empty = [f for f, n in enumerate(sizes) if n == 0]
    if empty:
        what = (f"{df['speaker'].n_unique()} speakers for {k} folds" if scheme.startswith("speaker")
                else f"only {df.height} utterances for {k} folds")
        raise DataError(f"{scheme} folds: fold(s) {empty} would have an empty test set ({what})")
    if scheme.startswith("speaker"):
        _check_speaker_independent(df["speaker"].to_list(), fold, scheme)
    return out


def _by_speaker(speakers: list[str], k: int, seed: int) -> np.ndarray:
    """Whole speakers to folds: a seeded order, then largest first to the fold with fewest rows
    (ties: the lowest fold), so a speaker's rows are never split and fold sizes stay close."""
    names, counts = np.unique(np.array(speakers), return_counts=True)
    order = np.random.default_rng(seed).permutation(len(names))
    order = order[np.argsort(-counts[order], kind="stable")]
    load = np.zeros(k, dtype=np.int64)
    fold_of: dict[str, int] = {}
    for i in order:
        f = int(np.argmin(load))
        fold_of[str(names[i])] = f
        load[f] += counts[i]
    return np.array([fold_of[s] for s in speakers], dtype=np.int64)


def _check_speaker_independent(speakers: list[str], fold: np.ndarray, scheme: str) -> None:
    """The speaker schemes promise unseen test speakers: checked, not assumed."""
    folds_of: dict[str, set[int]] = {}
    for s, f in zip(speakers, fold.tolist()):
        folds_of.setdefault(s, set()).add(f)
    split = sorted(s for s, fs in folds_of.items() if len(fs) > 1)
    if split:
        raise DataError(f"{scheme} folds: speaker(s) {split[:5]} would be in more than one fold")


def _stratified(emotions: list[str], k: int, seed: int) -> np.ndarray:
    """Shuffle each class, then deal the classes one after another round-robin into k folds.

    Dealing continues across classes (the counter is not reset), so fold sizes differ by at most
    one overall and every class differs by at most one between folds.
    """
    rng = np.random.default_rng(seed)
    labels = np.array(emotions)
    fold = np.empty(len(labels), dtype=np.int64)
    dealt = 0
    for emotion in sorted(set(emotions)):  # class-index order (hcld.data.manifest.emotion_names)
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
