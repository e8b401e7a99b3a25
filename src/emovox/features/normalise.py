"""Feature normalisation whose statistics never come from test labels.

- ``global``: z-score with the mean/std of the training fold's frames only.
- ``utterance``: each utterance z-scored with its own statistics.
- ``speaker``: each speaker z-scored with the statistics of that speaker's own utterances
  (unsupervised speaker adaptation: it uses a test speaker's audio, never their labels).
- ``none``.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from emovox.errors import ConfigError

MODES = ("global", "utterance", "speaker", "none")
EPS = 1e-5


def _stats(frames: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    stacked = np.concatenate(frames, axis=0).astype(np.float64)
    return stacked.mean(axis=0), stacked.std(axis=0) + EPS


class Normaliser:
    def __init__(self, mode: str = "global"):
        if mode not in MODES:
            raise ConfigError(f"normalisation must be one of {MODES}, not {mode!r}")
        self.mode = mode
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def fit(self, train: list[np.ndarray]) -> Normaliser:
        """Global statistics from training features (also the fallback for unknown speakers)."""
        self.mean, self.std = _stats(train)
        return self

    def apply(self, feats: list[np.ndarray], speakers: list[str] | None = None) -> list[np.ndarray]:
        if self.mode == "none":
            return feats
        if self.mode == "utterance":
            return [((f - f.mean(0)) / (f.std(0) + EPS)).astype(np.float32) for f in feats]
        if self.mode == "speaker" and speakers is not None:
            groups: dict[str, list[int]] = defaultdict(list)
            for i, s in enumerate(speakers):
                groups[s].append(i)
            out: list[np.ndarray] = [np.empty(0)] * len(feats)
            for indices in groups.values():
                mean, std = _stats([feats[i] for i in indices])
                for i in indices:
                    out[i] = ((feats[i] - mean) / std).astype(np.float32)
            return out
        if self.mean is None:
            raise RuntimeError("Normaliser.apply before fit")
        return [((f - self.mean) / self.std).astype(np.float32) for f in feats]

    def state(self) -> dict[str, np.ndarray | str]:
        return {"mode": self.mode, "mean": self.mean, "std": self.std}

    @classmethod
    def from_state(cls, state: dict) -> Normaliser:
        norm = cls(str(state["mode"]))
        norm.mean, norm.std = np.asarray(state["mean"]), np.asarray(state["std"])
        return norm
