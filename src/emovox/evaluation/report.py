"""Experiment outputs: metrics.json, predictions.csv, a confusion-matrix (categorical) or violin
(dimensional) PNG, report.md; the same again under ``test_<name>/`` for every extra test set."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from emovox.evaluation.metrics import confusion, per_class_recall, summarise
from emovox.io import atomic_write, atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from emovox.experiments.config import ExperimentConfig
    from emovox.experiments.dataset import Dataset

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


def save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, lambda fh: fh.write(buf.getvalue()))


def plot_confusion(matrix: np.ndarray, labels: list[str], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.1 * len(labels) + 2.5, 1.0 * len(labels) + 2))
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{rows[i, j]:.2f}\n({matrix[i, j]})", ha="center", va="center",
                    fontsize=8, color="white" if rows[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def write_predictions(path: Path, labels: list[str], results: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["id", "speaker", "seed", "fold", "true", "pred",
                     *[f"p_{label}" for label in labels]])
    for r in results:
        for p in r["predictions"]:
            writer.writerow([p["id"], p["speaker"], r["seed"], r["fold"], p["true"], p["pred"],
                             *p["proba"]])
    atomic_write_text(path, buf.getvalue())


def _header(config: ExperimentConfig, labels: list[str], results: list[dict]) -> dict:
    n_folds = len({r["fold"] for r in results})
    return {
        "protocol": config.protocol.name,
        "protocol_description": protocol_line(config, n_folds),
        "corpus": config.corpus.format,
        "model": config.model.name,
        "features": config.features.name,
        "labels": labels,
        "n_folds": n_folds,
        "n_seeds": len({r["seed"] for r in results}),
        "runs": [{"seed": r["seed"], "fold": r["fold"], "test": r["test_speakers"],
                  "valid": r["valid_speakers"]} for r in results],
    }


def write_reports(out: Path, config: ExperimentConfig, dataset: Dataset, results: list[dict],
                  seconds: float, command: str = "") -> dict:
    """The main test's report in ``out``, each extra test set's in ``out/test_<name>``; the
    main metrics.json also summarises every test set under ``tests``."""
    write = write_dimensional_report if dataset.dimensional else write_report
    metrics = write(out, config, dataset.labels, results, seconds, command)
    names = list(results[0].get("tests", {}))
    if names:
        metrics["tests"] = {}
        for name in names:
            runs = [{**r, **r["tests"][name]} for r in results]
            sub = write(out / f"test_{name}", config, dataset.labels, runs, seconds, command,
                        test_name=name)
            metrics["tests"][name] = {k: v for k, v in sub.items() if isinstance(v, dict)
                                      and "mean" in v}
        atomic_write_json(out / "metrics.json", metrics)
    return metrics


def write_report(out: Path, config: ExperimentConfig, labels: list[str], results: list[dict],
                 seconds: float, command: str = "", test_name: str = "clean") -> dict:
    index = {label: i for i, label in enumerate(labels)}
    n_folds = len({r["fold"] for r in results})
    recalls, matrix = [], np.zeros((len(labels), len(labels)), dtype=np.int64)
    for r in results:
        y = np.array([index[p["true"]] for p in r["predictions"]])
        yhat = np.array([index[p["pred"]] for p in r["predictions"]])
        recalls.append(per_class_recall(y, yhat, len(labels)))
        matrix += confusion(y, yhat, len(labels))
    recalls_arr = np.array(recalls)
    metrics = {
        **_header(config, labels, results),
        "test_set": test_name,
        **summarise([r["metrics"] for r in results]),
        "per_class_recall": {
            label: {"mean": float(np.nanmean(recalls_arr[:, i])),
                    "std": float(np.nanstd(recalls_arr[:, i])),
                    "values": [None if np.isnan(v) else float(v) for v in recalls_arr[:, i]]}
            for i, label in enumerate(labels)
        },
        "confusion": matrix.tolist(),
        "wall_seconds": seconds,
        "command": command,
    }
    atomic_write_json(out / "metrics.json", metrics)
    write_predictions(out / "predictions.csv", labels, results)
    plot_confusion(matrix, labels, f"{config.name} ({test_name} test): {config.model.name} on "
                   f"{config.features.name}\n{n_folds} folds × {metrics['n_seeds']} seed(s), "
                   "summed", out / "confusion.png")
    atomic_write_text(out / "report.md", markdown(config, metrics, results))
    return metrics


def fmt(entry: dict) -> str:
    return f"{entry['mean']:.3f} ± {entry['std']:.3f}"


def markdown(config: ExperimentConfig, metrics: dict, results: list[dict]) -> str:
    keys = [k for k in ("uar", "wa", "macro_f1", "auc") if k in metrics]
    lines = [
        f"# {config.name} — {metrics['test_set']} test",
        "",
        f"**Protocol:** {metrics['protocol_description']}.",
        "",
        f"Model `{config.model.name}` {config.model.params or ''} on `{config.features.name}` "
        f"features ({config.features.normalise} normalisation); labels: "
        f"{', '.join(metrics['labels'])}.",
        "",
    ]
    if metrics["command"]:
        lines += ["Reproduce with:", "", "```", metrics["command"], "```", ""]
    lines += ["| metric | mean ± std over runs |", "|---|---|"]
    lines += [f"| {k.upper() if k != 'macro_f1' else 'macro-F1'} | {fmt(metrics[k])} |"
              for k in keys]
    lines += ["", "Per-class recall:", "", "| class | recall |", "|---|---|"]
    lines += [f"| {label} | {fmt(v)} |" for label, v in metrics["per_class_recall"].items()]
    lines += ["", "Per run:", "", "| seed | fold | test | valid | " + " | ".join(keys) + " |",
              "|---" * (4 + len(keys)) + "|"]
    for r in results:
        values = " | ".join(f"{r['metrics'][k]:.3f}" for k in keys if k in r["metrics"])
        lines.append(f"| {r['seed']} | {r['fold']} | {','.join(r['test_speakers'])} | "
                     f"{','.join(r['valid_speakers'])} | {values} |")
    lines += ["", "![confusion matrix](confusion.png)", "",
              f"Wall time: {metrics['wall_seconds']:.0f} s.", ""]
    return "\n".join(lines)


def write_dimensional_report(out: Path, config: ExperimentConfig, labels: list[str],
                             results: list[dict], seconds: float, command: str = "",
                             test_name: str = "clean") -> dict:
    dims = config.task.dimensions
    metrics = {
        **_header(config, labels, results),
        "test_set": test_name,
        "task": "dimensional",
        "dimensions": dims,
        "targets": ("derived from the category (emovox.corpora.dimensions), not annotated"
                    if config.task.derived else "annotated"),
        **summarise([r["metrics"] for r in results]),
        "wall_seconds": seconds,
        "command": command,
    }
    atomic_write_json(out / "metrics.json", metrics)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["id", "speaker", "seed", "fold", "label", *[f"true_{d}" for d in dims],
                     *[f"pred_{d}" for d in dims]])
    for r in results:
        for p in r["predictions"]:
            writer.writerow([p["id"], p["speaker"], r["seed"], r["fold"], p["label"], *p["true"],
                             *p["pred"]])
    atomic_write_text(out / "predictions.csv", buf.getvalue())
    plot_violins(results, dims, f"{config.name} ({test_name} test): {config.model.name}",
                 out / "violin.png")
    keys = [k for k in ("ccc", *(f"{d}_{m}" for d in dims for m in ("ccc", "pearson", "mae")))
            if k in metrics]
    lines = [f"# {config.name} — {test_name} test (dimensional)", "",
             f"**Protocol:** {metrics['protocol_description']}.", "",
             f"Model `{config.model.name}` on `{config.features.name}`, {config.task.loss} loss; "
             f"targets {metrics['targets']}.", ""]
    if command:
        lines += ["Reproduce with:", "", "```", command, "```", ""]
    lines += ["| metric | mean ± std over runs |", "|---|---|"]
    lines += [f"| {k} | {fmt(metrics[k])} |" for k in keys]
    lines += ["", "![predicted against true](violin.png)", "", f"Wall time: {seconds:.0f} s.", ""]
    atomic_write_text(out / "report.md", "\n".join(lines))
    return metrics


def plot_violins(results: list[dict], dims: list[str], title: str, path: Path) -> None:
    """Per dimension: the distribution of predictions for each distinct true value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(dims), figsize=(5 * len(dims), 4), squeeze=False)
    preds = [p for r in results for p in r["predictions"]]
    for d, (ax, name) in enumerate(zip(axes[0], dims, strict=True)):
        true = np.array([p["true"][d] for p in preds])
        pred = np.array([p["pred"][d] for p in preds])
        groups = np.unique(np.round(true * 2) / 2)  # half-point bins of the 1–5 scale
        data = [pred[np.abs(true - g) <= 0.25] for g in groups]
        ax.violinplot([x for x in data if len(x)], positions=[g for g, x in zip(groups, data,
                      strict=True) if len(x)], widths=0.4, showmedians=True)
        lo, hi = min(true.min(), pred.min()), max(true.max(), pred.max())
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlabel(f"true {name}")
        ax.set_ylabel(f"predicted {name}")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
