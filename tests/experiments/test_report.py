"""The reports aggregate folds through the one ``summarise``: an experiment's metrics and
per-class recalls, EmoRL's early-decision table, a study's cells (and its tables, one task kind
each). Hand-made fold results, no training: a fold whose test speakers lack a class (no recall
of it, no AUC)."""

from __future__ import annotations

import json

import pytest
import yaml

from emovox.early.report import early_report
from emovox.errors import ConfigError
from emovox.experiments.config import build_config
from emovox.experiments.methods.base import FoldResult, Scores
from emovox.experiments.report import write_reports
from emovox.experiments.study import load_study, markdown


def _fold(fold: int, pairs: list[tuple[str, str]], metrics: dict) -> FoldResult:
    predictions = [{"id": f"u{fold}{i}", "speaker": f"s{fold}", "true": t, "pred": p,
                    "proba": [0.5, 0.5]} for i, (t, p) in enumerate(pairs)]
    return FoldResult(seed=0, fold=fold, test_speakers=[f"s{fold}"], valid_speakers=["v"],
                      test=Scores(metrics, predictions))


def test_experiment_report_leaves_out_undefined_runs(tmp_path):
    config = build_config({"name": "t", "model": {"name": "gru_baseline"},
                           "corpus": {"format": "csv", "path": "x.csv", "labels": ["a", "b"]}})
    results = [  # fold 1's test speaker has no "b": no recall of b, no AUC there
        _fold(0, [("a", "a"), ("b", "b"), ("b", "a")], {"uar": 0.75, "wa": 2 / 3, "auc": 0.9}),
        _fold(1, [("a", "a"), ("a", "b")], {"uar": 0.5, "wa": 0.5}),
    ]
    metrics = write_reports(tmp_path, config, ["a", "b"], results, seconds=1.0)
    assert metrics["auc"] == {"mean": 0.9, "std": 0.0, "values": [0.9, None]}
    assert metrics["uar"]["mean"] == pytest.approx(0.625)
    assert metrics["per_class_recall"]["a"]["values"] == [1.0, 0.5]
    assert metrics["per_class_recall"]["b"] == {"mean": 0.5, "std": 0.0, "values": [0.5, None]}
    assert json.loads((tmp_path / "metrics.json").read_text())["auc"]["values"] == [0.9, None]
    report = (tmp_path / "report.md").read_text()
    assert "| AUC | 0.900 ± 0.000 |" in report and "| b | 0.500 ± 0.000 |" in report
    assert "| 0 | 1 | s1 | v | 0.500 | 0.500 | — |" in report  # the row keeps its columns


def test_early_table_and_curves(tmp_path):
    def row(speedup: float, auc: float | None) -> dict:
        return {"accuracy": 0.8, "uar": 0.7, "fraction": 1 / speedup, "speedup": speedup,
                "latency_s": 0.5, **({"auc": auc} if auc is not None else {})}

    extras = [{"early": {m: row(s, auc) for m, s in (("emorl", 4.0), ("gru_full", 1.0),
                                                    ("threshold_reward", 2.0),
                                                    ("threshold_matched", 3.0))},
               "curves": {"prefix": [{"p": 0.5, **row(2.0, auc)}, {"p": 1.0, **row(1.0, auc)}],
                          "threshold": [{"theta": 0.6, **row(1.5, auc)}]}}
              for auc in (0.9, 0.7, None)]
    block, section = early_report(tmp_path, "t", "a protocol", 300.0, extras)
    emorl = block["early"]["methods"]["emorl"]
    assert emorl["auc"]["values"] == [0.9, 0.7, None]
    assert emorl["auc"]["mean"] == pytest.approx(0.8) and emorl["auc"]["std"] == pytest.approx(0.1)
    assert block["early"]["prefix_curve"][0]["auc"] == pytest.approx(0.8)
    assert block["early"]["prefix_curve"][0]["p"] == 0.5
    assert "| EmoRL (REINFORCE agent) | 0.800 ± 0.100 |" in section
    assert (tmp_path / "early.png").stat().st_size > 1000


def test_study_cells():
    summary = {"command": "emovox study s.yaml --out o",
               "variants": {"v": {"clean": {"uar": [0.5, 0.25]}, "robot": {"uar": [0.25, 0.0]}}}}
    table = markdown({"name": "s"}, summary)
    assert "| v | 0.500 ± 0.250 | 0.250 ± 0.000 | 50.0 % |" in table


def test_study_without_tables_puts_each_kind_in_its_own_table():
    summary = {"command": "c", "variants": {
        "cat": {"clean": {"uar": [0.5, 0.1], "wa": [0.6, 0.1]}},
        "dim": {"clean": {"arousal_ccc": [0.4, 0.1], "valence_ccc": [0.2, 0.1]}}}}
    table = markdown({"name": "s"}, summary)
    assert "## Categorical variants" in table and "## Dimensional variants" in table
    assert "| cat | 0.500 ± 0.100 | 0.600 ± 0.100 |" in table
    assert "| dim | 0.400 ± 0.100 | 0.200 ± 0.100 |" in table


def test_study_table_mixing_kinds_is_refused(tmp_path):
    study = {"base": {"corpus": {"format": "csv", "path": "x.csv"},
                      "model": {"name": "gru_baseline"}},
             "variants": {"cat": {}, "dim": {"task.kind": "dimensional"}},
             "tables": {"T": ["cat", "dim"]}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(study))
    with pytest.raises(ConfigError, match="table 'T' mixes categorical and dimensional"):
        load_study(tmp_path / "s.yaml")
