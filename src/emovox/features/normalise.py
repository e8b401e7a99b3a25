"""Feature normalisation whose statistics never come from test labels.

- ``global``: z-score with the mean/std of the training fold's frames only.
- ``utterance``: each utterance z-scored with its own statistics.
- ``speaker``: each speaker z-scored with the statistics of that speaker's own utterances
  (unsupervised speaker adaptation: it uses a test speaker's audio, never their labels).
- ``none``.

A live stream has no speaker grouping: :class:`SpeakerStatistics` carries one speaker's sums
(from enrolment audio, or utterance by utterance) and turns them into the normaliser that
per-speaker normalisation would have used for that speaker.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from emovox.errors import ConfigError

MODES = ("global", "utterance", "speaker", "none")
EPS = 1e-5
#: Speaker statistics are shrunk toward the training statistics as if this many frames of them
#: had been heard too (``SpeakerStatistics.normaliser``): the ``tau`` of running adaptation and
#: enrolment, chosen on validation speakers (docs/default-model.md, issue 26; 500 frames: 10 s of
#: Whisper-layer frames, 5 s at 100 frames/s).
SHRINKAGE_FRAMES = 500.0


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

    def apply(self, feats: list[np.ndarray], speakers: list[str] | None = None,
              reference: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """``reference``: per utterance, the frames its speaker's statistics come from (default:
        ``feats``; e.g. the clean versions of augmented utterances)."""
        reference = feats if reference is None else reference
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
                mean, std = _stats([reference[i] for i in indices])
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


class SpeakerStatistics:
    """Running sums of one speaker's frames (count, sum, sum of squares, float64): the
    statistics ``speaker`` normalisation computes, gathered from audio heard before (an
    enrolment, earlier utterances of a session), without labels. :meth:`without` removes an
    utterance, so the utterance being decided never normalises itself."""

    def __init__(self, dim: int):
        self.count = 0
        self.sum = np.zeros(dim)
        self.sumsq = np.zeros(dim)

    @classmethod
    def of(cls, frames: list[np.ndarray]) -> SpeakerStatistics:
        if not frames:
            raise ConfigError("speaker statistics need at least one utterance")
        stats = cls(frames[0].shape[1])
        for f in frames:
            stats.add(f)
        return stats

    def add(self, frames: np.ndarray) -> SpeakerStatistics:
        f = np.asarray(frames, dtype=np.float64)
        self.count += len(f)
        self.sum += f.sum(0)
        self.sumsq += np.square(f).sum(0)
        return self

    def without(self, frames: np.ndarray) -> SpeakerStatistics:
        """These statistics less one utterance's frames (a new object)."""
        f = np.asarray(frames, dtype=np.float64)
        out = SpeakerStatistics(len(self.sum))
        out.count = self.count - len(f)
        if out.count <= 0:
            raise ConfigError("speaker statistics: nothing left once the utterance is removed")
        out.sum, out.sumsq = self.sum - f.sum(0), self.sumsq - np.square(f).sum(0)
        return out

    def __add__(self, other: SpeakerStatistics) -> SpeakerStatistics:
        """Both sets of frames' statistics (a new object): an enrolment and a batch's files."""
        return self._combined(other, 1)

    def __sub__(self, other: SpeakerStatistics) -> SpeakerStatistics:
        """These statistics less ``other``'s frames, which were among them (a new object): a
        batch of one speaker's files less the file being decided."""
        return self._combined(other, -1)

    def _combined(self, other: SpeakerStatistics, sign: int) -> SpeakerStatistics:
        out = SpeakerStatistics(len(self.sum))
        out.count = self.count + sign * other.count
        if out.count < 0:
            raise ConfigError("speaker statistics: removing more frames than were added")
        out.sum, out.sumsq = self.sum + sign * other.sum, self.sumsq + sign * other.sumsq
        return out

    def normaliser(self, prior: Normaliser | None = None, tau: float = 0.0) -> Normaliser:
        """A ``global`` normaliser with this speaker's mean and standard deviation: what
        ``speaker`` normalisation applies to each of the speaker's utterances.

        With ``prior`` (the training statistics the model falls back to) the mean and second
        moment are shrunk toward the prior's as if ``tau`` frames of it had been heard too:
        (sum + tau·μ) / (count + tau). A speaker heard for nothing gets the prior exactly, one
        heard for much longer than ``tau`` frames their own statistics, so adapting early never
        starts worse than not adapting."""
        if tau < 0:
            raise ConfigError(f"speaker statistics: tau must be >= 0 frames, not {tau}")
        norm = Normaliser("global")
        if not self.count:
            if prior is None:
                raise ConfigError("speaker statistics: no frames")
            norm.mean, norm.std = prior.mean, prior.std
            return norm
        weight, prior_mean, prior_second = 0.0, 0.0, 0.0
        if prior is not None and tau:
            weight, prior_mean = float(tau), prior.mean
            prior_second = (prior.std - EPS) ** 2 + prior.mean ** 2
        norm.mean = (self.sum + weight * prior_mean) / (self.count + weight)
        second = (self.sumsq + weight * prior_second) / (self.count + weight)
        norm.std = np.sqrt(np.maximum(second - norm.mean ** 2, 0.0)) + EPS
        return norm


def require_speaker_normalisation(normalise: str) -> None:
    """Speaker statistics (an enrolment, adaptation) normalise as training did only for a model
    trained with ``speaker`` normalisation; one line for any other ``normalise``."""
    if normalise != "speaker":
        raise ConfigError("speaker statistics (enrolment, adaptation) need a model trained with "
                          f"per-speaker normalisation (features.normalise: speaker); this one "
                          f"normalises {normalise!r}")


def leave_one_out(feats: dict[str, np.ndarray], speakers: dict[str, str]
                  ) -> dict[str, SpeakerStatistics]:
    """Per utterance id: the statistics of its speaker's OTHER utterances — what an enrolled
    stream knows of its speaker when it decides that utterance (never the utterance itself)."""
    groups: dict[str, list[str]] = defaultdict(list)
    for uid, speaker in speakers.items():
        groups[speaker].append(uid)
    out = {}
    for ids in groups.values():
        total = SpeakerStatistics.of([feats[i] for i in ids])
        for i in ids:
            out[i] = total.without(feats[i])
    return out
