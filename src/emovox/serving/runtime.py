"""What ``emovox predict`` runs, whichever runtime: a model directory on PyTorch
(:class:`emovox.serving.model_dir.Recognizer`) or its ONNX export on onnxruntime
(:class:`emovox.serving.onnx_runtime.OnnxRecognizer`). Both subclass :class:`Runtime` (for its
``predict_file`` and ``speaker_seconds``), which imports neither PyTorch nor another serving
module: the ONNX runtime never imports the PyTorch one. ``for_speaker`` is how both adapt to a
speaker (``serving.adaptation``): the same model, normalised with that speaker's statistics.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from emovox.audio import MAX_SECONDS, load_audio

if TYPE_CHECKING:
    from emovox.features import Extractor, SpeakerStatistics


@runtime_checkable
class Runtime(Protocol):
    """A trained model ready to label audio."""

    #: The order of ``proba``'s classes.
    labels: list[str]
    #: The feature extractor (its frames, unnormalised, make a speaker's statistics).
    extractor: Extractor
    #: The training normalisation (``features.normalise``): ``speaker`` models adapt.
    normalise: str

    @property
    def sample_rate(self) -> int: ...

    def frames(self, wave: np.ndarray) -> np.ndarray:
        """The extractor's frames of one utterance, unnormalised (what a speaker's statistics
        are made of), computed by this runtime (onnxruntime's own ``features.onnx``)."""
        ...

    def features(self, wave: np.ndarray) -> np.ndarray:
        """The network's input for one utterance (features, normalisation, frame stacking)."""
        ...

    def proba(self, wave: np.ndarray) -> np.ndarray:
        """What ``emovox predict`` answers for one utterance, before :meth:`describe`."""
        ...

    def describe(self, proba: np.ndarray) -> dict[str, Any]:
        """``emovox predict``'s record of one utterance's outputs, as the method words it."""
        ...

    def for_speaker(self, statistics: SpeakerStatistics, tau: float) -> Runtime:
        """This model normalising with one speaker's statistics, shrunk toward the training
        statistics by ``tau`` frames (``SpeakerStatistics.normaliser``); only a model trained
        with per-speaker normalisation reads them as training did (others refuse, one line)."""
        ...

    def speaker_seconds(self, statistics: SpeakerStatistics | None) -> float | None:
        """Seconds of audio behind ``statistics`` (their frames at the extractor's rate; None
        for whole-utterance features)."""
        rate = self.extractor.frame_rate
        count = statistics.count if statistics is not None else 0
        return round(count / rate, 2) if rate else None

    def predict_file(self, path: str | Path, max_seconds: float = MAX_SECONDS) -> dict:
        """One file's record; longer files than ``max_seconds`` are refused (one line)."""
        proba = self.proba(load_audio(path, self.sample_rate, max_seconds=max_seconds))
        return {"path": str(path), **self.describe(proba)}
