"""Paired comparisons of variant A against variant B on the same cross-validation folds.

One job per function; each is written so the arithmetic can be checked by hand.

The unit of pairing is the fold: A and B are trained and tested on the same split. A grid may run
several training seeds per fold (`seed` is a replicate axis, grid.report.settings); those seeds
are averaged within the fold *before* the folds are paired, so every test below sees one
difference per fold, d_j = mean over seeds of A on fold j - mean over seeds of B on fold j.

Why the plain paired t-test is not the headline: the k training sets of k-fold CV overlap
(by 75 % for k = 5), so fold differences are positively correlated and the plain t-test's
variance estimate sigma^2 / J is too small: it rejects too often (Dietterich 1998; Nadeau &
Bengio 2003). It stays in the tables as a labelled column only.

- `corrected_resampled_t`: Nadeau & Bengio (2003), "Inference for the generalization error",
  Machine Learning 52:239-281, in the form Bouckaert & Frank (2004, PAKDD) give for r repeats of
  k-fold CV: J = k * r differences, mean d, sample variance s^2 (ddof=1),
      t = d / sqrt((1/J + n_test/n_train) * s^2),   df = J - 1,   two-sided p.
  The function takes the (r, k) matrix of differences and the ratio n_test/n_train.
- `bayesian_correlated_t`: Benavoli, Corani, Demsar & Zaffalon (2017), "Time for a change: a
  tutorial for comparing multiple classifiers through Bayesian analysis", JMLR 18(77). The
  posterior of the mean difference is Student t with df = J - 1, location d and scale
      sqrt((1/J + rho/(1 - rho)) * s^2),   rho = n_test / (n_test + n_train)
  (rho/(1 - rho) = n_test/n_train: the same correction as above). With a region of practical
  equivalence (ROPE) of +-r it gives P(Delta > r), P(|Delta| <= r) and P(Delta < -r).
- `holm`: Holm's (1979) step-down adjustment within one family of comparisons.
- `plain_paired_t`, `wilcoxon_p`: kept as labelled, secondary columns. `min_wilcoxon_p` is the
  smallest two-sided p the signed-rank test can give with n pairs (2 / 2^n: 0.0625 for n = 5),
  so a table leaves the Wilcoxon column out when no row could reach 0.05.

Choice (also in docs/paper-notes.md, "Statistics"): seeds trained on the same partition are not
Bouckaert-Frank repeats. Those are re-partitions of the data, each giving k new test sets; seeds
reuse the same k test sets, so counting them as J = k * r independent-ish differences would
invent test sets that do not exist. Seeds are averaged within the fold instead (which lowers the
variance of each d_j without changing its correlation structure) and the tests run with r = 1,
J = k. The general (r, k) form is implemented and tested for grids that do re-partition.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

MIN_PAIRS = 3  # with fewer folds a p-value says nothing; the note says so instead
DEFAULT_ROPE = 1.0  # percentage points of UA: smaller differences are called practically equivalent
ALPHA = 0.05  # the level a Wilcoxon column must be able to reach to be shown
WILCOXON_ZEROS = "zero differences dropped by Wilcoxon (zero_method='wilcox')"  # a note, only with its column


@dataclass(frozen=True)
class CorrectedT:
    t: float
    df: int
    p: float  # two-sided


@dataclass(frozen=True)
class RopeProbabilities:
    better: float  # P(Delta > rope): A above B by more than the ROPE
    equivalent: float  # P(|Delta| <= rope)
    worse: float  # P(Delta < -rope)


def _moments(diffs) -> tuple[int, float, float]:
    """(J, mean, sample variance ddof=1) of the differences: an (r, k) matrix (r repeats of k
    folds) or a 1-D vector. Differences equal to 1e-12 (float noise of a - b) have variance 0."""
    d = np.asarray(diffs, dtype=np.float64)
    if d.ndim not in (1, 2) or d.size < 2:
        raise ValueError(f"need a vector or an (r, k) matrix of at least 2 differences, got shape {d.shape}")
    d = d.ravel()
    var = 0.0 if np.ptp(d) <= 1e-12 else float(d.var(ddof=1))
    return d.size, float(d.mean()), var


def corrected_resampled_t(diffs, test_train_ratio: float) -> CorrectedT | None:
    """Nadeau-Bengio corrected resampled t-test (Bouckaert-Frank form for r x k-fold CV).

    `diffs`: the (r, k) matrix of differences A - B (or a 1-D vector: r = 1); `test_train_ratio`:
    n_test / n_train. None when every difference is the same (s^2 = 0: t undefined)."""
    j, mean, var = _moments(diffs)
    if var == 0.0:
        return None
    t = mean / math.sqrt((1.0 / j + test_train_ratio) * var)
    from scipy import stats  # deferred: scipy costs ~0.2 s to import and is only needed here

    return CorrectedT(t=t, df=j - 1, p=float(2.0 * stats.t.sf(abs(t), j - 1)))


def bayesian_correlated_t(diffs, test_train_ratio: float, rope: float) -> RopeProbabilities:
    """Benavoli et al. (2017) correlated Bayesian t-test: posterior probabilities of A - B being
    above, inside and below the ROPE [-rope, rope].

    With s^2 = 0 (every difference equal) the posterior is a point mass at the mean difference:
    each probability is 0 or 1."""
    j, mean, var = _moments(diffs)
    if var == 0.0:
        return RopeProbabilities(better=float(mean > rope), equivalent=float(abs(mean) <= rope),
                                 worse=float(mean < -rope))
    rho = test_train_ratio / (1.0 + test_train_ratio)  # = n_test / (n_test + n_train)
    scale = math.sqrt((1.0 / j + rho / (1.0 - rho)) * var)
    from scipy import stats

    worse = float(stats.t.cdf(-rope, j - 1, loc=mean, scale=scale))
    better = float(stats.t.sf(rope, j - 1, loc=mean, scale=scale))
    return RopeProbabilities(better=better, equivalent=1.0 - better - worse, worse=worse)


def plain_paired_t(diffs) -> float | None:
    """Two-sided p of the ordinary paired t-test (t = mean / (s / sqrt(n)), df = n - 1), which
    treats the folds as independent: anti-conservative under CV. None when s^2 = 0."""
    j, mean, var = _moments(diffs)
    if var == 0.0:
        return None
    t = mean / math.sqrt(var / j)
    from scipy import stats

    return float(2.0 * stats.t.sf(abs(t), j - 1))


def min_wilcoxon_p(n: int) -> float:
    """Smallest two-sided p of an exact Wilcoxon signed-rank test on n non-zero pairs: all signs
    alike, 2 of the 2^n equally likely sign patterns."""
    return 2.0 / 2.0**n


def wilcoxon_can_reach(n: int, alpha: float = ALPHA) -> bool:
    return n > 0 and min_wilcoxon_p(n) <= alpha


def wilcoxon_p(a: np.ndarray, b: np.ndarray) -> float | None:
    """Two-sided p of scipy's Wilcoxon signed-rank test (zero differences dropped)."""
    from scipy import stats

    p = float(stats.wilcoxon(a, b).pvalue)
    return None if math.isnan(p) else p


def holm(pvalues) -> list[float | None]:
    """Holm step-down adjusted p-values, in the input order; None (no test) stays None and does
    not count in the family size m. Sorted ascending, the i-th (1-based) of m gets
    max over j <= i of min(1, (m - j + 1) * p_(j)): non-decreasing in rank and capped at 1."""
    tested = [(p, i) for i, p in enumerate(pvalues) if p is not None and not math.isnan(p)]
    m = len(tested)
    adjusted: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(tested)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class PairedTest:
    n: int  # pairs: folds where both sides finished with a defined metric
    mean_a: float | None
    mean_b: float | None
    mean_diff: float | None  # mean of (a - b)
    sd_diff: float | None  # fold sd: sample std of (a - b) over folds, ddof=1
    cohen_dz: float | None  # mean_diff / sd_diff
    t_corr: float | None  # corrected resampled t (Nadeau-Bengio), r = 1
    p_corr: float | None  # its two-sided p: the headline p
    p_better: float | None  # Bayesian correlated t: P(Delta > rope)
    p_equiv: float | None  # P(|Delta| <= rope)
    p_worse: float | None  # P(Delta < -rope)
    p_plain_t: float | None  # plain paired t-test (anti-conservative)
    p_wilcoxon: float | None
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def paired_test(a, b, *, test_train_ratio: float, rope: float = DEFAULT_ROPE,
                min_pairs: int = MIN_PAIRS) -> PairedTest:
    """Every test of a vs b (same length, index i = fold i, seeds already averaged). NaN pairs
    are dropped first; below `min_pairs` pairs only the means are given."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired_test needs two 1-D arrays of equal length, got {a.shape} and {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    n = int(a.size)
    if n == 0:
        return PairedTest(0, *[None] * 12, note="no paired folds")
    diff = a - b
    means = (float(a.mean()), float(b.mean()), float(diff.mean()))
    sd = float(diff.std(ddof=1)) if n > 1 else None
    if n < min_pairs:
        return PairedTest(n, *means, sd, *[None] * 8, note=f"too few pairs (n={n} < {min_pairs}): no test")
    bayes = bayesian_correlated_t(diff, test_train_ratio, rope)
    corrected = corrected_resampled_t(diff, test_train_ratio)
    if corrected is None:
        # t is undefined and Wilcoxon has no non-zero ranks; the Bayesian posterior is a point mass.
        return PairedTest(n, *means, sd, None, None, None, bayes.better, bayes.equivalent, bayes.worse, None, None,
                          note="all fold differences identical: no t or Wilcoxon test")
    return PairedTest(
        n, *means, sd, cohen_dz=means[2] / sd, t_corr=corrected.t, p_corr=corrected.p,
        p_better=bayes.better, p_equiv=bayes.equivalent, p_worse=bayes.worse,
        p_plain_t=plain_paired_t(diff), p_wilcoxon=wilcoxon_p(a, b),
        note=WILCOXON_ZEROS if np.any(diff == 0) else "",
    )


# -- secondary evidence: a paired bootstrap over utterances ---------------------------------------

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0  # fixed: the same predictions give the same interval on every machine
BOOTSTRAP_LEVEL = 0.95


@dataclass(frozen=True)
class FoldPredictions:
    """One fold's test predictions of variants A and B: the true labels of its n utterances, and
    each side's predictions per seed ([S, n], seeds paired: row s of A and of B share a seed)."""

    true: np.ndarray  # [n] class index
    pred_a: np.ndarray  # [S, n]
    pred_b: np.ndarray  # [S, n]


def weighted_ua(true: np.ndarray, pred: np.ndarray, weights: np.ndarray, n_classes: int) -> np.ndarray:
    """UA (mean recall over the classes present) of `pred` [S, n] against `true` [n] with each
    utterance counted `weights` [B, n] times: [B, S]. Weights of whole counts are a resample."""
    hits = np.zeros((weights.shape[0], pred.shape[0], n_classes))
    totals = np.zeros((weights.shape[0], 1, n_classes))
    for c in range(n_classes):
        in_class = true == c
        totals[:, 0, c] = weights @ in_class
        hits[:, :, c] = weights @ ((pred == c) & in_class).T
    present = totals > 0
    recall = np.divide(hits, totals, out=np.zeros_like(hits), where=present)
    return recall.sum(axis=2) / present.sum(axis=2)


def paired_bootstrap_ua(folds: list[FoldPredictions], n_classes: int, *, resamples: int = BOOTSTRAP_RESAMPLES,
                        seed: int = BOOTSTRAP_SEED, level: float = BOOTSTRAP_LEVEL) -> tuple[float, float, float]:
    """(ΔUA, low, high) in percentage points: UA of A minus UA of B over the utterances of all
    folds pooled (each seed's UA, then the mean over seeds), and a percentile interval from
    resampling utterances with replacement within each fold, the same resample for A and B (paired)
    and for every seed. Secondary evidence: it treats the test utterances as the only source of
    variation, not the training sets, so it is narrower than the fold-level tests."""
    rng = np.random.default_rng(seed)
    true = np.concatenate([f.true for f in folds])
    pred_a = np.concatenate([f.pred_a for f in folds], axis=1)
    pred_b = np.concatenate([f.pred_b for f in folds], axis=1)
    # One multinomial draw per fold: how often each of its utterances is drawn in each resample.
    weights = np.concatenate([rng.multinomial(len(f.true), np.full(len(f.true), 1 / len(f.true)), size=resamples)
                              for f in folds], axis=1).astype(np.float64)

    def delta(w: np.ndarray) -> np.ndarray:  # [B]: ΔUA per resample, mean over seeds
        return (weighted_ua(true, pred_a, w, n_classes) - weighted_ua(true, pred_b, w, n_classes)).mean(axis=1)

    point = float(delta(np.ones((1, len(true))))[0])
    deltas = delta(weights)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(deltas, [tail, 100 - tail])
    return 100 * point, 100 * float(low), 100 * float(high)


# -- expected best validation score against budget ------------------------------------------------


def expected_max(values, n: int) -> float:
    """Dodge et al. (2019, EMNLP), "Show Your Work": the expected maximum of n configurations drawn
    with replacement from the N observed scores `values` (each equally likely),
        E[max_n] = sum_i v_(i) * ((i/N)^n - ((i-1)/N)^n),   v_(1) <= ... <= v_(N),
    i.e. the expected best validation score had the search been given n draws instead of N."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    if v.size == 0 or n < 1:
        raise ValueError(f"expected_max needs scores and n >= 1 (got {v.size} scores, n={n})")
    i = np.arange(1, v.size + 1, dtype=np.float64)
    return float(np.sum(v * ((i / v.size) ** n - ((i - 1) / v.size) ** n)))
