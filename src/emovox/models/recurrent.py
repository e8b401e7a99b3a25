"""Recurrent models: EmoRL's single-GRU baseline and the papers' bidirectional GRU."""

from __future__ import annotations

import torch
from torch import nn

from emovox.models.base import (
    POOLED_WIDTH,
    SequenceModel,
    masked_mean,
    pooling,
    register_model,
    run_rnn,
)


@register_model("gru_baseline")
class GruBaseline(SequenceModel):
    """One GRU layer, mean of its hidden states, a linear classifier (EmoRL's baseline).

    :meth:`states` exposes the per-frame hidden states for prefix and early-exit decisions.
    """

    def __init__(self, input_dim: int, n_outputs: int, hidden: int = 128, dropout: float = 0.0):
        super().__init__(hidden, n_outputs, dropout)
        self.gru = nn.GRU(input_dim, hidden, batch_first=True)

    def states(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return run_rnn(self.gru, x, lengths)

    def encode(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return masked_mean(self.states(x, lengths), lengths)


@register_model("bigru")
class BiGru(SequenceModel):
    """Bidirectional GRU layers, mean pooling over time, dropout, softmax (width 64/96/128).

    ``pool: stats`` concatenates the standard deviation to the mean (statistics pooling).
    """

    def __init__(
        self,
        input_dim: int,
        n_outputs: int,
        hidden: int = 128,
        layers: int = 2,
        dropout: float = 0.25,
        pool: str = "mean",
    ):
        super().__init__(2 * hidden * POOLED_WIDTH.get(pool, 1), n_outputs, dropout)
        self.pool = pooling(pool)
        self.gru = nn.GRU(input_dim, hidden, num_layers=layers, batch_first=True,
                          bidirectional=True, dropout=dropout if layers > 1 else 0.0)

    def encode(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.pool(run_rnn(self.gru, x, lengths), lengths)
