"""REINFORCE training of the EmoRL agent (wait / terminate every decision step).

Per episode (one utterance): actions are sampled at steps 0, 1, … until the agent terminates or
the utterance (or ``max_steps``) ends, which forces the decision. Rewards are terminal only:
``r_acc + latency_weight / (k + 1)`` on termination at step k, where r_acc comes from the
(r_tp, r_tn, r_fp, r_fn) table; a forced decision instead earns ``r_no_decision`` (plus the
latency term) — a choice the paper leaves open, taken so that waiting to the end is never free.
R_k = γ^(τ−k) r. Loss = −J_a + J_c + J_b: REINFORCE with the baseline subtracted and the
advantage standardised by running (exponential) mean and standard deviation; cross-entropy of
the EC at the terminal step; the BRE's squared error. The GRU and EC start from a trained
``gru_baseline`` and stay frozen for the first ``freeze_episodes`` episodes. The checkpoint with
the best greedy (argmax) mean reward on the validation speakers is kept.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from emovox.early.decisions import TERMINATE, Decisions, decide, stop_rule
from emovox.models.emorl import EmoRL
from emovox.schema import bounded
from emovox.training.checkpoint import Checkpoint
from emovox.training.data import SequenceSet, batches

log = logging.getLogger(__name__)


@dataclass
class EmoRLConfig:
    """EmoRL's rewards and REINFORCE schedule (``method.params`` of method emorl)."""

    step_ms: float = bounded(300.0, gt=0)
    max_steps: int | None = bounded(None, ge=1)
    gamma: float = bounded(0.99, gt=0, le=1)
    #: Accuracy rewards; for more than two classes r_tp rewards any correct decision and r_fp
    #: any wrong one.
    r_tp: float = 1.0
    r_tn: float = 1.0
    r_fp: float = -1.0
    r_fn: float = -1.0
    r_no_decision: float = -1.0
    latency_weight: float = 1.0
    #: Steps that cost no latency: the latency bonus is latency_weight / (max(0, step −
    #: delay) + 1), so an agent may listen this many steps before waiting starts to cost.
    latency_delay_steps: int = bounded(0, ge=0)
    #: The positive class of the reward table (default: the first label).
    positive: str | None = None
    lr: float = bounded(1e-4, gt=0)
    weight_decay: float = bounded(1e-5, ge=0)
    batch_size: int = bounded(32, ge=1)
    episodes: int = bounded(20_000, ge=1)
    freeze_episodes: int = bounded(5_000, ge=0)
    eval_every: int = bounded(1_000, ge=1)
    advantage_momentum: float = bounded(0.99, ge=0, lt=1)
    #: Confidence thresholds swept for the non-RL early exit.
    thresholds: list[float] = field(default_factory=lambda: [
        0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 1.01])
    prefix_fractions: list[float] = field(default_factory=lambda: [
        0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])


def accuracy_rewards(config: EmoRLConfig, y: torch.Tensor, pred: torch.Tensor,
                     positive: int, n_classes: int) -> torch.Tensor:
    correct = pred == y
    if n_classes != 2:
        return torch.where(correct, config.r_tp, config.r_fp)
    is_pos = y == positive
    return torch.where(correct, torch.where(is_pos, config.r_tp, config.r_tn),
                       torch.where(is_pos, config.r_fn, config.r_fp))


def episode_rewards(config: EmoRLConfig, y: torch.Tensor, pred: torch.Tensor,
                    step: torch.Tensor, forced: torch.Tensor, positive: int,
                    n_classes: int) -> torch.Tensor:
    r_acc = accuracy_rewards(config, y, pred, positive, n_classes)
    r_acc = torch.where(forced, torch.full_like(r_acc, config.r_no_decision), r_acc)
    late = (step - config.latency_delay_steps).clamp(min=0).to(r_acc.dtype)
    return r_acc + config.latency_weight / (late + 1)


class RunningStats:
    """Exponential moving mean and variance of the advantages."""

    def __init__(self, momentum: float):
        self.momentum, self.mean, self.var = momentum, 0.0, 1.0
        self.started = False

    def update(self, values: torch.Tensor) -> None:
        mean, var = float(values.mean()), float(values.var(unbiased=False))
        if not self.started:
            self.mean, self.var, self.started = mean, max(var, 1e-6), True
            return
        m = self.momentum
        self.mean = m * self.mean + (1 - m) * mean
        self.var = m * self.var + (1 - m) * var

    def standardise(self, values: torch.Tensor) -> torch.Tensor:
        return (values - self.mean) / (self.var ** 0.5 + 1e-6)

    def state_dict(self) -> dict:
        return dict(self.__dict__)

    def load_state_dict(self, state: dict) -> None:
        self.__dict__.update(state)


def step_frames(config: EmoRLConfig, frame_rate: float) -> int:
    return max(1, int(round(config.step_ms / 1000 * frame_rate)))


@torch.no_grad()
def greedy_decisions(agent: EmoRL, data: SequenceSet, step: int, frame_rate: float,
                     max_steps: int | None = None) -> Decisions:
    """Argmax actions on every utterance of ``data`` (in order)."""
    agent.eval()
    parts = []
    for idx in batches(np.arange(len(data)), 64):
        x, lengths, _ = data.batch(idx)
        out = agent.steps(x, lengths, step, max_steps)
        parts.append(decide(
            torch.softmax(out["class_logits"], -1).numpy(),
            stop_rule(out["class_logits"].numpy(), action_logits=out["action_logits"].numpy()),
            out["exists"].numpy(), out["read"].numpy(), lengths.numpy(), frame_rate))
    return Decisions(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                       ("proba", "step", "forced", "fraction", "seconds")))


def mean_reward(config: EmoRLConfig, decisions: Decisions, y: np.ndarray, positive: int) -> float:
    n_classes = decisions.proba.shape[1]
    r = episode_rewards(config, torch.from_numpy(y), torch.from_numpy(decisions.proba.argmax(1)),
                        torch.from_numpy(decisions.step), torch.from_numpy(decisions.forced),
                        positive, n_classes)
    return float(r.mean())


def train_emorl(agent: EmoRL, train: SequenceSet, valid: SequenceSet, config: EmoRLConfig,
                frame_rate: float, positive: int, seed: int, checkpoint: Path | None = None,
                progress: bool = True) -> dict:
    """Train ``agent`` in place (it ends with the best validation weights); returns history."""
    step = step_frames(config, frame_rate)
    n_classes = agent.classifier.out_features
    optimiser = torch.optim.Adam(agent.parameters(), lr=config.lr,
                                 weight_decay=config.weight_decay)
    stats = RunningStats(config.advantage_momentum)
    saver = Checkpoint(checkpoint, agent=agent, optimiser=optimiser, stats=stats)
    state = saver.restore() or {
        "history": [], "episodes": 0, "update": 0,
        "best": {"reward": -np.inf, "state": copy.deepcopy(agent.state_dict()), "episodes": 0}}
    history, best, episodes, update = (state["history"], state["best"], state["episodes"],
                                       state["update"])
    bar = tqdm(total=config.episodes, initial=episodes, desc="EmoRL episodes", leave=False,
               disable=not progress)
    while episodes < config.episodes:
        torch.manual_seed(seed * 1_000_003 + update)
        frozen = episodes < config.freeze_episodes
        for module in (agent.gru, agent.classifier):
            module.requires_grad_(not frozen)
        agent.train()
        # Episodes are a function of (seed, update), so a resumed run replays the same ones.
        idx = np.random.default_rng([seed, 7, update]).choice(len(train), config.batch_size)
        x, lengths, y = train.batch(idx)
        out = agent.steps(x, lengths, step, config.max_steps)
        exists = out["exists"]
        policy = torch.distributions.Categorical(logits=out["action_logits"])
        actions = policy.sample()
        stop = (actions == TERMINATE) & exists
        last = exists.sum(1) - 1
        any_stop = stop.any(1)
        tau = torch.where(any_stop, stop.float().argmax(1), last)
        rows = torch.arange(len(tau))
        class_logits = out["class_logits"][rows, tau]
        pred = class_logits.argmax(-1)
        reward = episode_rewards(config, y, pred, tau, ~any_stop, positive, n_classes)
        k = torch.arange(exists.shape[1])[None, :]
        taken = (k <= tau[:, None]) & exists  # steps the episode went through
        returns = reward[:, None] * config.gamma ** (tau[:, None] - k).clamp(min=0).float()
        advantage = (returns - out["baseline"]).detach()
        stats.update(advantage[taken])
        advantage = stats.standardise(advantage)
        log_prob = policy.log_prob(actions)
        j_a = (log_prob * advantage * taken).sum() / len(tau)
        j_c = nn.functional.cross_entropy(class_logits, y)
        j_b = (((returns - out["baseline"]) ** 2) * taken).sum() / len(tau)
        loss = -j_a + j_c + j_b
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        episodes += len(tau)
        update += 1
        bar.update(len(tau))
        if update % max(1, config.eval_every // config.batch_size) == 0 or \
                episodes >= config.episodes:
            decisions = greedy_decisions(agent, valid, step, frame_rate, config.max_steps)
            value = mean_reward(config, decisions, valid.targets, positive)
            history.append({"episodes": episodes, "valid_reward": value,
                            "valid_fraction": float(decisions.fraction.mean()),
                            "valid_accuracy": float((decisions.proba.argmax(1)
                                                     == valid.targets).mean()),
                            "frozen": frozen})
            if value > best["reward"]:
                best = {"reward": value, "state": copy.deepcopy(agent.state_dict()),
                        "episodes": episodes}
            bar.set_postfix(valid_reward=f"{value:.3f}",
                            fraction=f"{decisions.fraction.mean():.2f}")
            saver.save({"history": history, "best": best, "episodes": episodes,
                        "update": update})
    bar.close()
    agent.load_state_dict(best["state"])
    agent.requires_grad_(True)
    return {"best_episodes": best["episodes"], "best_valid_reward": best["reward"],
            "history": history}
