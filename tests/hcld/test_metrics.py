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


def test_probe_inputs_are_float64_standardised_by_the_training_rows_and_rounded():
    rng = np.random.default_rng(0)
    train = rng.normal(3.0, 2.0, size=(50, 4)).astype(np.float32)
    train[:, 2] = 5.0  # zero variance: left at 0, not divided by 0
    test = rng.normal(size=(7, 4)).astype(np.float32)
    fit_x, score_x = M.probe_inputs(train, test)
    assert fit_x.dtype == np.float64 and score_x.dtype == np.float64
    np.testing.assert_array_equal(fit_x[:, 2], 0.0)
    np.testing.assert_array_equal(score_x[:, 2], 0.0)
    keep = [0, 1, 3]
    t64 = train.astype(np.float64)[:, keep]
    expected = (test.astype(np.float64)[:, keep] - t64.mean(0)) / t64.std(0)
    np.testing.assert_allclose(score_x[:, keep], expected, atol=0.5 * 10.0 ** -M.PROBE_DECIMALS + 1e-12)
    np.testing.assert_array_equal(score_x, np.round(score_x, M.PROBE_DECIMALS))


def _float32_blobs():
    x, y = _blobs(40, 5, d=16, sep=1.0, seed=2)  # overlapping classes: the probe is not at 1.0
    return x.astype(np.float32), y


def test_probe_does_not_depend_on_the_blas_thread_count():
    from threadpoolctl import threadpool_limits

    x, y = _float32_blobs()
    scores = set()
    for threads in (1, 2, 4, None):
        with threadpool_limits(limits=threads):
            scores.add(M.linear_probe(x[::2], y[::2], x[1::2], y[1::2]))
            scores.add(M.speaker_probe(x, y, x[:0], y[:0], seen=False, seed=1))
    assert len(scores) == 2, scores  # one probe score and one held-out speaker-probe score
    assert all(0.2 < s < 1.0 for s in scores)


def test_probe_fits_with_the_blas_pinned_to_one_thread(monkeypatch):
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_info

    seen = []
    fit = LogisticRegression.fit

    def recording_fit(self, *args, **kwargs):
        seen.append({pool["num_threads"] for pool in threadpool_info()})
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(LogisticRegression, "fit", recording_fit)
    x, y = _float32_blobs()
    M.linear_probe(x, y, x, y)
    assert seen == [{1}]


def test_probe_ignores_last_bit_differences_of_float32_embeddings():
    x, y = _float32_blobs()
    up, down = np.nextafter(x, np.float32(np.inf)), np.nextafter(x, np.float32(-np.inf))
    assert not np.array_equal(up, x)
    base = M.linear_probe(x[::2], y[::2], x[1::2], y[1::2])
    assert base == M.linear_probe(up[::2], y[::2], up[1::2], y[1::2])
    assert base == M.linear_probe(down[::2], y[::2], x[1::2], y[1::2])
    assert M.speaker_probe(x, y, x[:0], y[:0], seen=False) == M.speaker_probe(up, y, up[:0], y[:0], seen=False)
    # the rounding is what absorbs them: almost every standardised input is bit-identical
    a, b = M.probe_inputs(x, x)[0], M.probe_inputs(up, up)[0]
    assert np.mean(a == b) > 0.8 and np.max(np.abs(a - b)) <= 1.0001 * 10.0 ** -M.PROBE_DECIMALS


def test_macro_f1_matches_sklearn_and_a_hand_worked_case():
    from sklearn.metrics import f1_score

    # hand-worked: class 0 TP 2 FP 1 FN 0 -> 4/5; class 1 TP 0 FP 0 FN 1 -> 0; class 2 TP 1 -> 1
    y, p = np.array([0, 0, 1, 2]), np.array([0, 0, 0, 2])
    assert M.macro_f1(y, p) == pytest.approx((0.8 + 0 + 1) / 3)
    rng = np.random.default_rng(3)
    for _ in range(20):
        y, p = rng.integers(0, 5, 40), rng.integers(0, 5, 40)
        assert M.macro_f1(y, p) == pytest.approx(f1_score(y, p, average="macro"))
    assert math.isnan(M.macro_f1(np.array([]), np.array([])))
