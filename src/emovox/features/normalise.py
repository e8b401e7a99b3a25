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

    def normaliser(self) -> Normaliser:
        """A ``global`` normaliser with this speaker's mean and standard deviation: what
        ``speaker`` normalisation applies to each of the speaker's utterances."""
        return Normaliser("global").fit_statistics(self)


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
