"""The EmoRL study of one fold, with its comparisons on the same folds:

- ``emorl``: the REINFORCE agent (greedy actions at test time);
- ``gru_full``: the ``gru_baseline`` it was initialised from, on whole utterances;
- ``prefix_p``: the same baseline reading only the first p of each utterance (paper's Fig. 5);
- ``threshold_reward``: the baseline stops at the first 300 ms step whose top probability
  reaches θ, θ chosen on the validation speakers to maximise EmoRL's own reward;
- ``threshold_matched``: θ chosen on the validation speakers to match EmoRL's validation
  fraction of audio read (EmoRL against the simplest alternative at equal speed-up).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import torch

from emovox.early.decisions import Decisions, decide, early_metrics, threshold_stop
from emovox.early.reinforce import greedy_decisions, mean_reward, step_frames, train_emorl
from emovox.evaluation.metrics import classification_metrics
from emovox.io import atomic_write_json
from emovox.models.emorl import EmoRL, prefix_means
from emovox.training import SequenceSet
from emovox.training.data import batches


@torch.no_grad()
def baseline_steps(model, data: SequenceSet, step: int) -> dict[str, np.ndarray]:
    """The baseline's class probabilities at every decision step, padded to a common K."""
    model.eval()
    parts = []
    for idx in batches(np.arange(len(data)), 64):
        x, lengths, _ = data.batch(idx)
        states, read, exists = prefix_means(model.states(x, lengths), lengths, step)
        parts.append((torch.softmax(model.head(states), -1).numpy(), read.numpy(),
                      exists.numpy()))
    width = max(p[0].shape[1] for p in parts)

    def pad(a: np.ndarray, value) -> np.ndarray:
        extra = [(0, 0), (0, width - a.shape[1])] + [(0, 0)] * (a.ndim - 2)
        return np.pad(a, extra, constant_values=value)

    return {"proba": np.concatenate([pad(p[0], 0) for p in parts]),
            "read": np.concatenate([pad(p[1], 1) for p in parts]),
            "exists": np.concatenate([pad(p[2], False) for p in parts])}


@torch.no_grad()
def prefix_proba(model, data: SequenceSet, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities after reading the first ``fraction`` of each utterance, and the exact
    fraction of frames read (at least one frame)."""
    model.eval()
    probas, fractions = [], []
    for idx in batches(np.arange(len(data)), 64):
        x, lengths, _ = data.batch(idx)
        read = torch.clamp(torch.ceil(fraction * lengths.double()).long(), min=1)
        h = model.states(x, lengths)
        cumsum = torch.cumsum(h, dim=1)
        state = cumsum[torch.arange(len(read)), read - 1] / read[:, None].to(h.dtype)
        probas.append(torch.softmax(model.head(state), -1).numpy())
        fractions.append((read / lengths).numpy())
    return np.concatenate(probas), np.concatenate(fractions)


def _threshold_decisions(steps: dict, lengths: np.ndarray, theta: float,
                         frame_rate: float) -> Decisions:
    return decide(steps["proba"], threshold_stop(steps["proba"], theta), steps["exists"],
                  steps["read"], lengths, frame_rate)


def train_emorl_model(config, dataset, train, valid, seed: int, work_dir: Path | None):
    """The gru_baseline (trained as any spine model, checkpoint on validation loss), then the
    EmoRL agent initialised from it and trained with REINFORCE.

    Returns (agent, baseline, normaliser, info, frame_rate, step).
    """
    from emovox.experiments.runner import train_model

    cfg = config.emorl
    positive = dataset.labels.index(cfg.positive) if cfg.positive else 0
    base_config = copy.deepcopy(config)
    base_config.model.name, base_config.model.ensemble = "gru_baseline", 1
    baseline, normaliser, base_info = train_model(base_config, dataset, train, valid, seed,
                                                  work_dir)
    frame_rate = dataset.extractor.frame_rate / dataset.stack
    agent = EmoRL.from_baseline(baseline)
    rl_info = train_emorl(agent, dataset.sequences(train, normaliser),
                          dataset.sequences(valid, normaliser), cfg, frame_rate, positive, seed,
                          work_dir / "emorl_checkpoint.pt" if work_dir else None,
                          config.training.progress)
    info = {"baseline": base_info, "emorl": rl_info}
    return agent, baseline, normaliser, info, frame_rate, step_frames(cfg, frame_rate)


def run_emorl_fold(config, dataset, fold, seed: int, fold_dir: Path) -> dict:
    start = time.time()
    cfg = config.emorl
    labels = dataset.labels
    positive = labels.index(cfg.positive) if cfg.positive else 0
    train, valid, test = (dataset.split(s) for s in (fold.train, fold.valid, fold.test))
    agent, baseline, normaliser, info, frame_rate, step = train_emorl_model(
        config, dataset, train, valid, seed, fold_dir)
    sets = {name: dataset.sequences(m, normaliser) for name, m in (("valid", valid),
                                                                   ("test", test))}
    y_test, y_valid = sets["test"].targets, sets["valid"].targets
    lengths = {k: v.lengths for k, v in sets.items()}
    emorl_test = greedy_decisions(agent, sets["test"], step, frame_rate, cfg.max_steps)
    emorl_valid = greedy_decisions(agent, sets["valid"], step, frame_rate, cfg.max_steps)

    methods: dict[str, dict] = {"emorl": early_metrics(y_test, emorl_test, positive)}
    methods["emorl"]["valid_fraction"] = float(emorl_valid.fraction.mean())

    # 3. The baseline on whole utterances and on prefixes.
    curves: dict[str, list[dict]] = {"prefix": [], "threshold": []}
    for p in sorted(set(cfg.prefix_fractions) | {1.0}):
        proba, frac = prefix_proba(baseline, sets["test"], p)
        d = Decisions(proba, np.zeros(len(proba), int), np.zeros(len(proba), bool), frac,
                      frac * lengths["test"] / frame_rate)
        curves["prefix"].append({"p": p, **early_metrics(y_test, d, positive)})
    methods["gru_full"] = curves["prefix"][-1]

    # 4. The confidence-threshold early exit, θ tuned on validation speakers only.
    steps = {k: baseline_steps(baseline, sets[k], step) for k in ("valid", "test")}
    valid_scores = []
    for theta in cfg.thresholds:
        dv = _threshold_decisions(steps["valid"], lengths["valid"], theta, frame_rate)
        dt = _threshold_decisions(steps["test"], lengths["test"], theta, frame_rate)
        valid_scores.append((theta, mean_reward(cfg, dv, y_valid, positive),
                             float(dv.fraction.mean())))
        curves["threshold"].append({"theta": theta, **early_metrics(y_test, dt, positive)})
    by_reward = max(valid_scores, key=lambda s: s[1])[0]
    matched = min(valid_scores, key=lambda s: abs(s[2] - emorl_valid.fraction.mean()))[0]
    for name, theta in (("threshold_reward", by_reward), ("threshold_matched", matched)):
        d = _threshold_decisions(steps["test"], lengths["test"], theta, frame_rate)
        methods[name] = {**early_metrics(y_test, d, positive), "theta": theta}

    result = {
        "seed": seed,
        "fold": fold.index,
        "test_speakers": list(fold.test),
        "valid_speakers": list(fold.valid),
        "metrics": {**classification_metrics(y_test, emorl_test.proba),
                    **{f"{k}": v for k, v in methods["emorl"].items()
                       if k in ("fraction", "speedup", "latency_s")}},
        "early": methods,
        "curves": curves,
        "training": info,
        "seconds": time.time() - start,
        "predictions": [
            {"id": u.id, "speaker": u.speaker, "true": labels[t],
             "pred": labels[int(p.argmax())], "proba": [round(float(v), 6) for v in p],
             "decision_s": round(float(s), 3), "fraction": round(float(f), 4)}
            for u, t, p, s, f in zip(test, y_test, emorl_test.proba, emorl_test.seconds,
                                     emorl_test.fraction, strict=True)
        ],
    }
    atomic_write_json(fold_dir / "result.json", result)
    for checkpoint in fold_dir.glob("*checkpoint*.pt"):
        checkpoint.unlink()
    return result
