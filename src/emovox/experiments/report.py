"""The one writer of an experiment's outputs: metrics.json, predictions.csv, a confusion-matrix
(categorical) or violin (dimensional) PNG and report.md; the same again under ``test_<name>/``
for every extra test set. A method's own block (EmoRL's early decisions) is added to the main
metrics.json and report.md before anything is written."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from emovox.evaluation.metrics import confusion, format_summary, per_class_recall, summarise
from emovox.evaluation.plots import plot_confusion, plot_violins
from emovox.experiments.config import ExperimentConfig
from emovox.experiments.methods.base import FoldResult, Scores, make_method
from emovox.io import atomic_write_json, atomic_write_text

PROTOCOL_NAMES = {
    "loso": "leave-one-speaker-out",
    "loso_session": "leave-one-session-out (one speaker validates, the other tests)",
    "speaker_kfold": "speaker-grouped k-fold",
}


def protocol_line(config: ExperimentConfig, n_folds: int) -> str:
    """The sentence printed next to every accuracy: what was held out, how often."""
    name = PROTOCOL_NAMES.get(config.protocol.name, config.protocol.name)
    return (f"{config.corpus.format}, speaker-independent {name}, {n_folds} folds × "
            f"{len(config.protocol.seeds)} seed(s) {config.protocol.seeds}; model selection on "
            "validation speakers only")


def fmt(entry: dict) -> str:
    return format_summary(entry["mean"], entry["std"])


def _header(config: ExperimentConfig, labels: list[str], results: list[FoldResult],
            test_name: str, seconds: float, command: str, skipped: list[str]) -> dict:
    n_folds = len({r.fold for r in results})
    return {
        "protocol": config.protocol.name,
        "protocol_description": protocol_line(config, n_folds),
        "corpus": config.corpus.format,
        "method": config.method.name,
        "model": make_method(config).model_name,
        "features": config.features.name,
        "labels": labels,
        "test_set": test_name,
        "n_folds": n_folds,
        "n_seeds": len({r.seed for r in results}),
        "runs": [{"seed": r.seed, "fold": r.fold, "test": r.test_speakers,
                  "valid": r.valid_speakers} for r in results],
        "skipped_files": skipped,
        "wall_seconds": seconds,
        "command": command,
    }


def _categorical(labels: list[str], runs: list[tuple[FoldResult, Scores]]) -> dict:
    index = {label: i for i, label in enumerate(labels)}
    recalls, matrix = [], np.zeros((len(labels), len(labels)), dtype=np.int64)
    for _, scores in runs:
        y = np.array([index[p["true"]] for p in scores.predictions])
        yhat = np.array([index[p["pred"]] for p in scores.predictions])
        recalls.append(dict(zip(labels, per_class_recall(y, yhat, len(labels)), strict=True)))
        matrix += confusion(y, yhat, len(labels))
    return {"per_class_recall": summarise(recalls), "confusion": matrix.tolist()}


def _predictions_csv(path: Path, labels: list[str], dims: list[str] | None,
                     runs: list[tuple[FoldResult, Scores]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf)
    if dims:
        writer.writerow(["id", "speaker", "seed", "fold", "label", *[f"true_{d}" for d in dims],
                         *[f"pred_{d}" for d in dims]])
    else:
        writer.writerow(["id", "speaker", "seed", "fold", "true", "pred",
                         *[f"p_{label}" for label in labels]])
    for r, scores in runs:
        for p in scores.predictions:
            if dims:
                writer.writerow([p["id"], p["speaker"], r.seed, r.fold, p["label"], *p["true"],
                                 *p["pred"]])
            else:
                writer.writerow([p["id"], p["speaker"], r.seed, r.fold, p["true"], p["pred"],
                                 *p["proba"]])
    atomic_write_text(path, buf.getvalue())


def _markdown(config: ExperimentConfig, metrics: dict, runs: list[tuple[FoldResult, Scores]],
              dims: list[str] | None, method_section: str) -> str:
    if dims:
        keys = [k for k in ("ccc", *(f"{d}_{m}" for d in dims for m in ("ccc", "pearson", "mae")))
                if k in metrics]
    else:
        keys = [k for k in ("uar", "wa", "macro_f1", "auc") if k in metrics]
    names = {"uar": "UAR", "wa": "WA", "macro_f1": "macro-F1", "auc": "AUC"}
    kind = " (dimensional)" if dims else ""
    lines = [f"# {config.name} — {metrics['test_set']} test{kind}", "",
             f"**Protocol:** {metrics['protocol_description']}.", "",
             f"Method `{config.method.name}`, model `{metrics['model']}` "
             f"{(config.model.params or '') if metrics['model'] == config.model.name else ''} on "
             f"`{config.features.name}` features "
             f"({config.features.normalise} normalisation); labels: "
             f"{', '.join(metrics['labels'])}.", ""]
    if dims:
        lines += [f"Targets {metrics['targets']}; {config.task.loss} loss.", ""]
    if metrics["command"]:
        lines += ["Reproduce with:", "", "```", metrics["command"], "```", ""]
    lines += ["| metric | mean ± std over runs |", "|---|---|"]
    lines += [f"| {names.get(k, k)} | {fmt(metrics[k])} |" for k in keys]
    if not dims:
        lines += ["", "Per-class recall:", "", "| class | recall |", "|---|---|"]
        lines += [f"| {label} | {fmt(v)} |" for label, v in metrics["per_class_recall"].items()]
    lines += ["", "Per run:", "", "| seed | fold | test | valid | " + " | ".join(keys) + " |",
              "|---" * (4 + len(keys)) + "|"]
    for r, scores in runs:
        values = " | ".join(f"{scores.metrics[k]:.3f}" if k in scores.metrics else "—"
                            for k in keys)  # a metric undefined in this run: see summarise
        lines.append(f"| {r.seed} | {r.fold} | {','.join(r.test_speakers)} | "
                     f"{','.join(r.valid_speakers)} | {values} |")
    figure = "![predicted against true](violin.png)" if dims else \
        "![confusion matrix](confusion.png)"
    lines += ["", figure, ""]
    if metrics["skipped_files"]:
        lines += [f"Skipped {len(metrics['skipped_files'])} unreadable file(s): see "
                  "`skipped_files` in metrics.json.", ""]
    if method_section:
        lines += [method_section, ""]
    lines += [f"Wall time: {metrics['wall_seconds']:.0f} s.", ""]
    return "\n".join(lines)


def write_test_report(out: Path, config: ExperimentConfig, labels: list[str],
                      runs: list[tuple[FoldResult, Scores]], header: dict,
                      method_block: dict[str, Any] | None = None,
                      method_section: str = "") -> dict:
    """predictions.csv, the figure and report.md of one test set; returns its metrics."""
    dims = config.task.dimensions if config.task.kind == "dimensional" else None
    metrics = {**header, **summarise([s.metrics for _, s in runs])}
    if dims:
        metrics |= {"task": "dimensional", "dimensions": dims,
                    "targets": ("derived from the category (emovox.corpora.dimensions), not "
                                "annotated" if config.task.derived else "annotated")}
    else:
        metrics |= _categorical(labels, runs)
    metrics |= method_block or {}
    _predictions_csv(out / "predictions.csv", labels, dims, runs)
    title = (f"{config.name} ({header['test_set']} test): {header['model']} on "
             f"{config.features.name}\n{header['n_folds']} folds × {header['n_seeds']} seed(s)")
    if dims:
        plot_violins([p for _, s in runs for p in s.predictions], dims, title,
                     out / "violin.png")
    else:
        plot_confusion(np.array(metrics["confusion"]), labels, title + ", summed",
                       out / "confusion.png")
    atomic_write_text(out / "report.md", _markdown(config, metrics, runs, dims, method_section))
    return metrics


def write_reports(out: Path, config: ExperimentConfig, labels: list[str],
                  results: list[FoldResult], seconds: float, command: str = "",
                  method_report: tuple[dict, str] = ({}, ""), skipped: list[str] = ()) -> dict:
    """The main test's outputs in ``out``, each extra test set's in ``out/test_<name>``; the
    main metrics.json also summarises every test set under ``tests``. Returns metrics.json."""
    block, section = method_report
    main = write_test_report(out, config, labels, [(r, r.test) for r in results],
                             _header(config, labels, results, "clean", seconds, command,
                                     list(skipped)), block, section)
    names = list(results[0].tests)
    if names:
        main["tests"] = {}
        for name in names:
            sub = write_test_report(out / f"test_{name}", config, labels,
                                    [(r, r.tests[name]) for r in results],
                                    _header(config, labels, results, name, seconds, command,
                                            list(skipped)))
            atomic_write_json(out / f"test_{name}" / "metrics.json", sub)
            main["tests"][name] = {k: v for k, v in sub.items()
                                   if isinstance(v, dict) and "mean" in v}
    atomic_write_json(out / "metrics.json", main)
    return main
