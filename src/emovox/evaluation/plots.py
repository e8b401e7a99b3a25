"""Figures every report shares: confusion matrices, predicted-against-true violins."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from emovox.io import atomic_write


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


def plot_violins(preds: list[dict], dims: list[str], title: str, path: Path) -> None:
    """Per dimension: the distribution of predictions for each distinct true value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(dims), figsize=(5 * len(dims), 4), squeeze=False)
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
