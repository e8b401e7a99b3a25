"""Enrolled speakers of one server (issue 26): recordings of a speaker become that speaker's
normalisation statistics, which ``/v1/predict`` and streams normalise with, named by an id.

A model trained with per-speaker normalisation (``features.normalise: speaker``) reads a
speaker's audio as training did only with that speaker's statistics (the mean and variance of
each feature over their frames, ``features.SpeakerStatistics``); without them it falls back to
its training speakers'. ``POST /v1/speakers`` computes them from unlabelled recordings — each
must hold speech, all together at least ``adaptation.MIN_ENROLMENT_S`` of it by the streams'
own speech gate, or the enrolment is refused naming the recording: statistics of silence or of
a fan would make every decision worse, silently — and answers an id from
``secrets.token_urlsafe`` (128 bits). The id selects a person's statistics, so it is the only
way to them: nothing lists them.

Storage (:class:`SpeakerStore`): one small file per speaker (count, sum and sum of squares of
the frames, float64; when; how much speech) in a directory of the server that all its workers
share, created by the parent with mode 0700 and removed when it exits (a restart forgets every
enrolment). Files are written under a temporary name and renamed, so a reader sees a whole file
or none; new enrolments are counted under an ``flock``, so the workers together never hold more
than ``max_speakers``; a speaker unused for ``speaker_ttl`` seconds is removed (each use
renews it). A full store refuses a new enrolment (507) rather than evicting someone else's.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from emovox.errors import ConfigError, EmovoxError
from emovox.features import SpeakerStatistics
from emovox.features.normalise import require_speaker_normalisation
from emovox.io import atomic_write
from emovox.serving.adaptation import enrolment_of
from emovox.serving.model_dir import Recognizer
from emovox.serving.streaming import SHRINKAGE_FRAMES

#: Bytes of randomness in a speaker id (``secrets.token_urlsafe``: 22 characters).
ID_BYTES = 16
SPEAKER_ID = r"[A-Za-z0-9_-]{22}"
_SPEAKER_ID = re.compile(SPEAKER_ID)
SUFFIX = ".npz"
LOCK = ".lock"


class UnknownSpeaker(EmovoxError):
    def __init__(self, speaker: str):
        super().__init__(f"unknown speaker {speaker[:40]!r}: never enrolled here, deleted, or "
                         "expired (enrol with POST /v1/speakers)")


class NotAdaptive(EmovoxError):
    """A model without per-speaker normalisation: enrolment would change nothing."""


class StoreFull(EmovoxError):
    """Every speaker slot of the server is taken."""


def adapts(recognizer: Recognizer) -> bool:
    """Does the model read a speaker's statistics (trained with per-speaker normalisation)?"""
    return recognizer.normalise == "speaker"


def require_adapts(recognizer: Recognizer) -> None:
    """``features.normalise.require_speaker_normalisation``, as the service's own error (409)."""
    try:
        require_speaker_normalisation(recognizer.normalise)
    except ConfigError as exc:
        raise NotAdaptive(f"this model does not adapt to speakers: {exc}") from None


def enrolment(recognizer: Recognizer, recordings: Iterable[tuple[str, np.ndarray]]
              ) -> tuple[SpeakerStatistics, float]:
    """One speaker's statistics and seconds of speech (``adaptation.enrolment_of``, the rule
    ``emovox predict --enrol`` follows); a model that does not adapt is refused (409)."""
    require_adapts(recognizer)
    return enrolment_of(recognizer, recordings)


def for_speaker(recognizer: Recognizer, statistics: SpeakerStatistics) -> Recognizer:
    """The model normalising with one speaker's statistics, shrunk as streams shrink them."""
    return recognizer.for_speaker(statistics, SHRINKAGE_FRAMES)


@dataclass
class Speaker:
    id: str
    statistics: SpeakerStatistics
    #: Seconds of speech in the enrolment, by the streams' speech gate.
    speech_seconds: float
    #: Seconds of audio in the enrolment.
    seconds: float
    created: float
    #: Last use (Unix time): the speaker expires ``speaker_ttl`` seconds after it.
    used: float

    def info(self, ttl: float) -> dict:
        """What ``GET /v1/speakers/ID`` says: metadata, never the statistics."""
        return {"speaker": self.id, "adapted": True,
                "seconds_of_speech": round(self.speech_seconds, 2),
                "seconds": round(self.seconds, 2), "created": _iso(self.created),
                "expires": _iso(self.used + ttl)}


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


class SpeakerStore:
    """Enrolled speakers as files in ``directory`` (shared by a server's workers): at most
    ``max_speakers``, each forgotten ``ttl`` seconds after its last use."""

    def __init__(self, directory: str | Path, max_speakers: int, ttl: float):
        self.directory = Path(directory)
        self.max_speakers, self.ttl = max_speakers, ttl

    def add(self, statistics: SpeakerStatistics, speech_seconds: float, seconds: float
            ) -> Speaker:
        now = time.time()
        speaker = Speaker(secrets.token_urlsafe(ID_BYTES), statistics, speech_seconds, seconds,
                          now, now)
        with self._locked():
            self.prune(now)
            if sum(1 for _ in self._files()) >= self.max_speakers:
                raise StoreFull(f"{self.max_speakers} speakers enrolled, the most this server "
                                "keeps; delete one (DELETE /v1/speakers/ID) or wait until one "
                                "expires")
            atomic_write(self._path(speaker.id), lambda fh: np.savez(
                fh, count=statistics.count, sum=statistics.sum, sumsq=statistics.sumsq,
                speech_seconds=speech_seconds, seconds=seconds, created=now))
        return speaker

    def get(self, speaker_id: str, use: bool = True) -> Speaker:
        """The speaker; ``use`` renews its time to live. Unknown or expired: UnknownSpeaker."""
        path = self._path(speaker_id)
        try:
            used = path.stat().st_mtime
            if time.time() - used > self.ttl:
                path.unlink(missing_ok=True)
                raise UnknownSpeaker(speaker_id)
            with np.load(path, allow_pickle=False) as data:
                statistics = SpeakerStatistics(len(data["sum"]))
                statistics.count = int(data["count"])
                statistics.sum, statistics.sumsq = data["sum"], data["sumsq"]
                speaker = Speaker(speaker_id, statistics, float(data["speech_seconds"]),
                                  float(data["seconds"]), float(data["created"]), used)
            if use:
                os.utime(path)
                speaker.used = time.time()
        except FileNotFoundError:  # deleted or pruned meanwhile, by this worker or another
            raise UnknownSpeaker(speaker_id) from None
        return speaker

    def delete(self, speaker_id: str) -> None:
        try:
            self._path(speaker_id).unlink()
        except FileNotFoundError:
            raise UnknownSpeaker(speaker_id) from None

    def prune(self, now: float | None = None) -> None:
        """Remove the speakers unused for ``ttl`` seconds."""
        now = time.time() if now is None else now
        for path in self._files():
            with contextlib.suppress(FileNotFoundError):
                if now - path.stat().st_mtime > self.ttl:
                    path.unlink()

    def _path(self, speaker_id: str) -> Path:
        """The file of a well-formed id (anything else names no file: no path tricks)."""
        if not _SPEAKER_ID.fullmatch(speaker_id):
            raise UnknownSpeaker(speaker_id)
        return self.directory / f"{speaker_id}{SUFFIX}"

    def _files(self) -> Iterator[Path]:
        return (p for p in self.directory.iterdir()
                if p.suffix == SUFFIX and _SPEAKER_ID.fullmatch(p.stem))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive over the server's workers (the kernel releases it if a worker dies)."""
        fd = os.open(self.directory / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
