"""Paired tests against direct scipy calls on hand-made fold scores."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from grid.report.stats import MIN_PAIRS, paired_test

A = [0.74, 0.78, 0.71, 0.80, 0.76]
B = [0.70, 0.75, 0.72, 0.74, 0.71]


def test_matches_scipy_and_hand_effect_size():
    r = paired_test(A, B)
    d = np.array(A) - np.array(B)  # 0.04, 0.03, -0.01, 0.06, 0.05
    assert r.n == 5
    assert r.mean_diff == pytest.approx(0.034)
    hand_sd = math.sqrt(sum((x - 0.034) ** 2 for x in d) / 4)  # ddof=1
    assert r.sd_diff == pytest.approx(hand_sd)
    assert r.cohen_dz == pytest.approx(0.034 / hand_sd)
    t = sps.ttest_rel(A, B)
    w = sps.wilcoxon(A, B)
    assert (r.t_stat, r.t_p) == (pytest.approx(t.statistic), pytest.approx(t.pvalue))
    assert (r.wilcoxon_stat, r.wilcoxon_p) == (pytest.approx(w.statistic), pytest.approx(w.pvalue))
    # Hand check of the t statistic too: mean / (sd / sqrt(n)).
    assert r.t_stat == pytest.approx(0.034 / (hand_sd / math.sqrt(5)))
    assert r.note == ""


def test_nan_pairs_are_dropped_before_testing():
    r = paired_test(A + [float("nan")], B + [0.5])
    assert r.n == 5
    assert r.t_p == pytest.approx(sps.ttest_rel(A, B).pvalue)


def test_too_few_pairs_gives_no_p_value():
    r = paired_test(A[:2], B[:2])
    assert r.n == 2 < MIN_PAIRS
    assert r.t_p is None and r.wilcoxon_p is None and r.cohen_dz is None
    assert "too few pairs" in r.note
    assert r.mean_diff == pytest.approx(0.035)
    empty = paired_test([], [])
    assert empty.n == 0 and empty.mean_diff is None and "no paired" in empty.note


def test_identical_differences_give_no_test():
    r = paired_test([0.7, 0.8, 0.9], [0.6, 0.7, 0.8])
    assert r.t_p is None and r.wilcoxon_p is None
    assert "identical" in r.note


def test_zero_differences_are_named():
    a, b = [0.7, 0.8, 0.9, 0.5], [0.7, 0.7, 0.8, 0.6]
    r = paired_test(a, b)
    assert r.wilcoxon_p == pytest.approx(sps.wilcoxon(a, b).pvalue)
    assert "zero differences" in r.note


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="equal length"):
        paired_test([0.1, 0.2], [0.1])
