"""What ``emovox predict`` runs, whichever runtime: a model directory on PyTorch
(:class:`emovox.serving.model_dir.Recognizer`) or its ONNX export on onnxruntime
(:class:`emovox.serving.onnx_runtime.OnnxRecognizer`). Both subclass :class:`Runtime` (for its
``predict_file``), which imports neither PyTorch nor another serving module: the ONNX runtime
never imports the PyTorch one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from emovox.audio import MAX_SECONDS, load_audio


@runtime_checkable
class Runtime(Protocol):
    """A trained model ready to label audio."""

    #: The order of ``proba``'s classes.
    labels: list[str]

    @property
    def sample_rate(self) -> int: ...

    def features(self, wave: np.ndarray) -> np.ndarray:
        """The network's input for one utterance (features, normalisation, frame stacking)."""
        ...

    def proba(self, wave: np.ndarray) -> np.ndarray:
        """What ``emovox predict`` answers for one utterance, before :meth:`describe`."""
        ...

    def describe(self, proba: np.ndarray) -> dict[str, Any]:
        """``emovox predict``'s record of one utterance's outputs, as the method words it."""
        ...

    def predict_file(self, path: str | Path, max_seconds: float = MAX_SECONDS) -> dict:
        """One file's record; longer files than ``max_seconds`` are refused (one line)."""
        proba = self.proba(load_audio(path, self.sample_rate, max_seconds=max_seconds))
        return {"path": str(path), **self.describe(proba)}
