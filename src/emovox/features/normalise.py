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
from collections.abc import Callable

import numpy as np

from emovox.errors import ConfigError

MODES = ("global", "utterance", "speaker", "none")
EPS = 1e-5
#: Speaker statistics are shrunk toward the training statistics as if this many frames of them
#: had been heard too (``SpeakerStatistics.normaliser``): the ``tau`` of running adaptation and
#: enrolment, chosen on validation speakers (docs/default-model.md, issue 26; 500 frames: 10 s of
#: Whisper-layer frames, 5 s at 100 frames/s).
SHRINKAGE_FRAMES = 500.0


class Scaling:
    """Per utterance, the mean and standard deviation its frames are normalised with: a group
    index into shared rows (one row for ``global``, one per speaker, one per utterance), so
    frames can be normalised as they are read instead of all at once."""

    def __init__(self, group: np.ndarray, mean: np.ndarray | None, std: np.ndarray | None):
        self.group, self.mean, self.std = group, mean, std

    def __call__(self, i: int, frames: np.ndarray) -> np.ndarray:
        """Utterance ``i``'s frames (or any rows of its features, e.g. their time mean)."""
        if self.mean is None:
            return frames
        g = self.group[i]
        return ((frames - self.mean[g]) / self.std[g]).astype(np.float32)


class Normaliser:
    def __init__(self, mode: str = "global"):
        if mode not in MODES:
            raise ConfigError(f"normalisation must be one of {MODES}, not {mode!r}")
        self.mode = mode
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def fit(self, train: list[np.ndarray]) -> Normaliser:
        """Global statistics from training features (also the fallback for unknown speakers)."""
        return self.fit_statistics(SpeakerStatistics.of(train))

    def fit_statistics(self, stats: SpeakerStatistics) -> Normaliser:
        """:meth:`fit` from running sums gathered one utterance at a time."""
        self.mean, self.std = stats.mean_std()
        return self

    def scaling(self, n: int, speakers: list[str] | None,
                statistics: Callable[[int], SpeakerStatistics],
                reference: Callable[[int], SpeakerStatistics] | None = None) -> Scaling:
        """How each of ``n`` utterances is normalised. ``statistics(i)``: utterance i's own
        frame statistics; ``reference(i)``: those its speaker's statistics are summed from
        (default: its own; e.g. the clean version of an augmented utterance). Each is read
        only when the mode needs it, one utterance at a time."""
        reference = statistics if reference is None else reference
        if self.mode == "none":
            return Scaling(np.zeros(n, dtype=np.int64), None, None)
        if self.mode == "utterance":
            rows = [statistics(i).mean_std() for i in range(n)]
            return Scaling(np.arange(n), np.stack([m for m, _ in rows]),
                           np.stack([s for _, s in rows]))
        if self.mode == "speaker" and speakers is not None:
            names = list(dict.fromkeys(speakers))
            index = {s: g for g, s in enumerate(names)}
            totals: dict[str, SpeakerStatistics] = {}
            for i, s in enumerate(speakers):
                stats = reference(i)
                totals[s] = totals[s].merge(stats) if s in totals else stats
            rows = [totals[s].mean_std() for s in names]
            return Scaling(np.array([index[s] for s in speakers], dtype=np.int64),
                           np.stack([m for m, _ in rows]), np.stack([s for _, s in rows]))
        if self.mean is None or self.std is None:
            raise RuntimeError("Normaliser.apply before fit")
        return Scaling(np.zeros(n, dtype=np.int64), self.mean[None], self.std[None])

    def apply(self, feats: list[np.ndarray], speakers: list[str] | None = None,
              reference: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """``reference``: per utterance, the frames its speaker's statistics come from (default:
        ``feats``; e.g. the clean versions of augmented utterances)."""
        scaling = self.scaling(
            len(feats), speakers, lambda i: SpeakerStatistics.of([feats[i]]),
            None if reference is None else lambda i: SpeakerStatistics.of([reference[i]]))
        return [scaling(i, f) for i, f in enumerate(feats)]

    def state(self) -> dict[str, np.ndarray | str]:
        return {"mode": self.mode, "mean": self.mean, "std": self.std}

    @classmethod
    def from_state(cls, state: dict) -> Normaliser:
        norm = cls(str(state["mode"]))
        norm.mean, norm.std = np.asarray(state["mean"]), np.asarray(state["std"])
        return norm


class SpeakerStatistics:
    """Running sums of frames (count, sum, sum of squares, float64): one speaker's, gathered
    from audio heard before (an enrolment, earlier utterances of a session) without labels,
    or any set of utterances' (the feature cache keeps each utterance's, so statistics never
    need all frames at once). :meth:`without` removes an utterance, so the utterance being
    decided never normalises itself."""

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

    @classmethod
    def from_sums(cls, count: int, sums: np.ndarray) -> SpeakerStatistics:
        """From ``count`` frames' [2, D] sum and sum of squares (:meth:`sums`)."""
        stats = cls(sums.shape[1])
        stats.count, stats.sum, stats.sumsq = int(count), sums[0], sums[1]
        return stats

    def sums(self) -> np.ndarray:
        return np.stack([self.sum, self.sumsq])

    def merge(self, other: SpeakerStatistics) -> SpeakerStatistics:
        """Both sets of frames together (a new object)."""
        out = SpeakerStatistics(len(self.sum))
        out.count = self.count + other.count
        out.sum, out.sumsq = self.sum + other.sum, self.sumsq + other.sumsq
        return out

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        """The frames' mean and standard deviation (+ EPS, so it always divides)."""
        if not self.count:
            raise ConfigError("speaker statistics: no frames")
        mean = self.sum / self.count
        return mean, np.sqrt(np.maximum(self.sumsq / self.count - mean ** 2, 0.0)) + EPS

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
