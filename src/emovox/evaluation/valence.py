"""Metrics of rated valence/arousal on the 1–5 scale, as in Chang & Scherer (2017).

Labels are *fuzzy*: a distribution over the five points (a mean rating of 4.5 is half 4, half
5). An utterance whose label is split counts as correct when either side is predicted. Unweighted
accuracy generalises to fuzzy labels by letting each utterance add its label mass to each class's
support: recall_c = Σ mass_ic · correct_i / Σ mass_ic, UA = mean over classes with support (for
one-hot labels this is the usual UA). The 3-class view pools 1–2 (negative), 3 (neutral) and
4–5 (positive) in both labels and predicted probabilities.
"""

from __future__ import annotations

import numpy as np

POINTS = np.arange(1, 6, dtype=np.float64)
#: 5-point scale → negative / neutral / positive.
POOL3 = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]], dtype=np.float64)
CLASSES3 = ("negative", "neutral", "positive")


def fuzzy_label(mean: float) -> np.ndarray:
    """A mean rating on 1–5 → a distribution over the five points, split linearly between the
    two nearest points (4.5 → [0, 0, 0, .5, .5]; 3 → one-hot on 3)."""
    x = float(np.clip(mean, 1.0, 5.0))
    low = int(np.floor(x))
    out = np.zeros(5)
    if low >= 5:
        out[4] = 1.0
        return out
    frac = x - low
    out[low - 1] = 1.0 - frac
    out[low] += frac
    return out


def ratings_label(ratings: list[float]) -> np.ndarray:
    """Several annotators' ratings → the fuzzy label of their mean (the paper's rule)."""
    return fuzzy_label(float(np.mean(ratings)))


def fuzzy_ua(labels: np.ndarray, pred: np.ndarray) -> float:
    """UA of hard predictions ``pred`` [N] against fuzzy ``labels`` [N, C] (see module doc)."""
    labels = np.asarray(labels, dtype=np.float64)
    correct = labels[np.arange(len(pred)), pred] > 0
    support = labels.sum(0)
    hits = (labels * correct[:, None]).sum(0)
    present = support > 0
    return float(np.mean(hits[present] / support[present]))


def fuzzy_confusion(labels: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """[true, predicted] with each utterance's label mass spread over its true rows."""
    matrix = np.zeros((n_classes, n_classes))
    for row, p in zip(np.asarray(labels, dtype=np.float64), pred, strict=True):
        matrix[:, p] += row
    return matrix


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def rating_metrics(labels: np.ndarray, proba: np.ndarray, means: np.ndarray) -> dict:
    """5-class UA, 3-class UA (pooled from the 5-class output), Pearson r of the expected value
    Σ i·p_i against the mean rating, and both confusion matrices (as lists)."""
    labels, proba = np.asarray(labels, float), np.asarray(proba, float)
    pred5 = proba.argmax(1)
    labels3, proba3 = labels @ POOL3, proba @ POOL3
    pred3 = proba3.argmax(1)
    return {
        "ua5": fuzzy_ua(labels, pred5),
        "ua3": fuzzy_ua(labels3, pred3),
        "pearson_r": pearson(proba @ POINTS, means),
        "confusion5": fuzzy_confusion(labels, pred5, 5).tolist(),
        "confusion3": fuzzy_confusion(labels3, pred3, 3).tolist(),
    }
