"""Hidden states of a frozen speech recogniser as features, and feature concatenation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from emovox.errors import ConfigError
from emovox.features.base import EXTRACTORS, Extractor, make_extractor


@EXTRACTORS.register
class WhisperLayers(Extractor):
    """Whisper encoder hidden states at 50 frames/s: ``layers`` is an index (0 = the
    convolutional front end, x = block x), a list of them (concatenated), or ``all``.

    ``pad: true`` feeds each 30 s window padded as Whisper was trained (exact, ~15× slower on
    short utterances); the default feeds the utterance's own frames. Longer audio is cut into
    30 s windows.
    """

    name = "whisper_layers"
    version = 1

    @dataclass(frozen=True)
    class Params:
        #: A Whisper size (``tiny.en``, ``base``, ...) or a converted checkpoint's directory.
        model: str = "tiny.en"
        layers: int | list[int] | Literal["all"] = 2
        pad: bool = False

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

    def extract_from(self, wave: np.ndarray, first_frame: int) -> np.ndarray:
        """Frames keep their place in Whisper's context (position ``first_frame`` onwards, within
        the 30 s window that holds them): a window cut from a stream is encoded as its frames
        are in the whole recording, up to the context they lack."""
        return np.ascontiguousarray(self.compute(np.asarray(wave, np.float32), first_frame),
                                    np.float32)

    def compute(self, wave: np.ndarray, first_frame: int = 0) -> np.ndarray:
        from emovox.asr.whisper import CHUNK_FRAMES, HOP, log_mel

        encoder, indices = self.encoder, self.layer_indices
        pad = self.params["pad"] or getattr(encoder, "full_context", False)
        window = CHUNK_FRAMES * HOP
        out = []
        with torch.inference_mode():
            for start in range(0, max(len(wave), 1), window):
                piece = wave[start : start + window]
                if encoder.n_mels == 0:  # a wav2vec2-style checkpoint takes the waveform
                    states = encoder(torch.from_numpy(piece)[None])
                    frames = states[0].shape[1]
                else:
                    mel = log_mel(piece, encoder.n_mels, CHUNK_FRAMES if pad else None)
                    frames = -(-(len(piece) // HOP) // 2)
                    offset = 0 if pad or start else \
                        min(first_frame % (CHUNK_FRAMES // 2), CHUNK_FRAMES // 2 - frames)
                    states = encoder(mel[None], upto=max(indices), offset=offset)
                out.append(torch.cat([states[i][0, :frames] for i in indices], -1).numpy())
        return np.concatenate(out)


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
        model, normaliser = self.recogniser
        spec = normaliser.apply([make_extractor("power_spectrogram")(wave)])[0]
        with torch.inference_mode():
            states, _ = model.states(torch.from_numpy(spec)[None], torch.tensor([len(spec)]))
        return torch.cat([states[i][0] for i in self.layer_indices], -1).numpy()
