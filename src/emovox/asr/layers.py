"""Hidden states of a frozen speech recogniser as features, and feature concatenation.

Importing this module does not import PyTorch: :func:`whisper_frames` (how a recording is cut
into Whisper's 30 s contexts) also drives the ONNX runtime's ``features.onnx``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from emovox.asr.frames import CONTEXT_FRAMES, FRAME_SAMPLES, context_offsets, frames_of
from emovox.errors import ConfigError
from emovox.features.base import EXTRACTORS, Extractor, make_extractor

#: ``encode(audio [B, samples], offset [B]) → [B, frames, dim]``: the layers of a batch of
#: equally long pieces of audio, each row's first frame at position ``offset`` of the context.
Encode = Callable[[np.ndarray, np.ndarray], np.ndarray]
#: ``encode(windows [B, margin + samples], first [B], rings) → frames [B, n, dim]``: one block
#: per row, frame ``first`` of its utterance onwards, after its stream's keys and values (a
#: ring each, updated in place: ``asr.whisper.BlockCausalStates.step``).
BlockEncode = Callable[[np.ndarray, np.ndarray, list[Any]], np.ndarray]


def whisper_frames(wave: np.ndarray, first_frame: int, pad: bool, encode: Encode) -> np.ndarray:
    """``whisper_layers`` frames of a recording whose first sample starts frame
    ``first_frame``: 30 s windows through ``encode`` (``pad``: each padded to 30 s, as Whisper
    was trained); the first window keeps its place in Whisper's context, later ones start it
    afresh. PyTorch (the extractor) and onnxruntime (an export) both cut audio here."""
    window = CONTEXT_FRAMES * FRAME_SAMPLES
    out = []
    for start in range(0, max(len(wave), 1), window):
        piece = np.asarray(wave[start : start + window], dtype=np.float32)
        frames = frames_of(len(piece))
        offset = 0 if pad or start else int(context_offsets(first_frame, frames))
        if pad:
            piece = np.pad(piece, (0, window - len(piece)))
        out.append(encode(piece[None], np.array([offset], dtype=np.int64))[0, :frames])
    return np.concatenate(out)


@EXTRACTORS.register
class WhisperLayers(Extractor):
    """Whisper encoder hidden states at 50 frames/s: ``layers`` is an index (0 = the
    convolutional front end, x = block x), a list of them (concatenated), or ``all``.

    ``pad: true`` feeds each 30 s window padded as Whisper was trained (exact, ~15× slower on
    short utterances); the default feeds the utterance's own frames. Longer audio is cut into
    30 s windows.

    ``block_ms`` > 0 encodes block-causally (``asr.whisper.BlockCausalStates``): each block of
    ``block_ms`` sees itself and the ``context_ms`` before it, never later audio, so a stream
    encodes each block once (:meth:`encode_block`) and its frames are these offline frames.
    0 (the default) is the whole-utterance encoding; cache keys of such configs are unchanged.
    """

    name = "whisper_layers"
    version = 1

    @dataclass(frozen=True)
    class Params:
        #: A Whisper size (``tiny.en``, ``base``, ...) or a converted checkpoint's directory.
        model: str = "tiny.en"
        layers: int | list[int] | Literal["all"] = 2
        pad: bool = False
        #: Block-causal encoding: the block (a multiple of 20 ms; 0 = off) and the context
        #: before it that each layer attends to (a multiple of 20 ms).
        block_ms: int = 0
        context_ms: int = 2000
        #: Block-causal only: the transformer's matrix products in bfloat16 (about 2× faster
        #: on CPUs with bfloat16 instructions; ``asr.whisper.BlockCausalStates``).
        bf16: bool = False
        #: Block-causal only: audio after a block that its frames attend to (at most a block;
        #: a multiple of 20 ms); a stream's frames come a block later, a step costs more.
        lookahead_ms: int = 0

    def key_params(self) -> dict[str, Any]:
        """Without the block-causal parameters while they are off, nor ``bf16`` and
        ``lookahead_ms`` while they are: configurations keep the cache keys they had before
        these parameters existed."""
        off = {"bf16": False, "lookahead_ms": 0}
        if not self.params["block_ms"]:
            off.update(block_ms=0, context_ms=self.params["context_ms"])
        return {k: v for k, v in self.params.items() if k not in off or off[k] != v}

    @property
    def encoder(self):
        from emovox.asr.whisper import load_encoder

        return load_encoder(str(self.params["model"]))

    @property
    def layer_indices(self) -> list[int]:
        layers, n = self.params["layers"], self.encoder.n_layers
        indices = list(range(n + 1)) if layers == "all" else (
            [layers] if isinstance(layers, int) else list(layers))
        bad = [i for i in indices if not 0 <= int(i) <= n]
        if bad:
            raise ConfigError(f"whisper_layers: layer(s) {bad} out of range 0..{n} for "
                              f"{self.params['model']}")
        return [int(i) for i in indices]

    @property
    def frame_rate(self) -> float:
        return 50.0

    @property
    def dim(self) -> int:
        return self.encoder.width * len(self.layer_indices)

    @property
    def layer_states(self):
        """The encoder with its log-mel front end, up to the chosen layers
        (``asr.whisper.LayerStates``; what ``features.onnx`` exports); None for a Hugging Face
        checkpoint."""
        from emovox.asr.whisper import WhisperEncoder, layer_states

        if not isinstance(self.encoder, WhisperEncoder):
            return None
        return layer_states(str(self.params["model"]), tuple(self.layer_indices))

    @property
    def block_causal(self):
        """``asr.whisper.BlockCausalStates`` of this extractor; None when ``block_ms`` is 0."""
        block, context, ahead = (int(self.params[k]) for k in ("block_ms", "context_ms",
                                                               "lookahead_ms"))
        if not block:
            if self.params["bf16"] or ahead:
                raise ConfigError("whisper_layers: bf16 and lookahead_ms are for block-causal "
                                  "encoding (block_ms)")
            return None
        if block % 20 or context % 20 or ahead % 20 or context < 0 or not 0 <= ahead <= block \
                or self.params["pad"]:
            raise ConfigError(f"whisper_layers: block_ms={block}, context_ms={context}, "
                              f"lookahead_ms={ahead}: multiples of 20 ms (one encoder frame), "
                              "the lookahead at most a block, without pad")
        from emovox.asr.whisper import block_causal_states

        if self.layer_states is None:
            raise ConfigError("whisper_layers: block_ms needs CTranslate2 Whisper weights")
        return block_causal_states(str(self.params["model"]), tuple(self.layer_indices),
                                   block // 20, context // 20, bool(self.params["bf16"]),
                                   ahead // 20)

    def encode_block(self, windows: np.ndarray, first: np.ndarray, rings: list) -> np.ndarray:
        """A :data:`BlockEncode`: one block per row after its front-end margin
        (:data:`FRONT_MARGIN` samples), each after its stream's ring of keys and values
        (``asr.whisper.BlockCausalStates.step``, updated in place)."""
        import torch

        with torch.inference_mode():
            return self.block_causal.step(
                torch.from_numpy(np.ascontiguousarray(windows, np.float32)),
                torch.from_numpy(np.asarray(first, np.int64)), rings).numpy()

    def encode(self, audio: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """The chosen layers of a batch of equally long pieces (an :data:`Encode`)."""
        import torch

        from emovox.asr.whisper import log_mel

        encoder, indices, states_of = self.encoder, self.layer_indices, self.layer_states
        with torch.inference_mode():
            if states_of is not None:
                return states_of(torch.from_numpy(np.ascontiguousarray(audio, np.float32)),
                                 torch.from_numpy(offset)).numpy()
            if encoder.n_mels == 0:  # a wav2vec2-style checkpoint takes the waveform
                states = encoder(torch.from_numpy(audio))
            else:  # Hugging Face's Whisper: the log-mel of its full context
                states = encoder(torch.stack([log_mel(a, encoder.n_mels) for a in audio]))
            return torch.cat([states[i] for i in indices], -1).numpy()

    def extract_from(self, wave: np.ndarray, first_frame: int) -> np.ndarray:
        """Frames keep their place in Whisper's context (position ``first_frame`` onwards, within
        the 30 s window that holds them): a window cut from a stream is encoded as its frames
        are in the whole recording, up to the context they lack."""
        return np.ascontiguousarray(self.compute(np.asarray(wave, np.float32), first_frame),
                                    np.float32)

    def compute(self, wave: np.ndarray, first_frame: int = 0) -> np.ndarray:
        blocks = self.block_causal
        if blocks is not None:
            if first_frame:
                raise ConfigError("block-causal whisper_layers frames start with their "
                                  "utterance; a stream encodes its blocks (encode_block)")
            import torch

            with torch.inference_mode():
                return blocks.utterance(wave)
        pad = self.params["pad"] or getattr(self.encoder, "full_context", False)
        return whisper_frames(wave, first_frame, pad, self.encode)


@EXTRACTORS.register
class DeepSpeech2Layers(Extractor):
    """Hidden states of a DeepSpeech2 recogniser trained with ``emovox asr train`` (50 frames/s):
    layer 0 = the convolutions, x = bidirectional GRU x."""

    name = "deepspeech2_layers"
    version = 1

    @dataclass(frozen=True)
    class Params:
        checkpoint: str = "models/ds2/deepspeech2.pt"
        layers: int | list[int] = 2

    @property
    def recogniser(self):
        from emovox.asr.deepspeech2 import load_deepspeech2

        return load_deepspeech2(str(self.params["checkpoint"]))

    @property
    def layer_indices(self) -> list[int]:
        layers = self.params["layers"]
        return [layers] if isinstance(layers, int) else list(layers)

    @property
    def frame_rate(self) -> float:
        return 50.0

    @property
    def dim(self) -> int:
        model, _ = self.recogniser
        conv_width = model.rnns[0].input_size
        return sum(conv_width if i == 0 else model.hidden for i in self.layer_indices)

    def compute(self, wave: np.ndarray) -> np.ndarray:
        import torch

        model, normaliser = self.recogniser
        spec = normaliser.apply([make_extractor("power_spectrogram")(wave)])[0]
        with torch.inference_mode():
            states, _ = model.states(torch.from_numpy(spec)[None], torch.tensor([len(spec)]))
        return torch.cat([states[i][0] for i in self.layer_indices], -1).numpy()
