"""Paired significance tests across folds: does variant A beat variant B on the same folds?

Each fold is one pair (A and B trained and tested on the same split). We report the mean
difference, Cohen's d_z (mean difference / sample std of the differences, ddof=1), a paired
t-test and a Wilcoxon signed-rank test (scipy). Below MIN_PAIRS pairs no p-value is given.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

MIN_PAIRS = 3  # with fewer folds a p-value says nothing; the note says so instead


@dataclass(frozen=True)
class PairedTest:
    n: int  # number of pairs (folds where both sides finished with a defined metric)
    mean_a: float | None
    mean_b: float | None
    mean_diff: float | None  # mean of (a - b)
    sd_diff: float | None  # sample std of (a - b), ddof=1
    cohen_dz: float | None  # mean_diff / sd_diff
    t_stat: float | None
    t_p: float | None
    wilcoxon_stat: float | None
    wilcoxon_p: float | None
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _num(x: float) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def paired_test(a, b, *, min_pairs: int = MIN_PAIRS) -> PairedTest:
    """Paired tests of a vs b (same length, index i = fold i). NaN pairs are dropped first."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired_test needs two 1-D arrays of equal length, got {a.shape} and {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    n = int(a.size)
    if n == 0:
        return PairedTest(0, None, None, None, None, None, None, None, None, None, "no paired folds")
    diff = a - b
    mean_a, mean_b, mean_diff = float(a.mean()), float(b.mean()), float(diff.mean())
    sd = float(diff.std(ddof=1)) if n > 1 else None
    if n < min_pairs:
        note = f"too few pairs (n={n} < {min_pairs}): no test"
        return PairedTest(n, mean_a, mean_b, mean_diff, sd, None, None, None, None, None, note)
    if np.allclose(diff, diff[0], rtol=0.0, atol=1e-12):
        # t is undefined and Wilcoxon has no non-zero ranks when every difference is the same.
        note = "all fold differences identical: no test"
        return PairedTest(n, mean_a, mean_b, mean_diff, sd, None, None, None, None, None, note)

    from scipy import stats  # deferred: scipy costs ~0.2 s to import and is only needed here

    t = stats.ttest_rel(a, b)
    w = stats.wilcoxon(a, b)
    w_stat, w_p = _num(w.statistic), _num(w.pvalue)
    note = "zero differences dropped by Wilcoxon (zero_method='wilcox')" if np.any(diff == 0) else ""
    return PairedTest(
        n=n,
        mean_a=mean_a,
        mean_b=mean_b,
        mean_diff=mean_diff,
        sd_diff=sd,
        cohen_dz=mean_diff / sd,
        t_stat=_num(t.statistic),
        t_p=_num(t.pvalue),
        wilcoxon_stat=w_stat,
        wilcoxon_p=w_p,
        note=note,
    )
