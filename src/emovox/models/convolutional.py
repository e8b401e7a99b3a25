"""The robustness paper's 1-D CNN: three convolution + batch-norm + ReLU blocks, max over time."""

from __future__ import annotations

import torch
from torch import nn

from emovox.models.base import MODELS, SequenceModel, length_mask, masked_max


@MODELS.register("cnn1d")
class Cnn1d(SequenceModel):
    """1-D convolutions over time on frame features, max pooling, softmax (the robustness
    paper's CNN)."""

    def __init__(
        self,
        input_dim: int,
        n_outputs: int,
        channels: int = 128,
        kernel: int = 5,
        layers: int = 3,
        dropout: float = 0.25,
    ):
        super().__init__(channels, n_outputs, dropout)
        blocks: list[nn.Module] = []
        width = input_dim
        for _ in range(layers):
            blocks.append(nn.ModuleList([
                nn.Conv1d(width, channels, kernel, padding=kernel // 2),
                nn.BatchNorm1d(channels),
            ]))
            width = channels
        self.blocks = nn.ModuleList(blocks)

    def encode(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = length_mask(lengths, x.shape[1]).unsqueeze(1).to(x.dtype)  # [B, 1, T]
        h = x.transpose(1, 2) * mask
        for conv, norm in self.blocks:
            h = torch.relu(norm(conv(h))) * mask  # padding stays zero for the next layer
        return masked_max(h.transpose(1, 2), lengths)
