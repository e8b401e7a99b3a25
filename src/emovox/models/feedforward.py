"""Feed-forward networks on utterance-level features (openSMILE functionals, or frames
mean-pooled over time): the neural counterpart of the SVM anchor, on the same inputs."""

from __future__ import annotations

import torch
from torch import nn

from emovox.models.base import MODELS, SequenceModel, masked_mean


@MODELS.register("mlp")
class Mlp(SequenceModel):
    """Mean over time (a no-op on functionals, which are one frame), then ``layers`` blocks of
    Linear → LayerNorm → ReLU → dropout of width ``hidden``, then dropout and softmax. Wide inputs
    such as ComParE's 6,373 functionals meet input dropout (``input_dropout``) first: with a few
    hundred training utterances, dropping features is the regulariser that lets a network match
    a linear SVM."""

    def __init__(self, input_dim: int, n_outputs: int, hidden: int = 256, layers: int = 1,
                 dropout: float = 0.5, input_dropout: float = 0.2):
        super().__init__(hidden if layers else input_dim, n_outputs, 0.0 if layers else dropout)
        blocks: list[nn.Module] = [nn.Dropout(input_dropout)]
        width = input_dim
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.LayerNorm(hidden), nn.ReLU(),
                       nn.Dropout(dropout)]
            width = hidden
        self.body = nn.Sequential(*blocks)

    def encode(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.body(masked_mean(x, lengths))
