"""EmoRL (Lakomkin et al.): a GRU listens, and every decision step an agent chooses to *wait*
for more audio or *terminate* and emit the emotion now.

- state S_k: mean of the GRU hidden states up to the end of step k;
- emotion classifier (EC): softmax(W_c S_k + b_c) over K classes (σ for the paper's binary case);
- action selection (AS): softmax(W_a S_k + b_a) over {wait, terminate} (indices 0, 1:
  ``early.decisions.WAIT``, ``TERMINATE``);
- baseline reward estimator (BRE): b_k = W_b S_k + b_b, fed a detached S_k so that its gradient
  never reaches the GRU.

The GRU and EC have exactly the shapes of :class:`GruBaseline`, so a trained baseline initialises
them (:meth:`EmoRL.from_baseline`).
"""

from __future__ import annotations

import torch
from torch import nn

from emovox.models.base import MODELS, length_mask, masked_mean, run_rnn
from emovox.models.recurrent import GruBaseline


def running_means(h: torch.Tensor, lengths: torch.Tensor, read: torch.Tensor) -> torch.Tensor:
    """The mean of the first ``read[b, k]`` real frames of each [B, T, H] sequence: the state
    every early-decision rule reads (the agent in training, offline scoring and streaming)."""
    cumsum = torch.cumsum(h * length_mask(lengths, h.shape[1]).unsqueeze(-1), dim=1)
    index = (read - 1).clamp(min=0).unsqueeze(-1).expand(-1, -1, h.shape[2])
    return torch.gather(cumsum, 1, index) / read.clamp(min=1).unsqueeze(-1).to(h.dtype)


def prefix_means(h: torch.Tensor, lengths: torch.Tensor, step: int,
                 max_steps: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Running means of [B, T, H] states at the end of every decision step.

    Returns S [B, K, H], the number of frames read at each step [B, K] and a [B, K] mask of the
    steps that exist (step k exists while k·step < length). The last step of an utterance ends
    at its last frame.
    """
    n_steps = -(-h.shape[1] // step)
    if max_steps is not None:
        n_steps = min(n_steps, max_steps)
    ends = torch.arange(1, n_steps + 1, device=h.device) * step  # frames read after step k
    read = torch.minimum(ends[None, :], lengths[:, None])  # [B, K]
    exists = (ends[None, :] - step) < lengths[:, None]
    return running_means(h, lengths, read), read, exists


@MODELS.register("emorl")
class EmoRL(nn.Module):
    """EmoRL's agent: a GRU, an emotion classifier, a wait/terminate policy and a baseline
    reward estimator, all reading the running mean of the GRU's states."""

    def __init__(self, input_dim: int, n_outputs: int, hidden: int = 128):
        super().__init__()
        self.gru = nn.GRU(input_dim, hidden, batch_first=True)
        self.classifier = nn.Linear(hidden, n_outputs)
        self.policy = nn.Linear(hidden, 2)
        self.baseline = nn.Linear(hidden, 1)

    @classmethod
    def from_baseline(cls, baseline: GruBaseline) -> EmoRL:
        gru, head = baseline.gru, baseline.head[-1]
        agent = cls(gru.input_size, head.out_features, gru.hidden_size)
        agent.gru.load_state_dict(gru.state_dict())
        agent.classifier.load_state_dict(head.state_dict())
        return agent

    def states(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return run_rnn(self.gru, x, lengths)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Class logits after the whole utterance (the EC on the full mean)."""
        return self.classifier(masked_mean(self.states(x, lengths), lengths))

    def steps(self, x: torch.Tensor, lengths: torch.Tensor, step: int,
              max_steps: int | None = None) -> dict[str, torch.Tensor]:
        """EC logits, AS logits and BRE values at every decision step."""
        states, read, exists = prefix_means(self.states(x, lengths), lengths, step, max_steps)
        return agent_outputs(self, states, read, exists)


def agent_outputs(agent: nn.Module, states: torch.Tensor, read: torch.Tensor,
                  exists: torch.Tensor) -> dict[str, torch.Tensor]:
    """What REINFORCE and every decision rule read of an agent at each step of [B, K, H]
    states."""
    return {
        "class_logits": agent.classifier(states),
        "action_logits": agent.policy(states),
        "baseline": agent.baseline(states.detach()).squeeze(-1),
        "read": read,
        "exists": exists,
    }


class StepAgent(nn.Module):
    """EmoRL's agent on states computed outside it, one per decision step ([B, K, D]): a
    recogniser-layer head re-encodes the heard audio every step, so its state at step k is the
    pooled, normalised prefix heard then, not a running mean of one pass. The classifier starts
    as the head's linear layer (:meth:`from_head`); no recurrent part (``gru`` is the identity,
    so REINFORCE's freezing schedule applies to the classifier alone). Step k reads k + 1
    steps."""

    def __init__(self, input_dim: int, n_outputs: int):
        super().__init__()
        self.gru = nn.Identity()
        self.classifier = nn.Linear(input_dim, n_outputs)
        self.policy = nn.Linear(input_dim, 2)
        self.baseline = nn.Linear(input_dim, 1)

    @classmethod
    def from_head(cls, head: nn.Linear) -> StepAgent:
        agent = cls(head.in_features, head.out_features)
        agent.classifier.load_state_dict(head.state_dict())
        return agent

    def steps(self, x: torch.Tensor, lengths: torch.Tensor, step: int = 1,
              max_steps: int | None = None) -> dict[str, torch.Tensor]:
        """``x`` [B, K, D]: the state of every step; ``lengths``: steps per utterance."""
        if max_steps is not None:
            x = x[:, :max_steps]
        k = torch.arange(1, x.shape[1] + 1, device=x.device)[None, :]
        read = torch.minimum(k, lengths[:, None])
        return agent_outputs(self, x, read, k <= lengths[:, None])
