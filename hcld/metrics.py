"""Evaluation metrics: WA, UA, confusion matrices, and the decoupling probes.

WA = overall accuracy; UA = mean over classes present in y_true of the per-class recall (the SER
convention); macro-F1 = mean per-class F1 over the classes present in y_true or y_pred
(scikit-learn's `f1_score(average="macro")`, what EmoBox reports).

The decoupling probes go beyond the paper: a linear classifier trained on frozen embeddings of
the training fold, evaluated on the test fold. A speaker probe on X_e (and an emotion probe on X_s)
that scores low means the embedding carries little of the other task's information.
Probe scores are UA (balanced accuracy), so chance is 1/K whatever the class balance.

Probes are machine-independent by construction: the same embeddings give the same score on any
machine, whatever its thread count. The inputs are cast to float64 and standardised with the
training rows' mean and standard deviation (computed in float64; a zero-variance column is left at
0), then rounded to PROBE_DECIMALS decimals, so last-bit differences of the upstream float32
embeddings do not reach the solver. The classifier is a fixed one (multinomial logistic
regression, L2, C = PROBE_C, solver PROBE_SOLVER, tol PROBE_TOL, at most PROBE_MAX_ITER
iterations: a strictly convex problem solved tightly, so its optimum does not depend on the path),
fit and applied with the BLAS pinned to one thread (threadpoolctl), so no reduction order depends
on the machine's core count. (The demo grid's probes differed by up to 0.2 pp between two machines
while every other metric was equal; docs/paper-notes.md.)
"""

from __future__ import annotations

import math

import numpy as np

# The metric names of a trial's result, in the order every table shows them: the paper's Table II
# accuracies, then the decoupling probes. Every other module reads them from here.
ACCURACIES: tuple[str, ...] = ("emo_wa", "emo_ua", "spk_wa", "spk_ua")
EMOTION_F1 = "emo_f1"  # macro-F1 of the emotion head: beside WA and UA, as EmoBox reports
PROBES: tuple[str, ...] = ("probe_spk_from_xe", "probe_emo_from_xs")
METRICS: tuple[str, ...] = (*ACCURACIES, EMOTION_F1, *PROBES)
# The reported epoch's emotion scores on the validation part held out of the outer training set
# (TrialConfig.selection=best_val; NaN with final). Not test metrics, so not in METRICS.
VALIDATION_METRICS: tuple[str, ...] = ("val_emo_wa", "val_emo_ua")

PROBE_HOLDOUT = 0.2  # share of each training speaker's utterances held out when test speakers are unseen
# The probe classifier, fixed (module docstring): change one and every probe number changes.
PROBE_SOLVER = "lbfgs"
PROBE_C = 1.0
PROBE_TOL = 1e-6  # lbfgs' gradient tolerance (scikit-learn's default 1e-4 stops short of the optimum)
PROBE_MAX_ITER = 5000
PROBE_DECIMALS = 6  # standardised inputs are rounded to this many decimals before fitting


def weighted_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float((y_true == y_pred).mean()) if len(y_true) else math.nan


def unweighted_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    classes = np.unique(y_true)
    if len(classes) == 0:
        return math.nan
    return float(np.mean([(y_pred[y_true == c] == c).mean() for c in classes]))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean of 2TP / (2TP + FP + FN) over the classes that occur in y_true or y_pred."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    classes = np.union1d(y_true, y_pred)
    if len(classes) == 0:
        return math.nan
    f1 = []
    for c in classes:
        tp = np.sum((y_true == c) & (y_pred == c))
        wrong = np.sum((y_true == c) != (y_pred == c))  # FP + FN
        f1.append(2 * tp / (2 * tp + wrong))
    return float(np.mean(f1))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> list[list[int]]:
    """Rows = true class, columns = predicted class."""
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return m.tolist()


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> float:
    """UA on (test_x, test_y) of the fixed probe classifier fit on (train_x, train_y): the same
    number for the same embeddings on any machine (module docstring)."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    if len(test_y) == 0 or len(np.unique(train_y)) < 2:
        return math.nan
    fit_x, score_x = probe_inputs(train_x, test_x)
    clf = LogisticRegression(solver=PROBE_SOLVER, C=PROBE_C, tol=PROBE_TOL, max_iter=PROBE_MAX_ITER)
    with threadpool_limits(limits=1):
        clf.fit(fit_x, np.asarray(train_y))
        predicted = clf.predict(score_x)
    return unweighted_accuracy(test_y, predicted)


def probe_inputs(train_x: np.ndarray, test_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both sets standardised by the training rows' float64 mean and std (a zero-variance column
    becomes 0), rounded to PROBE_DECIMALS decimals: what the probe classifier sees."""
    train_x, test_x = np.asarray(train_x, dtype=np.float64), np.asarray(test_x, dtype=np.float64)
    mean = train_x.mean(axis=0)
    std = train_x.std(axis=0)
    scale = np.where(std > 0, std, 1.0)

    def standardise(x: np.ndarray) -> np.ndarray:
        z = (x - mean) / scale
        z[:, std == 0] = 0.0
        return np.round(z, PROBE_DECIMALS) + 0.0  # + 0.0: -0.0 becomes 0.0

    return standardise(train_x), standardise(test_x)


def holdout_split(labels: np.ndarray, share: float = PROBE_HOLDOUT, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Positions (fit, held-out) with `share` of every label's rows held out (at least one when a
    label has >= 2 rows), seeded: the probe's test set when the real test speakers are unseen."""
    rng = np.random.default_rng(seed)
    fit, held = [], []
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(share * len(rows))) if len(rows) >= 2 else 0
        k = max(k, 1) if len(rows) >= 2 else 0
        held.extend(rows[:k])
        fit.extend(rows[k:])
    return np.sort(np.array(fit, dtype=np.int64)), np.sort(np.array(held, dtype=np.int64))


def speaker_probe(
    train_x: np.ndarray, train_spk: np.ndarray, test_x: np.ndarray, test_spk: np.ndarray, *, seen: bool, seed: int = 0
) -> float:
    """Speaker probe UA. `seen`: the test speakers occur in training (random5) -> fit on train,
    score on test. Unseen (loso): fit and score on a seeded held-out split of the training fold."""
    if seen:
        return linear_probe(train_x, train_spk, test_x, test_spk)
    fit, held = holdout_split(train_spk, seed=seed)
    return linear_probe(train_x[fit], train_spk[fit], train_x[held], train_spk[held])
