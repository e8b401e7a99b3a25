"""Model registry and the pieces every sequence model shares: masks, pooling, heads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from emovox.errors import ConfigError
from emovox.registry import Registry

#: Builders taking ``input_dim`` and ``n_outputs`` (from the data) and their own typed keyword
#: parameters (``model.params``).
MODELS: Registry[Callable[..., Any]] = Registry("model", providers=(
    "emovox.models.convolutional", "emovox.models.emorl", "emovox.models.feedforward",
    "emovox.models.recurrent",
    "emovox.models.svm"), supplied=("input_dim", "n_outputs"))


def build_model(name: str, input_dim: int, n_outputs: int, **params: Any) -> Any:
    checked = MODELS.params(name, params, "model.params")
    return MODELS.get(name)(input_dim=input_dim, n_outputs=n_outputs, **vars(checked))


def check_model(name: str, params: dict[str, Any], where: str = "model.params") -> None:
    """``model.params`` at config load: its keys and types, then one build, so that sizes
    out of range fail now, not after feature extraction (builders are cheap)."""
    MODELS.params(name, params, where)
    try:  # 10,080 input columns: wider than any branch split, divisible by every layer count
        # up to 10 (Whisper tiny's 5 and base's 7 included) and by 12, 14, 15 and 16
        build_model(name, 10080, 2, **params)
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(f"{where} for model {name!r}: {exc}") from None


def length_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """[B, T] True on real frames, False on padding."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def masked_mean(h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean over the real frames of [B, T, H] states."""
    mask = length_mask(lengths, h.shape[1]).unsqueeze(-1).to(h.dtype)
    return (h * mask).sum(1) / lengths.clamp(min=1).unsqueeze(-1).to(h.dtype)


def masked_max(h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    mask = length_mask(lengths, h.shape[1]).unsqueeze(-1)
    return h.masked_fill(~mask, float("-inf")).amax(1)


def masked_stats(h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean and standard deviation over the real frames: [B, 2H] (statistics pooling)."""
    mean = masked_mean(h, lengths)
    var = masked_mean((h - mean.unsqueeze(1)) ** 2, lengths)
    return torch.cat([mean, (var + 1e-6).sqrt()], dim=-1)


#: How a model pools frames over time (a ``pool`` parameter's choices).
Pooling = Literal["mean", "stats", "max"]
POOLING = {"mean": masked_mean, "stats": masked_stats, "max": masked_max}
POOLED_WIDTH = {"mean": 1, "stats": 2, "max": 1}


def pooling(name: str):
    if name not in POOLING:
        raise ConfigError(f"unknown pooling {name!r}; choose from {sorted(POOLING)}")
    return POOLING[name]


def run_rnn(rnn: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Run a batch-first RNN on padded input so that padding never reaches the states."""
    packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    out, _ = rnn(packed)
    return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]


class SequenceModel(nn.Module):
    """``encode`` maps [B, T, D] frames to a [B, H] utterance vector; a dropout + linear head
    maps it to class logits (or regression outputs)."""

    #: ``encode`` is linear in the frames up to a mean over time, so a [B, 1, D] input of each
    #: utterance's time mean (lengths 1) gives the same outputs as its frames: such a model
    #: trains on per-utterance means, never holding frames (``Dataset.sequences(pooled=...)``).
    reads_time_mean: bool = False

    def __init__(self, pooled_dim: int, n_outputs: int, dropout: float = 0.0):
        super().__init__()
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(pooled_dim, n_outputs))

    def encode(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(self.encode(x, lengths))
