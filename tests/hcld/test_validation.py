"""The validation part held out of an outer training set (hcld.data.validation) and the two
settings that ask for it (TrialConfig.selection, validation_share)."""

from __future__ import annotations

import numpy as np
import pytest

from hcld.config import TrialConfig
from hcld.data.validation import validation_split
from hcld.errors import ConfigError, DataError
from hcld.losses.variants import canonical, unused_settings

# A corpus like IEMOCAP's shape, small: 10 speakers (2 per session), 4 unbalanced emotions.
N = 400
_rng = np.random.default_rng(7)
EMOTION = _rng.choice(4, size=N, p=[0.4, 0.3, 0.2, 0.1]).astype(np.int64)
SPEAKER = _rng.integers(0, 10, size=N).astype(np.int64)
SESSION = SPEAKER // 2


def random5_fold(k: int) -> tuple[np.ndarray, np.ndarray]:
    test = np.arange(N) % 5 == k
    return np.flatnonzero(~test), np.flatnonzero(test)


def loso_fold(k: int) -> tuple[np.ndarray, np.ndarray]:
    test = SESSION == k
    return np.flatnonzero(~test), np.flatnonzero(test)


def split(train, test, share=0.1, seed=0):
    return validation_split(EMOTION, SPEAKER, train, test, share, seed)


def test_parts_are_sorted_disjoint_cover_the_training_rows_and_never_touch_the_test_fold():
    for fold in (random5_fold(1), loso_fold(2)):
        train, test = fold
        fit, val = split(train, test)
        assert np.all(np.diff(fit) > 0) and np.all(np.diff(val) > 0)
        assert not set(fit) & set(val)
        assert sorted([*fit, *val]) == sorted(train)
        assert not (set(fit) | set(val)) & set(test)


@pytest.mark.parametrize("share", [0.1, 0.25])
def test_speaker_dependent_folds_give_a_part_stratified_by_emotion(share):
    train, test = random5_fold(0)
    fit, val = split(train, test, share=share)
    assert abs(len(val) - share * len(train)) <= 1 + 4  # round(share x n), plus at most one per class forced in
    for c in range(4):
        n_c, v_c = int((EMOTION[train] == c).sum()), int((EMOTION[val] == c).sum())
        assert abs(v_c - share * n_c) <= 1.5, (c, n_c, v_c)  # about `share` of every class
        assert v_c >= 1
    assert len(set(SPEAKER[val])) > 1  # rows, not speakers: speakers stay on both sides


def test_every_class_with_two_rows_gets_a_validation_row_and_a_single_row_stays_to_train():
    emotion = np.array([0] * 30 + [1] * 2 + [2] * 1 + [3] * 7)
    speaker = np.zeros(len(emotion), dtype=np.int64)  # one speaker on both sides: stratified
    test, train = np.array([0]), np.arange(1, len(emotion))
    fit, val = validation_split(emotion, speaker, train, test, 0.1, 0)
    assert set(emotion[val]) == {0, 1, 3}
    assert set(emotion[fit]) == {0, 1, 2, 3}


@pytest.mark.parametrize("share, expected", [(0.1, 1), (0.3, 2), (0.5, 4), (0.95, 7)])
def test_speaker_independent_folds_hold_out_whole_training_speakers(share, expected):
    train, test = loso_fold(3)  # 8 training speakers, the 2 test speakers unseen
    fit, val = split(train, test, share=share)
    held = set(SPEAKER[val].tolist())
    assert len(held) == expected  # round(share x 8), at least 1, at most 7
    assert not held & set(SPEAKER[fit].tolist())  # a validation speaker has no row left to train on
    for s in held:  # every row of a held-out speaker is in the validation part
        assert set(np.flatnonzero(SPEAKER == s)) - set(test) <= set(val)


def test_the_split_is_deterministic_and_independent_of_the_order_of_the_rows():
    train, test = random5_fold(2)
    a = split(train, test, seed=3)
    b = split(train[::-1].copy(), np.random.default_rng(0).permutation(test), seed=3)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_outer_folds_and_seeds_get_different_parts():
    parts = {tuple(split(*random5_fold(k), seed=0)[1]) for k in range(5)}
    assert len(parts) == 5
    train, test = random5_fold(0)
    assert not np.array_equal(split(train, test, seed=0)[1], split(train, test, seed=1)[1])
    speakers = {tuple(sorted(set(SPEAKER[split(*loso_fold(k), share=0.25)[1]].tolist()))) for k in range(5)}
    assert len(speakers) > 1


def test_too_little_data_for_a_validation_part_fails_clearly():
    emotion = np.array([0, 1, 2])
    with pytest.raises(DataError, match="too few rows"):  # one row per class: nothing to hold out
        validation_split(emotion, np.zeros(3, dtype=np.int64), np.array([0, 1]), np.array([2]), 0.1, 0)
    with pytest.raises(DataError, match="two or more training speakers"):
        validation_split(emotion, np.array([0, 0, 1]), np.array([0, 1]), np.array([2]), 0.1, 0)
    with pytest.raises(DataError, match="between 0 and 1"):
        validation_split(EMOTION, SPEAKER, *random5_fold(0), 1.0, 0)


def test_selection_and_validation_share_are_checked_settings():
    assert TrialConfig().selection == "final" and TrialConfig().validation_share == 0.1
    TrialConfig(selection="best_val", validation_share=0.5)
    for bad, message in ((dict(selection="best_test"), "expected final | best_val"),
                         (dict(validation_share=0.0), "must be > 0"),
                         (dict(validation_share=1.0), "must be < 1"),
                         (dict(validation_share=1.5), "must be < 1")):
        with pytest.raises(ConfigError, match=message):
            TrialConfig(**bad)


def test_validation_share_is_an_unused_setting_without_a_validation_part():
    final = TrialConfig(validation_share=0.3)
    assert "validation_share" in unused_settings(final)
    assert canonical(final) == TrialConfig()  # one trial, whatever the share, under final
    best = TrialConfig(selection="best_val", validation_share=0.3)
    assert "validation_share" not in unused_settings(best)
    assert canonical(best).validation_share == 0.3
