from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    mean_absolute_error,
    recall_score,
    roc_auc_score,
)

from emovox.evaluation.metrics import (
    ccc,
    classification_metrics,
    confusion,
    format_summary,
    per_class_recall,
    regression_metrics,
    summarise,
)


@pytest.mark.parametrize("seed", range(5))
def test_against_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, 200)
    proba = rng.dirichlet(np.ones(4), 200)
    pred = proba.argmax(1)
    m = classification_metrics(y, proba)
    assert m["uar"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["wa"] == pytest.approx(accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    np.testing.assert_allclose(per_class_recall(y, pred, 4), recall_score(y, pred, average=None))
    np.testing.assert_array_equal(confusion(y, pred, 4), confusion_matrix(y, pred))
    assert "auc" not in m


def test_binary_auc():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 100)
    proba = rng.dirichlet(np.ones(2), 100)
    assert classification_metrics(y, proba)["auc"] == pytest.approx(roc_auc_score(y, proba[:, 1]))


def test_regression_metrics():
    rng = np.random.default_rng(0)
    t = rng.normal(size=100)
    p = 0.5 * t + rng.normal(scale=0.3, size=100)
    m = regression_metrics(t, p)
    assert m["mae"] == pytest.approx(mean_absolute_error(t, p))
    assert m["pearson"] == pytest.approx(np.corrcoef(t, p)[0, 1])
    assert ccc(t, t) == pytest.approx(1.0)
    assert ccc(t, t + 1) < 1.0


def test_summarise():
    s = summarise([{"uar": 0.5, "wa": 0.6}, {"uar": 0.7, "wa": 0.8}])
    assert s["uar"]["mean"] == pytest.approx(0.6)
    assert s["uar"]["std"] == pytest.approx(0.1)
    assert s["wa"]["values"] == [0.6, 0.8]


def test_summarise_leaves_out_runs_where_a_metric_is_undefined():
    """Missing, None and NaN are one thing: undefined in that run (AUC on a one-class test set,
    the recall of an absent class, Pearson r of constant predictions)."""
    s = summarise([{"uar": 0.5, "auc": 0.9, "r": 0.2},
                   {"uar": 0.7, "r": float("nan")},
                   {"uar": 0.9, "auc": 0.7, "r": None},
                   {"uar": 0.3, "auc": None, "r": 0.4, "late": 1.0}])
    assert list(s) == ["uar", "auc", "r", "late"]  # first-seen order
    assert s["auc"]["values"] == [0.9, None, 0.7, None]  # aligned with the runs
    assert s["auc"]["mean"] == pytest.approx(0.8) and s["auc"]["std"] == pytest.approx(0.1)
    assert s["r"]["values"] == [0.2, None, None, 0.4]
    assert s["r"]["mean"] == pytest.approx(0.3)
    assert s["late"] == {"mean": 1.0, "std": 0.0, "values": [None, None, None, 1.0]}
    assert s["uar"]["std"] == pytest.approx(np.std([0.5, 0.7, 0.9, 0.3]))


def test_summarise_a_metric_no_run_defines():
    s = summarise([{"recall": None}, {"recall": float("nan")}])
    assert np.isnan(s["recall"]["mean"]) and np.isnan(s["recall"]["std"])
    assert s["recall"]["values"] == [None, None]


def test_format_summary():
    assert format_summary(0.51249, 0.0341) == "0.512 ± 0.034"
