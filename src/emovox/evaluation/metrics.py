"""Metrics of the SER literature, and their mean ± std over folds and seeds (the one
place they are aggregated)."""

from __future__ import annotations

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """[true, predicted] counts."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return matrix


def per_class_recall(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Recall of each class; NaN for a class absent from ``y_true``."""
    matrix = confusion(y_true, y_pred, n_classes)
    support = matrix.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(matrix) / support, np.nan)


def uar(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int | None = None) -> float:
    """Unweighted average recall (= UA, balanced accuracy) over the classes present."""
    n = n_classes or int(max(np.max(y_true), np.max(y_pred))) + 1
    return float(np.nanmean(per_class_recall(y_true, y_pred, n)))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Mean F1 over the classes present in ``y_true`` or predicted."""
    matrix = confusion(y_true, y_pred, n_classes)
    tp = np.diag(matrix).astype(float)
    support, predicted = matrix.sum(1), matrix.sum(0)
    present = (support + predicted) > 0
    f1 = np.where(present, 2 * tp / np.maximum(support + predicted, 1), np.nan)
    return float(np.nanmean(f1))


def weighted_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """F1 per class weighted by its support (MELD's usual metric)."""
    matrix = confusion(y_true, y_pred, n_classes)
    tp = np.diag(matrix).astype(float)
    support, predicted = matrix.sum(1), matrix.sum(0)
    f1 = 2 * tp / np.maximum(support + predicted, 1)
    return float((f1 * support).sum() / max(support.sum(), 1))


def classification_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """UAR, WA, macro-F1 (and ROC-AUC for two classes) from class probabilities."""
    y_true = np.asarray(y_true)
    n_classes = proba.shape[1]
    y_pred = proba.argmax(1)
    out = {
        "uar": uar(y_true, y_pred, n_classes),
        "wa": float(np.mean(y_true == y_pred)),
        "macro_f1": macro_f1(y_true, y_pred, n_classes),
    }
    if n_classes == 2 and len(np.unique(y_true)) == 2:
        from sklearn.metrics import roc_auc_score  # sklearn takes 0.4 s to import

        out["auc"] = float(roc_auc_score(y_true, proba[:, 1]))
    return out


def ccc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Lin's concordance correlation coefficient."""
    t, p = np.asarray(y_true, float), np.asarray(y_pred, float)
    cov = np.mean((t - t.mean()) * (p - p.mean()))
    return float(2 * cov / (t.var() + p.var() + (t.mean() - p.mean()) ** 2))


def pearson(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    t, p = np.asarray(y_true, float), np.asarray(y_pred, float)
    if t.std() == 0 or p.std() == 0:
        return float("nan")
    return float(np.corrcoef(t, p)[0, 1])


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    return {
        "mae": float(np.mean(np.abs(np.asarray(y_true) - np.asarray(y_pred)))),
        "pearson": pearson(y_true, y_pred),
        "ccc": ccc(y_true, y_pred),
    }


def dimensional_metrics(y_true: np.ndarray, y_pred: np.ndarray,
                        dimensions: list[str]) -> dict[str, float]:
    """MAE, Pearson r and CCC per dimension (``arousal_ccc`` …) and their mean CCC (``ccc``)."""
    out: dict[str, float] = {}
    for d, name in enumerate(dimensions):
        for key, value in regression_metrics(y_true[:, d], y_pred[:, d]).items():
            out[f"{name}_{key}"] = value
    out["ccc"] = float(np.mean([out[f"{name}_ccc"] for name in dimensions]))
    return out


def summarise(per_run: list[dict[str, float | None]]) -> dict[str, dict]:
    """{metric: {mean, std, values}} over runs (folds × seeds), ``values`` in run order: the one
    aggregation over folds, behind metrics.json, the early-decision table and study summaries.

    A metric is undefined in a run that lacks it or where it is None or NaN (the recall of a
    class the fold's test speakers lack, AUC on a one-class test set, Pearson r of constant
    predictions): such runs are left out of its mean and std (NaN when no run defines it) and
    are None in ``values``."""
    out = {}
    for key in dict.fromkeys(k for run in per_run for k in run):  # first-seen order
        values = np.array([run.get(key) for run in per_run], dtype=float)  # None -> NaN
        defined = ~np.isnan(values)
        out[key] = {"mean": float(np.nanmean(values)) if defined.any() else float("nan"),
                    "std": float(np.nanstd(values)) if defined.any() else float("nan"),
                    "values": [float(v) if ok else None for v, ok in zip(values, defined,
                                                                          strict=True)]}
    return out


def format_summary(mean: float, std: float) -> str:
    """How every report prints a metric summarised over runs: ``0.512 ± 0.034``."""
    return f"{mean:.3f} ± {std:.3f}"
