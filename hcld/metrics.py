"""Evaluation metrics: WA, UA, confusion matrices, and the decoupling probes.

WA = overall accuracy; UA = mean over classes present in y_true of the per-class recall (the SER
convention). The decoupling probes go beyond the paper: a linear classifier trained on frozen
embeddings of the training fold, evaluated on the test fold. A speaker probe on X_e (and an emotion
probe on X_s) that scores low means the embedding carries little of the other task's information.
Probe scores are UA (balanced accuracy), so chance is 1/K whatever the class balance.
"""

from __future__ import annotations

import math

import numpy as np

# The metric names of a trial's result, in the order every table shows them: the paper's Table II
# accuracies, then the decoupling probes. Every other module reads them from here.
ACCURACIES: tuple[str, ...] = ("emo_wa", "emo_ua", "spk_wa", "spk_ua")
PROBES: tuple[str, ...] = ("probe_spk_from_xe", "probe_emo_from_xs")
METRICS: tuple[str, ...] = (*ACCURACIES, *PROBES)

PROBE_HOLDOUT = 0.2  # share of each training speaker's utterances held out when test speakers are unseen


def weighted_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float((y_true == y_pred).mean()) if len(y_true) else math.nan


def unweighted_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    classes = np.unique(y_true)
    if len(classes) == 0:
        return math.nan
    return float(np.mean([(y_pred[y_true == c] == c).mean() for c in classes]))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> list[list[int]]:
    """Rows = true class, columns = predicted class."""
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return m.tolist()


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> float:
    """UA of a multinomial logistic regression (standardised inputs, lbfgs: deterministic)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    if len(test_y) == 0 or len(np.unique(train_y)) < 2:
        return math.nan
    scaler = StandardScaler().fit(train_x)
    clf = LogisticRegression(max_iter=2000, C=1.0)
    clf.fit(scaler.transform(train_x), train_y)
    return unweighted_accuracy(test_y, clf.predict(scaler.transform(test_x)))


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
