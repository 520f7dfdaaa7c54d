"""The validation part of an outer training set, for epoch selection (TrialConfig.selection=best_val).

`validation_split` mirrors the design of the outer test fold it sits beside:

- test speakers all unseen in the outer training set (loso): the validation part is whole
  speakers of the training set, round(share × n_speakers) of them (at least 1, at most all but
  one), so selection rewards what the test fold measures: generalisation to new speakers.
- otherwise (random5): stratified by emotion. Classes are dealt one after another, in label order,
  with a running counter as in hcld.data.folds._stratified: the part holds round(share × n) rows
  overall and every class about `share` of its rows (at least one of a class with two or more
  rows, never all of them).

The seed is the trial's seed combined with a digest of the sorted test rows: different outer folds
get different validation parts, while every variant and backbone on the same fold and seed gets
the same one (paired comparisons). Deterministic (numpy's PCG64 from a SeedSequence), numpy only:
it runs on the trial path (tests/test_packaging.py).
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from hcld.errors import DataError


def fold_digest(test_idx: np.ndarray) -> int:
    """A 64-bit number that names an outer fold by its test rows (order does not matter)."""
    rows = np.sort(np.asarray(test_idx, dtype=np.int64))
    return int.from_bytes(hashlib.sha256(rows.tobytes()).digest()[:8], "little")


def speakers_unseen(speaker: np.ndarray, train_idx: np.ndarray, test_idx: np.ndarray) -> bool:
    """Whether no test speaker occurs among the training rows (a speaker-independent fold)."""
    speaker = np.asarray(speaker)
    return not set(speaker[test_idx].tolist()) & set(speaker[train_idx].tolist())


def validation_split(emotion: np.ndarray, speaker: np.ndarray, train_idx: np.ndarray, test_idx: np.ndarray,
                     share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit_idx, val_idx): sorted, disjoint rows whose union is `train_idx`; DataError when either
    part would be empty (too few rows, classes or speakers for a validation part)."""
    if not 0 < share < 1:
        raise DataError(f"validation share {share!r} must be between 0 and 1 (exclusive)")
    emotion, speaker = np.asarray(emotion), np.asarray(speaker)
    train = np.unique(np.asarray(train_idx, dtype=np.int64))  # sorted: the input order does not matter
    if len(train) != len(train_idx):
        raise DataError("validation split: the training rows list a row twice")
    rng = np.random.default_rng([int(seed), fold_digest(test_idx)])
    if speakers_unseen(speaker, train, test_idx):
        held = _whole_speakers(speaker[train], share, rng)
    else:
        held = _stratified(emotion[train], share, rng)
    fit, val = train[~held], train[held]
    if len(fit) == 0 or len(val) == 0:
        raise DataError(f"validation split of {len(train)} training rows at share {share} leaves "
                        f"{len(fit)} to fit and {len(val)} to validate on: too few rows for a validation part")
    return fit, val


def _whole_speakers(speaker: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    speakers = np.unique(speaker)
    if len(speakers) < 2:
        raise DataError(f"validation split by speaker needs two or more training speakers, found {len(speakers)}")
    k = min(max(_round(share * len(speakers)), 1), len(speakers) - 1)
    chosen = rng.permutation(speakers)[:k]
    return np.isin(speaker, chosen)


def _stratified(emotion: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    held = np.zeros(len(emotion), dtype=bool)
    dealt = 0
    for c in np.unique(emotion):  # label order (hcld.labels.EMOTIONS)
        members = rng.permutation(np.flatnonzero(emotion == c))
        # the running counter: the part holds round(share * rows dealt so far) rows after each class
        k = _round(share * (dealt + len(members))) - _round(share * dealt)
        if len(members) >= 2:
            k = min(max(k, 1), len(members) - 1)
        else:
            k = 0  # a single row stays to train on
        held[members[:k]] = True
        dealt += len(members)
    return held


def _round(x: float) -> int:
    """Half up (Python's round() rounds half to even)."""
    return int(math.floor(x + 0.5))
