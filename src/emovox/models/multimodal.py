"""Cross-modal attention over audio and text (Krishna D N & Patil, "Multimodal Emotion
Recognition using Cross-Modal Attention and 1D Convolutional Neural Networks").

Audio encoder: three Conv1d → BatchNorm1d → ReLU → MaxPool1d blocks (kernels 3, 5, 7; 64, 100,
100 filters) and a BiLSTM (100 per direction). The paper gives no strides or pool sizes; the
defaults for the raw 16 kHz waveform (conv strides 4, 2, 2; pools 4, 4, 4) shrink time 1,024×
(10 s → 156 steps of 64 ms) so the LSTM and attention stay cheap (T ≪ N); a spectrogram input
(100 frames/s) uses strides 1 and pools 2 (8×). Text encoder: Conv1d with kernel 1 (a projection
of the word vectors to 100) and a BiLSTM (100). Both 200-d outputs are projected to 100-d.

CMA-1 attends from audio (queries) to text (keys, values), CMA-2 from text to audio; each is two
pre-LN multi-head attention layers (10 heads) with a position-wise feed-forward layer (hidden
100). Keys of padded frames and words are masked; each CMA output is statistics-pooled (mean and
standard deviation over its real query steps), the two are concatenated and classified.
Unimodal variants put the same modality on both sides: ``audio`` (the paper's audio-only
row) or ``text``.
"""

from __future__ import annotations

import torch
from torch import nn

from emovox.errors import ConfigError
from emovox.models.base import length_mask, masked_stats, run_rnn

MODALITIES = ("both", "audio", "text")


class AudioEncoder(nn.Module):
    """Conv blocks then a BiLSTM over [B, T, D] input (D = 1 for the raw waveform)."""

    def __init__(self, in_dim: int, channels: tuple[int, ...] = (64, 100, 100),
                 kernels: tuple[int, ...] = (3, 5, 7), strides: tuple[int, ...] = (4, 2, 2),
                 pools: tuple[int, ...] = (4, 4, 4), hidden: int = 100, dropout: float = 0.2):
        super().__init__()
        if not len(channels) == len(kernels) == len(strides) == len(pools):
            raise ConfigError("audio encoder: channels, kernels, strides and pools differ "
                              "in length")
        self.kernels, self.strides, self.pools = kernels, strides, pools
        blocks, width = [], in_dim
        for c, k, s, p in zip(channels, kernels, strides, pools, strict=True):
            blocks += [nn.Conv1d(width, c, k, stride=s, padding=k // 2), nn.BatchNorm1d(c),
                       nn.ReLU(), nn.MaxPool1d(p) if p > 1 else nn.Identity()]
            width = c
        self.convs = nn.Sequential(*blocks)
        self.rnn = nn.LSTM(width, hidden, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.min_length = self._min_length()

    def out_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Steps after the conv stack for inputs of ``lengths`` samples/frames."""
        for k, s, p in zip(self.kernels, self.strides, self.pools, strict=True):
            lengths = torch.div(lengths + 2 * (k // 2) - k, s, rounding_mode="floor") + 1
            lengths = torch.div(lengths, p, rounding_mode="floor")
        return lengths

    def _min_length(self) -> int:
        """Shortest input that leaves at least one step (the receptive field, roughly)."""
        n = 1
        while self.out_lengths(torch.tensor([n])).item() < 1:
            n *= 2
        lo, hi = n // 2, n
        while lo + 1 < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if self.out_lengths(torch.tensor([mid])).item() >= 1 else (mid, hi)
        return hi

    def forward(self, x: torch.Tensor, lengths: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs shorter than :attr:`min_length` are zero-padded up to it (one step out)."""
        lengths = lengths.clamp(min=self.min_length)
        if x.shape[1] < self.min_length:
            x = nn.functional.pad(x, (0, 0, 0, self.min_length - x.shape[1]))
        h = self.convs(x.transpose(1, 2)).transpose(1, 2)
        out = self.out_lengths(lengths).clamp(min=1, max=h.shape[1])
        return self.dropout(run_rnn(self.rnn, h, out)), out


class TextEncoder(nn.Module):
    """Word vectors → Conv1d (kernel 1, a per-word projection) → BiLSTM."""

    def __init__(self, in_dim: int, filters: int = 100, hidden: int = 100,
                 dropout: float = 0.2):
        super().__init__()
        self.proj = nn.Conv1d(in_dim, filters, 1)
        self.rnn = nn.LSTM(filters, hidden, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(self.proj(x.transpose(1, 2))).transpose(1, 2)
        lengths = lengths.clamp(min=1)
        return self.dropout(run_rnn(self.rnn, h, lengths)), lengths


class CrossAttentionLayer(nn.Module):
    """Pre-LN: x + MHA(LN(x), LN(kv)), then + FF(LN(x)) (hidden = width)."""

    def __init__(self, width: int = 100, heads: int = 10, dropout: float = 0.2):
        super().__init__()
        self.ln_q, self.ln_kv, self.ln_ff = (nn.LayerNorm(width) for _ in range(3))
        self.attn = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Dropout(dropout),
                                nn.Linear(width, width))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, kv: torch.Tensor, kv_pad: torch.Tensor,
                weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        kv = self.ln_kv(kv)
        a, w = self.attn(self.ln_q(x), kv, kv, key_padding_mask=kv_pad, need_weights=weights)
        x = x + self.dropout(a)
        return x + self.dropout(self.ff(self.ln_ff(x))), w


class CrossModalAttention(nn.Module):
    """Two cross-attention layers: queries from one sequence, keys and values from another."""

    def __init__(self, width: int = 100, heads: int = 10, layers: int = 2, dropout: float = 0.2):
        super().__init__()
        self.layers = nn.ModuleList(CrossAttentionLayer(width, heads, dropout)
                                    for _ in range(layers))

    def forward(self, q: torch.Tensor, kv: torch.Tensor, kv_lengths: torch.Tensor,
                weights: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
        pad = ~length_mask(kv_lengths, kv.shape[1])
        maps = []
        for layer in self.layers:
            q, w = layer(q, kv, pad, weights)
            if w is not None:
                maps.append(w)
        return q, maps


class MultimodalCMA(nn.Module):
    """The full network; ``forward((audio, text), (audio_lengths, text_lengths))`` → logits.

    ``audio`` is [B, T, D] (samples or frames), ``text`` [B, W, E] word vectors; the modality
    not used by the variant may be None.
    """

    def __init__(self, n_outputs: int, modality: str = "both", audio_dim: int = 1,
                 text_dim: int = 50, width: int = 100, heads: int = 10, layers: int = 2,
                 dropout: float = 0.2, mask_audio: bool = True,
                 audio: dict | None = None):
        super().__init__()
        if modality not in MODALITIES:
            raise ConfigError(f"modality must be one of {MODALITIES}, not {modality!r}")
        self.modality, self.mask_audio = modality, mask_audio
        self.audio = self.text = None
        if modality in ("both", "audio"):
            self.audio = AudioEncoder(audio_dim, dropout=dropout, **(audio or {}))
            self.audio_proj = nn.Linear(2 * self.audio.rnn.hidden_size, width)
        if modality in ("both", "text"):
            self.text = TextEncoder(text_dim, 100, 100, dropout)
            self.text_proj = nn.Linear(2 * self.text.rnn.hidden_size, width)
        self.cma1 = CrossModalAttention(width, heads, layers, dropout)
        self.cma2 = CrossModalAttention(width, heads, layers, dropout)
        self.head = nn.Linear(4 * width, n_outputs)

    def encode(self, x: tuple, lengths: tuple) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        out = {}
        if self.audio is not None:
            h, n = self.audio(x[0], lengths[0])
            if not self.mask_audio:  # the paper's setup: padding counts as signal
                n = torch.full_like(n, h.shape[1])
            out["audio"] = (self.audio_proj(h), n)
        if self.text is not None:
            h, n = self.text(x[1], lengths[1])
            out["text"] = (self.text_proj(h), n)
        return out

    def _run(self, x: tuple, lengths: tuple, weights: bool = False):
        enc = self.encode(x, lengths)
        a = enc.get("audio", enc.get("text"))
        t = enc.get("text", enc.get("audio"))
        h1, w1 = self.cma1(a[0], t[0], t[1], weights)   # CMA-1: audio queries text
        h2, w2 = self.cma2(t[0], a[0], a[1], weights)   # CMA-2: text queries audio
        pooled = torch.cat([masked_stats(h1, a[1]), masked_stats(h2, t[1])], dim=-1)
        return self.head(pooled), {"cma1": w1, "cma2": w2, "lengths": (a[1], t[1])}

    def forward(self, x: tuple, lengths: tuple) -> torch.Tensor:
        return self._run(x, lengths)[0]

    @torch.no_grad()
    def attention(self, x: tuple, lengths: tuple) -> dict:
        """Head-averaged attention maps of every CMA layer ([B, queries, keys] each) and the
        real query/key lengths."""
        self.eval()
        return self._run(x, lengths, weights=True)[1]
