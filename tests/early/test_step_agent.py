"""EmoRL's agent on per-step states (a recogniser-layer head's re-encoded prefixes)."""

from __future__ import annotations

import numpy as np
import torch

from emovox.early.reinforce import EmoRLConfig, greedy_decisions, train_emorl
from emovox.models.emorl import StepAgent
from emovox.training import SequenceSet


def states(n: int, seed: int) -> SequenceSet:
    """Step 0 says nothing; from step 1 on the class is plain; 4–6 steps per utterance."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    seqs = []
    for label in y:
        k = int(rng.integers(4, 7))
        x = rng.normal(0, 1, (k, 6)).astype(np.float32)
        x[1:, label] += 4.0
        seqs.append(x)
    return SequenceSet(seqs, y.astype(np.int64))


def test_steps_read_one_state_per_step():
    head = torch.nn.Linear(6, 3)
    agent = StepAgent.from_head(head)
    assert torch.equal(agent.classifier.weight, head.weight)
    x, lengths, _ = states(5, 0).batch(np.arange(5))
    out = agent.steps(x, lengths)
    assert out["class_logits"].shape == (5, x.shape[1], 3)
    assert torch.equal(out["exists"].sum(1), lengths)
    assert torch.equal(out["read"][:, 0], torch.ones(5, dtype=out["read"].dtype))
    torch.testing.assert_close(out["class_logits"], head(x))


def test_agent_learns_to_wait_for_the_step_that_tells():
    """From a classifier that is right once the class shows (step ≥ 1), a harsh reward for
    wrong decisions teaches the policy to skip step 0 and stop soon after."""
    train, valid = states(400, 1), states(100, 2)
    head = torch.nn.Linear(6, 3)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.weight[:, :3] = 2 * torch.eye(3)
    agent = StepAgent.from_head(head)
    config = EmoRLConfig(episodes=6000, freeze_episodes=6000, eval_every=1000, lr=1e-2,
                         r_fp=-3.0, latency_weight=1.0)
    train_emorl(agent, train, valid, config, frame_rate=1000 / config.step_ms, positive=0,
                seed=0, progress=False)
    decisions = greedy_decisions(agent, valid, 1, 1000 / config.step_ms)
    assert np.mean(decisions.step == 0) < 0.1  # not at step 0, where it could only guess
    assert np.mean(decisions.step) < 2.0  # nor waiting for the end (4–6 steps)
    assert np.mean(decisions.proba.argmax(1) == valid.targets) > 0.9
