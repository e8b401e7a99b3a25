"""Feature extractors register themselves by name and describe their own output."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from emovox.audio import SAMPLE_RATE
from emovox.registry import Registry
from emovox.schema import build


class Extractor:
    """Turns mono 16 kHz samples into a [frames, dim] float32 matrix.

    Subclasses set ``name`` and ``Params`` (the typed parameters, ``features.params``) and
    implement :meth:`compute`. ``frame_rate`` is in frames per second, or None for one vector
    per utterance (functionals).
    """

    name: ClassVar[str]

    @dataclass(frozen=True)
    class Params:
        """No parameters."""

    #: Bumped when the computation changes, so stale cache entries are never reused.
    version: ClassVar[int] = 2
    sample_rate: int = SAMPLE_RATE

    def __init__(self, **params: Any):
        checked = build(self.Params, params, "features.params",
                        f" for feature extractor {self.name!r}")
        #: Every parameter, defaults filled in: the cache key and the saved settings.
        self.params: dict[str, Any] = dataclasses.asdict(checked)

    @property
    def frame_rate(self) -> float | None:
        return 1000.0 / self.params["hop_ms"] if "hop_ms" in self.params else None

    @property
    def dim(self) -> int:
        raise NotImplementedError

    def compute(self, wave: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.compute(np.asarray(wave, dtype=np.float32)), np.float32)

    def extract_long(self, wave: np.ndarray) -> np.ndarray:
        """The same features as ``self(wave)``, in bounded memory on long recordings where the
        extractor allows it (frame-local extractors compute chunk by chunk)."""
        return self(wave)

    def extract_from(self, wave: np.ndarray, first_frame: int) -> np.ndarray:
        """Features of audio that starts at frame ``first_frame`` of a longer recording (a
        stream's window): ``self(wave)`` unless where the audio sits changes its features
        (Whisper's absolute positions)."""
        return self(wave)

    def settings(self) -> dict[str, Any]:
        """Everything needed to rebuild this extractor (saved in model directories)."""
        return {"name": self.name, "params": dict(self.params)}

    def key_params(self) -> dict[str, Any]:
        """The parameters the cache key reads (all of them, unless a subclass says why not)."""
        return self.params

    def key(self) -> str:
        """Cache key of the configuration: name, parameters and computation version."""
        blob = json.dumps([self.name, self.version, self.key_params()], sort_keys=True)
        return f"{self.name}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def stack_frames(feats: np.ndarray, k: int) -> np.ndarray:
    """[T, D] → [ceil(T/k), k·D]: each row holds k consecutive frames (the last repeated to
    fill the tail)."""
    if k <= 1:
        return feats
    rows = -(-len(feats) // k)
    padded = np.concatenate([feats, np.repeat(feats[-1:], rows * k - len(feats), axis=0)])
    return padded.reshape(rows, k * feats.shape[1])


#: Recogniser-layer extractors live with their recognisers in ``emovox.asr``.
EXTRACTORS: Registry[type[Extractor]] = Registry("feature extractor", providers=(
    "emovox.features.spectral", "emovox.features.smile", "emovox.features.concat",
    "emovox.features.stft", "emovox.asr.layers"))


def make_extractor(name: str, **params: Any) -> Extractor:
    return EXTRACTORS.get(name)(**params)

