"""Turning per-step predictions into one decision per utterance, and scoring it.

Every early-decision method here (EmoRL, a confidence threshold, a fixed prefix) produces, at each
decision step k, class probabilities and whether to stop; the decision is taken at the first step
that says stop, or forced at the last step that exists. Offline (:func:`decide`, batches) and
streaming (a :class:`Step` at a time, PyTorch or ONNX) read the same :func:`stop_rule`. Nothing
here imports PyTorch: the ONNX runtime streams with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emovox.evaluation.metrics import uar

#: The agent's actions: the indices of its policy's logits.
WAIT, TERMINATE = 0, 1


@dataclass
class Step:
    """One decision step of a streamed utterance."""

    #: Seconds of the utterance's audio the model had read.
    seconds: float
    proba: np.ndarray
    #: The agent's action logits (wait, terminate), or None for models without an agent.
    actions: np.ndarray | None = None


@dataclass
class Decisions:
    proba: np.ndarray  # [B, C] class probabilities at the decision step
    step: np.ndarray  # [B] decision step index
    forced: np.ndarray  # [B] True when no step chose to stop
    fraction: np.ndarray  # [B] fraction of the utterance's frames read
    seconds: np.ndarray  # [B] audio heard when deciding


def decide(
    class_proba: np.ndarray,
    stop: np.ndarray,
    exists: np.ndarray,
    read: np.ndarray,
    lengths: np.ndarray,
    frame_rate: float,
) -> Decisions:
    """class_proba [B, K, C]; stop, exists [B, K] bool; read [B, K] frames read at each step."""
    stop = stop & exists
    last = exists.sum(1) - 1
    any_stop = stop.any(1)
    step = np.where(any_stop, stop.argmax(1), last)
    rows = np.arange(len(step))
    frames = read[rows, step]
    return Decisions(
        proba=class_proba[rows, step],
        step=step,
        forced=~any_stop,
        fraction=frames / lengths,
        seconds=frames / frame_rate,
    )


def early_metrics(y: np.ndarray, decisions: Decisions, positive: int = 1) -> dict[str, float]:
    """ROC-AUC (binary), accuracy, UAR, mean fraction read, speed-up, latency in seconds."""
    pred = decisions.proba.argmax(1)
    n_classes = decisions.proba.shape[1]
    out = {
        "accuracy": float(np.mean(pred == y)),
        "uar": uar(y, pred, n_classes),
        "fraction": float(np.mean(decisions.fraction)),
        "latency_s": float(np.mean(decisions.seconds)),
        "forced": float(np.mean(decisions.forced)),
    }
    out["speedup"] = 1.0 / out["fraction"]
    if n_classes == 2 and len(np.unique(y)) == 2:
        from sklearn.metrics import roc_auc_score  # sklearn takes 0.4 s to import

        out["auc"] = float(roc_auc_score(y == positive, decisions.proba[:, positive]))
    return out


def stop_rule(class_proba: np.ndarray, threshold: float | None = None,
              action_logits: np.ndarray | None = None) -> np.ndarray:
    """The one stop rule, for batches of steps [..., C] and for a single streaming step: with a
    ``threshold``, stop once the top class probability reaches it; otherwise follow the agent's
    greedy action (action 1 = terminate); with neither, never stop early."""
    if threshold is not None:
        return class_proba.max(-1) >= threshold
    if action_logits is not None:
        return action_logits.argmax(-1) == TERMINATE
    return np.zeros(class_proba.shape[:-1], dtype=bool)

