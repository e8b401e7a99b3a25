"""Recurrent models: EmoRL's single-GRU baseline (also RNN-x of the transfer paper), the papers'
bidirectional GRU, and the transfer paper's MP-x and progressive network."""

from __future__ import annotations

import torch
from torch import nn

from emovox.errors import ConfigError
from emovox.models.base import (
    MODELS,
    POOLED_WIDTH,
    Pooling,
    SequenceModel,
    masked_mean,
    pooling,
    run_rnn,
)


@MODELS.register("rnn")
@MODELS.register("gru_baseline")
class GruBaseline(SequenceModel):
    """One GRU layer, mean of its hidden states, dropout, a linear classifier: EmoRL's baseline,
    and (as ``rnn``) Fine-tuning RNN-x on a frozen recogniser's layer x.

    :meth:`states` exposes the per-frame hidden states for prefix and early-exit decisions.
    """

    def __init__(self, input_dim: int, n_outputs: int, hidden: int = 128, dropout: float = 0.0):
        super().__init__(hidden, n_outputs, dropout)
        self.gru = nn.GRU(input_dim, hidden, batch_first=True)

    def states(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return run_rnn(self.gru, x, lengths)

    def encode(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return masked_mean(self.states(x, lengths), lengths)


class BiGruEncoder(nn.Module):
    """Bidirectional GRU layers pooled over time: [B, T, D] → [B, 2·hidden·(1 or 2)]."""

    def __init__(self, input_dim: int, hidden: int = 128, layers: int = 2, dropout: float = 0.25,
                 pool: Pooling = "mean"):
        super().__init__()
        self.width = 2 * hidden * POOLED_WIDTH.get(pool, 1)
        self.pool = pooling(pool)
        self.gru = nn.GRU(input_dim, hidden, num_layers=layers, batch_first=True,
                          bidirectional=True, dropout=dropout if layers > 1 else 0.0)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.pool(run_rnn(self.gru, x, lengths), lengths)


@MODELS.register("bigru")
class BiGru(SequenceModel):
    """Bidirectional GRU layers, mean pooling over time, dropout, softmax (width 64/96/128).

    ``pool: stats`` concatenates the standard deviation to the mean (statistics pooling).
    """

    def __init__(self, input_dim: int, n_outputs: int, hidden: int = 128, layers: int = 2,
                 dropout: float = 0.25, pool: Pooling = "mean"):
        encoder = BiGruEncoder(input_dim, hidden, layers, dropout, pool)
        super().__init__(encoder.width, n_outputs, dropout)
        self.encoder = encoder

    def encode(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.encoder(x, lengths)


@MODELS.register("mp")
class MeanPool(SequenceModel):
    """Fine-tuning MP-x: a frozen recogniser's layer x mean-pooled over time, dropout, softmax;
    only the classifier trains."""

    reads_time_mean = True

    def __init__(self, input_dim: int, n_outputs: int, dropout: float = 0.25):
        super().__init__(input_dim, n_outputs, dropout)

    def encode(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return masked_mean(x, lengths)


@MODELS.register("layer_mix")
class LayerMix(SequenceModel):
    """SUPERB's weighted sum of a frozen recogniser's layers: the input holds ``n_layers``
    equally wide layers side by side (``whisper_layers`` with ``layers: all``); a softmax over
    learned layer weights mixes them, the mix is pooled over time (mean or mean + std), then
    dropout and softmax. Learns *which* layers carry emotion instead of picking one by hand."""

    def __init__(self, input_dim: int, n_outputs: int, n_layers: int = 5,
                 dropout: float = 0.25, pool: Pooling = "mean"):
        if n_layers < 1 or input_dim % n_layers:
            raise ConfigError(f"layer_mix: {input_dim} input columns do not split into "
                              f"n_layers={n_layers} equal layers")
        super().__init__(input_dim // n_layers * POOLED_WIDTH[pool], n_outputs, dropout)
        self.n_layers = n_layers
        self.layer_logits = nn.Parameter(torch.zeros(n_layers))
        self.pool = pooling(pool)
        self.reads_time_mean = pool == "mean"  # the mix is linear in each frame

    def layer_weights(self) -> torch.Tensor:
        return torch.softmax(self.layer_logits, 0)

    def encode(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        layers = x.reshape(*x.shape[:2], self.n_layers, -1)
        mixed = (layers * self.layer_weights()[:, None]).sum(2)
        return self.pool(mixed, lengths)


@MODELS.register("progressive")
class Progressive(SequenceModel):
    """Progressive net-x: the frozen recogniser branch (the first ``recogniser_dim`` input
    columns, mean-pooled) beside an end-to-end emotion branch (a BiGRU on the remaining
    columns, e.g. ``mfcc_pitch``, trained from scratch), concatenated before the softmax. Feed it
    a ``concat`` feature of the two."""

    def __init__(self, input_dim: int, n_outputs: int, recogniser_dim: int, hidden: int = 128,
                 layers: int = 2, dropout: float = 0.25):
        if not 0 < recogniser_dim < input_dim:
            raise ConfigError(f"progressive: recogniser_dim {recogniser_dim} must split the "
                              f"{input_dim} input columns into two branches")
        branch = BiGruEncoder(input_dim - recogniser_dim, hidden, layers, dropout)
        super().__init__(recogniser_dim + branch.width, n_outputs, dropout)
        self.recogniser_dim = recogniser_dim
        self.branch = branch

    def encode(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        r = self.recogniser_dim
        return torch.cat([masked_mean(x[..., :r], lengths), self.branch(x[..., r:], lengths)], -1)
