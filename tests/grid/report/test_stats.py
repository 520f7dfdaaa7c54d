"""grid.report.stats against hand-worked arithmetic and independent implementations (scipy,
baycomp's correlated t-test, statsmodels' Holm)."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from grid.report.stats import (
    MIN_PAIRS,
    bayesian_correlated_t,
    corrected_resampled_t,
    expected_max,
    holm,
    min_wilcoxon_p,
    paired_test,
    plain_paired_t,
    wilcoxon_can_reach,
)

A = [74.0, 78.0, 71.0, 80.0, 76.0]  # percent, one value per fold (seeds already averaged)
B = [70.0, 75.0, 72.0, 74.0, 71.0]
RATIO = 1 / 4  # n_test / n_train of 5-fold CV: 1/(k - 1)


def test_corrected_t_by_hand():
    # d = A - B = 4, 3, -1, 6, 5: mean 3.4; deviations 0.6, -0.4, -4.4, 2.6, 1.6
    # s^2 = (0.36 + 0.16 + 19.36 + 6.76 + 2.56) / 4 = 29.2 / 4 = 7.3
    # corrected: t = 3.4 / sqrt((1/5 + 1/4) * 7.3) = 3.4 / sqrt(3.285) = 3.4 / 1.812457 = 1.875907, df = 4
    # plain:     t = 3.4 / sqrt(7.3 / 5) = 3.4 / 1.208305 = 2.813860
    d = np.array(A) - np.array(B)
    r = corrected_resampled_t(d, RATIO)
    assert (r.t, r.df) == (pytest.approx(1.875907, abs=1e-6), 4)
    assert r.p == pytest.approx(2 * sps.t.sf(1.875907, 4), abs=1e-6)
    assert plain_paired_t(d) == pytest.approx(2 * sps.t.sf(2.813860, 4), abs=1e-6)
    assert plain_paired_t(d) == pytest.approx(sps.ttest_rel(A, B).pvalue)  # and scipy agrees
    assert r.p > plain_paired_t(d)  # the correction widens the variance: a larger p


def test_corrected_t_general_form_counts_every_repeat():
    # r = 2 repeats of k = 5 folds: J = 10, the ratio is unchanged (the folds' sizes).
    d = np.array([[4.0, 3.0, -1.0, 6.0, 5.0], [2.0, 1.0, 0.0, 3.0, 4.0]])
    mean, var = d.mean(), d.var(ddof=1)  # 2.7, 4.9
    assert (mean, var) == (pytest.approx(2.7), pytest.approx(49 / 10))
    r = corrected_resampled_t(d, RATIO)
    assert r.df == 9 and r.t == pytest.approx(2.7 / math.sqrt((1 / 10 + 1 / 4) * 4.9))
    assert corrected_resampled_t(d, RATIO).t == corrected_resampled_t(d.ravel(), RATIO).t


@pytest.mark.parametrize("runs", [1, 2])
@pytest.mark.parametrize("rope", [0.5, 1.0, 3.0])
def test_against_baycomp_correlated_t_test(runs, rope):
    baycomp = pytest.importorskip("baycomp")
    rng = np.random.default_rng(runs)
    a = np.array(A * runs) + rng.normal(0, 1, 5 * runs)
    b = np.array(B * runs)
    d = (a - b).reshape(runs, 5)
    # baycomp takes (x, y) and models y - x: ours is A - B, so x = B, y = A; its right = A better.
    left, inside, right = baycomp.two_on_single(b, a, rope=rope, runs=runs)
    ours = bayesian_correlated_t(d, RATIO, rope)
    assert (ours.worse, ours.equivalent, ours.better) == (
        pytest.approx(left), pytest.approx(inside), pytest.approx(right))
    # The frequentist p from the same Student t baycomp builds (location, variance, df).
    post = baycomp.CorrelatedTTest(b, a, rope=rope, runs=runs)
    p = 2 * sps.t.sf(abs(post.mean) / math.sqrt(post.var), post.df)
    assert corrected_resampled_t(d, RATIO).p == pytest.approx(p)
    assert corrected_resampled_t(d, RATIO).df == post.df


def test_bayesian_degenerate_variance_is_a_point_mass():
    above = bayesian_correlated_t([2.0, 2.0, 2.0], RATIO, 1.0)
    assert (above.better, above.equivalent, above.worse) == (1.0, 0.0, 0.0)
    inside = bayesian_correlated_t([0.5, 0.5, 0.5, 0.5], RATIO, 1.0)
    assert (inside.better, inside.equivalent, inside.worse) == (0.0, 1.0, 0.0)
    below = bayesian_correlated_t([-3.0, -3.0, -3.0], RATIO, 1.0)
    assert (below.better, below.equivalent, below.worse) == (0.0, 0.0, 1.0)
    assert corrected_resampled_t([2.0, 2.0, 2.0], RATIO) is None and plain_paired_t([2.0, 2.0]) is None


def test_holm_by_hand():
    # m = 4 tested (None is not a test). Sorted: 0.005, 0.01, 0.03, 0.04
    # times m - j + 1 = 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04 -> running max: 0.02, 0.03, 0.06, 0.06
    got = holm([0.01, None, 0.04, 0.03, 0.005])
    assert got == [pytest.approx(0.03), None, pytest.approx(0.06), pytest.approx(0.06), pytest.approx(0.02)]
    assert holm([0.5, 0.6]) == [1.0, 1.0]  # 2 * 0.5 = 1, capped; 0.6 -> max(1, 0.6)
    assert holm([]) == [] and holm([None]) == [None]


def test_holm_against_statsmodels():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = rng.uniform(0, 0.2, size=rng.integers(1, 12))
        p[rng.integers(0, p.size)] = p[0]  # a tie
        expected = multitest.multipletests(p, method="holm")[1]
        got = holm(list(p))
        assert got == pytest.approx(list(expected))
        ranked = [got[i] for i in np.argsort(p, kind="stable")]
        assert all(x <= y for x, y in zip(ranked, ranked[1:])) and max(got) <= 1.0


def test_smallest_wilcoxon_p():
    assert min_wilcoxon_p(5) == 0.0625 and min_wilcoxon_p(6) == 0.03125
    assert not wilcoxon_can_reach(5) and wilcoxon_can_reach(6) and not wilcoxon_can_reach(0)
    # scipy's exact test on 5 differences of one sign gives exactly that smallest p
    assert sps.wilcoxon([1.0, 2.0, 3.0, 4.0, 5.0]).pvalue == pytest.approx(min_wilcoxon_p(5))


def test_paired_test_gathers_every_test():
    r = paired_test(A, B, test_train_ratio=RATIO, rope=1.0)
    d = np.array(A) - np.array(B)
    assert r.n == 5 and r.mean_diff == pytest.approx(3.4) and r.sd_diff == pytest.approx(math.sqrt(7.3))
    assert r.cohen_dz == pytest.approx(3.4 / math.sqrt(7.3))
    assert (r.t_corr, r.p_corr) == (pytest.approx(1.875907, abs=1e-6), corrected_resampled_t(d, RATIO).p)
    assert r.p_plain_t == pytest.approx(sps.ttest_rel(A, B).pvalue)
    assert r.p_wilcoxon == pytest.approx(sps.wilcoxon(A, B).pvalue)
    bayes = bayesian_correlated_t(d, RATIO, 1.0)
    assert (r.p_better, r.p_equiv, r.p_worse) == (bayes.better, bayes.equivalent, bayes.worse)
    assert r.p_better + r.p_equiv + r.p_worse == pytest.approx(1.0)
    assert r.note == ""


def test_nan_pairs_are_dropped_before_testing():
    r = paired_test(A + [float("nan")], B + [50.0], test_train_ratio=RATIO)
    assert r.n == 5 and r.p_plain_t == pytest.approx(sps.ttest_rel(A, B).pvalue)


def test_too_few_pairs_gives_no_p_value():
    r = paired_test(A[:2], B[:2], test_train_ratio=RATIO)
    assert r.n == 2 < MIN_PAIRS
    assert r.p_corr is None and r.p_plain_t is None and r.p_better is None and r.cohen_dz is None
    assert "too few pairs" in r.note and r.mean_diff == pytest.approx(3.5)
    empty = paired_test([], [], test_train_ratio=RATIO)
    assert empty.n == 0 and empty.mean_diff is None and "no paired" in empty.note


def test_identical_differences_give_no_t_but_a_point_mass():
    r = paired_test([70.0, 80.0, 90.0], [60.0, 70.0, 80.0], test_train_ratio=RATIO)
    assert r.p_corr is None and r.p_plain_t is None and r.p_wilcoxon is None
    assert (r.p_better, r.p_equiv, r.p_worse) == (1.0, 0.0, 0.0)
    assert "identical" in r.note


def test_zero_differences_are_named():
    a, b = [70.0, 80.0, 90.0, 50.0], [70.0, 70.0, 80.0, 60.0]
    r = paired_test(a, b, test_train_ratio=RATIO)
    assert r.p_wilcoxon == pytest.approx(sps.wilcoxon(a, b).pvalue)
    assert "zero differences" in r.note


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="equal length"):
        paired_test([0.1, 0.2], [0.1], test_train_ratio=RATIO)


# -- the paired bootstrap of pooled ΔUA -----------------------------------------------------------


def test_weighted_ua_equals_the_ua_of_the_resample_it_stands_for():
    from grid.report.stats import weighted_ua
    from hcld.metrics import unweighted_accuracy

    rng = np.random.default_rng(3)
    true = rng.integers(0, 4, 40)
    pred = rng.integers(0, 4, (2, 40))
    counts = rng.multinomial(40, np.full(40, 1 / 40), size=5)
    got = weighted_ua(true, pred, counts.astype(float), 4)
    for b in range(5):
        rows = np.repeat(np.arange(40), counts[b])  # the resample itself, utterance by utterance
        for s in range(2):
            assert got[b, s] == pytest.approx(unweighted_accuracy(true[rows], pred[s, rows]), abs=1e-12)


def test_paired_bootstrap_pools_folds_averages_seeds_and_is_deterministic():
    from grid.report.stats import FoldPredictions, paired_bootstrap_ua
    from hcld.metrics import unweighted_accuracy

    rng = np.random.default_rng(0)
    folds = []
    for n in (30, 34):
        true = rng.integers(0, 4, n)
        better = np.where(rng.random((2, n)) < 0.8, true, rng.integers(0, 4, (2, n)))
        worse = np.where(rng.random((2, n)) < 0.4, true, rng.integers(0, 4, (2, n)))
        folds.append(FoldPredictions(true, better, worse))
    diff, low, high = paired_bootstrap_ua(folds, 4, resamples=500)
    true = np.concatenate([f.true for f in folds])
    by_hand = np.mean([unweighted_accuracy(true, np.concatenate([f.pred_a[s] for f in folds]))
                       - unweighted_accuracy(true, np.concatenate([f.pred_b[s] for f in folds])) for s in range(2)])
    assert diff == pytest.approx(100 * by_hand)
    assert 0 < low < diff < high  # a clear gain: the interval excludes 0
    assert paired_bootstrap_ua(folds, 4, resamples=500) == (diff, low, high)
    same = [FoldPredictions(f.true, f.pred_a, f.pred_a.copy()) for f in folds]
    assert paired_bootstrap_ua(same, 4, resamples=200) == (0.0, 0.0, 0.0)  # paired: no difference, no width


# -- expected maximum against budget (Dodge et al. 2019) --------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_expected_max_equals_the_mean_over_every_draw_with_replacement(n):
    import itertools

    scores = [0.61, 0.55, 0.70, 0.55, 0.58]  # a tie included
    every = [max(draws) for draws in itertools.product(scores, repeat=n)]  # all 5^n equally likely draws
    assert expected_max(scores, n) == pytest.approx(sum(every) / len(every), rel=1e-12)


def test_expected_max_starts_at_the_mean_and_rises_to_the_best():
    scores = [0.2, 0.9, 0.5]
    assert expected_max(scores, 1) == pytest.approx(np.mean(scores))
    values = [expected_max(scores, n) for n in range(1, 60)]
    assert all(b >= a for a, b in zip(values, values[1:]))
    assert values[-1] == pytest.approx(0.9, abs=1e-9)
    with pytest.raises(ValueError):
        expected_max([], 1)
