"""WA / UA / confusion and the linear decoupling probes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hcld import metrics as M


def test_wa_is_accuracy_and_ua_is_mean_recall():
    y = np.array([0, 0, 0, 1])
    p = np.array([0, 0, 0, 0])
    assert M.weighted_accuracy(y, p) == pytest.approx(0.75)
    assert M.unweighted_accuracy(y, p) == pytest.approx(0.5)  # recall 1 for class 0, 0 for class 1
    assert math.isnan(M.weighted_accuracy(np.array([]), np.array([])))
    assert math.isnan(M.unweighted_accuracy(np.array([]), np.array([])))


def test_confusion_rows_are_true_columns_predicted():
    m = M.confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 2, 1, 2]), 4)
    assert m[1] == [0, 1, 1, 0]
    assert sum(map(sum, m)) == 4 and m[3] == [0, 0, 0, 0]


def _blobs(n_per, k, d=6, sep=4.0, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), n_per)
    centres = rng.normal(size=(k, d)) * sep
    return centres[y] + rng.normal(size=(len(y), d)), y


def test_probe_finds_linear_information_and_not_absent_information():
    x, y = _blobs(30, 3)
    xt, yt = _blobs(10, 3, seed=0)
    assert M.linear_probe(x, y, xt, yt) > 0.95
    rng = np.random.default_rng(1)
    noise, noise_t = rng.normal(size=(90, 6)), rng.normal(size=(60, 6))
    assert M.linear_probe(noise, y, noise_t, rng.integers(0, 3, 60)) < 0.6


def test_probe_is_deterministic():
    x, y = _blobs(20, 4, sep=0.5)
    a = M.linear_probe(x, y, x[::2], y[::2])
    assert a == M.linear_probe(x, y, x[::2], y[::2])


def test_holdout_split_is_disjoint_covering_and_keeps_every_label():
    labels = np.repeat(np.arange(5), [10, 4, 2, 1, 7])
    fit, held = M.holdout_split(labels, seed=3)
    assert set(fit).isdisjoint(held) and sorted([*fit, *held]) == list(range(len(labels)))
    assert set(labels[held]) == {0, 1, 2, 4}  # the single-row label stays in the fit part
    assert set(labels[fit]) == set(range(5))


def test_unseen_speakers_are_probed_on_a_held_out_part_of_training():
    x, y = _blobs(20, 3)
    unseen_test = np.full(5, 99)  # speakers never seen in training
    score = M.speaker_probe(x, y, x[:5], unseen_test, seen=False)
    assert score > 0.9
    assert M.speaker_probe(x, y, x[:5], unseen_test, seen=True) == 0.0
