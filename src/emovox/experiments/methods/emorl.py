"""EmoRL as a method: the ``gru_baseline`` (``model:``) trained as any supervised model, then a
REINFORCE agent initialised from it that decides every ``step_ms`` whether to wait or stop.

Each fold also compares, on the same test speakers:

- ``gru_full``: the baseline on whole utterances, and ``prefix_p`` on the first p of each;
- ``threshold_reward``: the baseline stops at the first step whose top probability reaches θ,
  θ chosen on the validation speakers to maximise EmoRL's own reward;
- ``threshold_matched``: θ chosen on the validation speakers to match EmoRL's validation
  fraction of audio read (EmoRL against the simplest alternative at equal speed-up).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emovox.corpora import Manifest
from emovox.early.decisions import Decisions, decide, early_metrics, stop_rule
from emovox.early.reinforce import (
    EmoRLConfig,
    greedy_decisions,
    mean_reward,
    step_frames,
    train_emorl,
)
from emovox.early.report import early_report
from emovox.evaluation.metrics import classification_metrics
from emovox.experiments.config import ExperimentConfig, to_dict
from emovox.experiments.dataset import Dataset
from emovox.experiments.methods.base import METHODS, FoldResult, RunContext, Scores, Split
from emovox.experiments.methods.supervised import (
    WINDOW_S,
    SequenceModels,
    Supervised,
    load_torch,
)
from emovox.experiments.onnx import StepGraph, export_sequence_models
from emovox.experiments.recogniser_streams import WindowStreamer
from emovox.experiments.streamers import GruStreamer, Streamer, read_state
from emovox.features.spectral import FramedExtractor
from emovox.models.emorl import EmoRL, prefix_means, running_means
from emovox.training import SequenceSet
from emovox.training.data import batches


@dataclass
class EmoRLModels(SequenceModels):
    """The agent (``members[0]``) and the baseline it started from."""

    baseline: torch.nn.Module | None = None

    @property
    def agent(self) -> EmoRL:
        return self.members[0]


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
        state = running_means(model.states(x, lengths), lengths, read[:, None])[:, 0]
        probas.append(torch.softmax(model.head(state), -1).numpy())
        fractions.append((read / lengths).numpy())
    return np.concatenate(probas), np.concatenate(fractions)


def _threshold_decisions(steps: dict, lengths: np.ndarray, theta: float,
                         frame_rate: float) -> Decisions:
    return decide(steps["proba"], stop_rule(steps["proba"], theta), steps["exists"],
                  steps["read"], lengths, frame_rate)


@METHODS.register
class EmoRLMethod(Supervised):
    """A GRU and a REINFORCE agent that decides every step whether to wait or stop."""

    name = "emorl"
    Params = EmoRLConfig

    def positive(self, labels: list[str]) -> int:
        return labels.index(self.params.positive) if self.params.positive else 0

    def frame_rate(self, trained: SequenceModels) -> float:
        return trained.extractor.frame_rate / trained.stack

    def fit(self, dataset: Dataset, split: Split, run: RunContext
            ) -> tuple[EmoRLModels, dict]:
        base_config = copy.deepcopy(self.config)
        base_config.model.ensemble = 1
        base, base_info = Supervised(base_config).fit(
            dataset, split, self.baseline_run(base_config, split, run))
        baseline = base.members[0]
        agent = EmoRL.from_baseline(baseline)
        rl_info = train_emorl(agent, dataset.sequences(split.train, base.normaliser),
                              dataset.sequences(split.valid, base.normaliser), self.params,
                              self.frame_rate(base), self.positive(dataset.labels), run.seed,
                              run.checkpoint("emorl_checkpoint.pt"),
                              self.config.training.progress)
        trained = EmoRLModels([agent], base.normaliser, base.task, base.extractor, base.stack,
                              baseline)
        return trained, {"baseline": base_info, "emorl": rl_info}

    @staticmethod
    def baseline_run(base_config: ExperimentConfig, split: Split, run: RunContext) -> RunContext:
        """Where the baseline GRU checkpoints: in the run's shared directory, keyed by
        everything that shapes it (the config without its name and method, the fold's speakers
        and seed), so the variants of a study that change only the agent's reward train one GRU
        per fold instead of one each (a finished checkpoint resumes as done); in the run's own
        work dir when nothing is shared (its ``checkpoint0.pt`` beside the agent's)."""
        if run.shared_dir is None:
            return run
        config = {k: v for k, v in to_dict(base_config).items()
                  if k not in ("name", "method", "workers")}
        config["training"].pop("progress", None)
        key = {"config": config, "seed": run.seed,
               "train": sorted(u.id for u in split.train),
               "valid": sorted(u.id for u in split.valid)}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode())
        return dataclasses.replace(
            run, work_dir=run.shared_dir / "baselines" / digest.hexdigest()[:20])

    def decisions(self, trained: EmoRLModels, data: SequenceSet) -> Decisions:
        frame_rate = self.frame_rate(trained)
        return greedy_decisions(trained.agent, data, step_frames(self.params, frame_rate),
                                frame_rate, self.params.max_steps)

    def outputs_of(self, trained: EmoRLModels, data: SequenceSet) -> np.ndarray:
        return self.decisions(trained, data).proba

    def score(self, trained: EmoRLModels, dataset: Dataset, manifest: Manifest) -> Scores:
        data = dataset.sequences(manifest, trained.normaliser)
        d = self.decisions(trained, data)
        early = early_metrics(data.targets, d, self.positive(dataset.labels))
        return Scores(
            {**classification_metrics(data.targets, d.proba),
             **{k: v for k, v in early.items() if k in ("fraction", "speedup", "latency_s")}},
            [{"id": u.id, "speaker": u.speaker, "true": dataset.labels[t],
              "pred": dataset.labels[int(p.argmax())], "proba": [round(float(v), 6) for v in p],
              "decision_s": round(float(s), 3), "fraction": round(float(f), 4)}
             for u, t, p, s, f in zip(manifest, data.targets, d.proba, d.seconds, d.fraction,
                                      strict=True)])

    def extra(self, trained: EmoRLModels, dataset: Dataset, split: Split) -> dict[str, Any]:
        """EmoRL against the baseline's prefixes and confidence-threshold exits."""
        cfg, positive = self.params, self.positive(dataset.labels)
        frame_rate = self.frame_rate(trained)
        step = step_frames(cfg, frame_rate)
        sets = {"valid": dataset.sequences(split.valid, trained.normaliser),
                "test": dataset.sequences(split.test, trained.normaliser)}
        y_test, y_valid = sets["test"].targets, sets["valid"].targets
        lengths = {k: v.lengths for k, v in sets.items()}
        emorl_valid = self.decisions(trained, sets["valid"])
        methods = {"emorl": early_metrics(y_test, self.decisions(trained, sets["test"]),
                                          positive)}
        methods["emorl"]["valid_fraction"] = float(emorl_valid.fraction.mean())

        curves: dict[str, list[dict]] = {"prefix": [], "threshold": []}
        for p in sorted(set(cfg.prefix_fractions) | {1.0}):
            proba, frac = prefix_proba(trained.baseline, sets["test"], p)
            d = Decisions(proba, np.zeros(len(proba), int), np.zeros(len(proba), bool), frac,
                          frac * lengths["test"] / frame_rate)
            curves["prefix"].append({"p": p, **early_metrics(y_test, d, positive)})
        methods["gru_full"] = curves["prefix"][-1]

        steps = {k: baseline_steps(trained.baseline, sets[k], step) for k in sets}
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
        return {"early": methods, "curves": curves}

    def report(self, results: list[FoldResult], out: Path) -> tuple[dict[str, Any], str]:
        from emovox.experiments.report import protocol_line

        protocol = protocol_line(self.config, len({r.fold for r in results}))
        return early_report(out, self.config.name, protocol, self.params.step_ms,
                            [r.extra for r in results])

    def streamer(self, trained: EmoRLModels) -> Streamer:
        """The agent's GRU carried across chunks, its policy deciding when to stop; on features
        that cannot stream frame for frame (a recogniser's layers) or per-utterance
        normalisation, the heard audio re-encoded every step and the GRU run over all of it."""
        agent, params = trained.agent, self.params
        if isinstance(trained.extractor, FramedExtractor) and \
                trained.normaliser.mode != "utterance":
            return GruStreamer(trained.extractor, trained.normaliser, trained.stack, agent.gru,
                               agent.classifier, agent.policy, params.step_ms, params.max_steps)

        @torch.no_grad()
        def classify(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            state = agent.gru(torch.from_numpy(trained.sequences([feats])[0])[None])[0][0].mean(0)
            return read_state(agent.classifier, agent.policy, state)

        return WindowStreamer(trained.extractor.extract_from, classify,
                              trained.extractor.sample_rate, trained.extractor.frame_rate,
                              params.step_ms, WINDOW_S, params.max_steps)

    def export_onnx(self, trained: EmoRLModels, out: Path) -> dict[str, Any]:
        """The agent steps through ``step.onnx`` (its action logits too): what ``emovox
        predict`` answers is its early decision."""
        agent, params = trained.agent, self.params
        return export_sequence_models(trained, out,
                                      StepGraph(agent.gru, agent.classifier, agent.policy),
                                      params.step_ms, params.max_steps)

    # -- model directories ----------------------------------------------------------------
    def load(self, model_dir: Path, meta: dict[str, Any]) -> EmoRLModels:
        base = super().load(model_dir, meta)
        return EmoRLModels(base.members, base.normaliser, base.task, base.extractor, base.stack)

    def load_members(self, model_dir: Path, meta: dict[str, Any]) -> list[Any]:
        """``weights.pt`` holds the agent (the baseline's GRU and head live inside it)."""
        from emovox.errors import ModelDirError

        path = model_dir / "weights.pt"
        states = load_torch(path)
        try:
            hidden = states[0]["gru.weight_hh_l0"].shape[1]
            agent = EmoRL(meta["input_dim"], len(meta["labels"]), hidden)
            agent.load_state_dict(states[0])
        except (KeyError, IndexError, RuntimeError) as exc:
            raise ModelDirError(path, f"not an EmoRL agent's weights ({exc})") from None
        return [agent.eval()]
