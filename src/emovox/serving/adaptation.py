"""Adapting ``emovox predict`` and ``emovox stream`` to the speaker, without labels (issue 26).

A model trained with per-speaker normalisation (``features.normalise: speaker``) normalises a
speaker's audio with the statistics of that speaker's other audio, shrunk toward its training
statistics by ``tau`` frames while little has been heard (``SpeakerStatistics.normaliser``), so
a little audio never moves it far from the unadapted model:

- :func:`enrolment`: earlier recordings of the speaker (``--enrol``). Each must hold speech and
  all together at least :data:`MIN_ENROLMENT_S` of it, by the streams' own speech gate; else
  one line naming them (exit 2): an enrolment of silence or of someone's fan would make every
  decision worse, silently.
- :func:`label_files`: a batch of files grouped by speaker (``--adapt``: all one speaker;
  ``--speaker-from``: by folder or file name), each decided with the statistics of its group's
  OTHER files (leave-one-out: a file never normalises itself, and its answer does not depend on
  the order of the files), plus the enrolment's if there is one. No speech check here: the files
  are the ones being labelled, as offline per-speaker normalisation takes them.
- running adaptation in streams: ``serving.streaming.StreamingRecognizer``.

Every record says how its file was normalised: ``adapted`` (with any of the speaker's
statistics), ``adaptation`` (``enrolled``, ``leave_one_out``, both joined by ``+``, or
``none``), ``speaker`` (the group) and ``speaker_s`` (seconds of the speaker's audio in the
statistics). No PyTorch here: ``emovox predict`` on an ONNX export adapts without it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emovox.audio import MAX_SECONDS, load_audio
from emovox.augment.rooms import audio_files
from emovox.errors import AudioError, ConfigError, EmovoxError
from emovox.features import SpeakerStatistics
from emovox.features.normalise import require_speaker_normalisation
from emovox.serving.runtime import Runtime
from emovox.serving.streaming import SHRINKAGE_FRAMES, GateConfig, SpeechGate

#: Speech an enrolment must hold, all its recordings together.
MIN_ENROLMENT_S = 3.0
#: Gate frames judged at once (30 s of audio): bounded memory on long recordings.
GATE_BLOCK = 1000


def speech_seconds(wave: np.ndarray, sample_rate: int, gate: GateConfig | None = None) -> float:
    """Seconds of ``wave`` that a stream's speech gate (``gate``, default settings) calls speech."""
    judge = SpeechGate(gate or GateConfig(), sample_rate)
    n = len(wave) // judge.frame
    frames = wave[: n * judge.frame].reshape(n, judge.frame)
    speech = sum(int(judge.judge(frames[i : i + GATE_BLOCK])[0].sum())
                 for i in range(0, n, GATE_BLOCK))
    return speech * judge.frame / sample_rate


def enrolment_of(runtime: Runtime, recordings: Iterable[tuple[str | Path, np.ndarray]],
                 gate: GateConfig | None = None) -> tuple[SpeakerStatistics, float]:
    """One speaker's statistics from ``(name, wave)`` recordings of them, taken one at a time
    (each wave can be freed before the next is decoded), and the seconds of speech they hold:
    the frames of each whole recording, as offline extraction makes them. A recording without
    speech, or less than :data:`MIN_ENROLMENT_S` of speech in all, is refused naming it."""
    require_speaker_normalisation(runtime.normalise)
    statistics = SpeakerStatistics(runtime.extractor.dim)
    speech, names = 0.0, []
    for name, wave in recordings:
        heard = speech_seconds(wave, runtime.sample_rate, gate)
        if not heard:
            raise AudioError(name, "no speech in this enrolment recording (the streams' speech "
                             "gate heard none)")
        speech += heard
        names.append(str(name))
        statistics.add(runtime.frames(wave))
    if speech < MIN_ENROLMENT_S:
        raise ConfigError(f"{', '.join(names) or 'enrolment'}: {speech:.1f} s of speech in the "
                          f"enrolment; it needs at least {MIN_ENROLMENT_S:g} s")
    return statistics, speech


def enrolment(runtime: Runtime, paths: list[str], max_seconds: float = MAX_SECONDS,
              gate: GateConfig | None = None) -> SpeakerStatistics:
    """``--enrol``: the speaker's statistics from earlier recordings of them (files, or
    directories of them), read one at a time (:func:`enrolment_of`)."""
    files = [f for p in paths for f in (audio_files(p) if Path(p).is_dir() else [Path(p)])]
    require_speaker_normalisation(runtime.normalise)
    waves = ((path, load_audio(path, runtime.sample_rate, max_seconds=max_seconds))
             for path in files)
    return enrolment_of(runtime, waves, gate)[0]


def one_speaker(path: str) -> None:
    """``--adapt``: every file is the same speaker, unnamed."""
    return None


@dataclass
class Adaptation:
    """How ``emovox predict`` adapts: an enrolment's statistics and/or the speaker of each file
    (``speaker_of``: path → speaker, e.g. :func:`one_speaker`; files of one speaker adapt to
    each other)."""

    enrolled: SpeakerStatistics | None = None
    speaker_of: Callable[[str], str | None] | None = None
    tau: float = SHRINKAGE_FRAMES

    @property
    def mode(self) -> str:
        modes = [m for m, on in (("enrolled", self.enrolled is not None),
                                 ("leave_one_out", self.speaker_of is not None)) if on]
        return "+".join(modes) or "none"


def label_files(runtime: Runtime, paths: list[str], adaptation: Adaptation,
                max_seconds: float = MAX_SECONDS) -> Iterator[tuple[str, dict | EmovoxError]]:
    """Each path, in order, with its record or why it could not be labelled. With speaker
    groups, a first pass gathers each file's statistics (bad files are left out of them) and
    the second extracts each file's frames again: twice the feature time, but memory that does
    not grow with the number of files (only statistics are kept)."""
    if adaptation.speaker_of is not None or adaptation.enrolled is not None:
        require_speaker_normalisation(runtime.normalise)
    if adaptation.speaker_of is None:
        model = runtime if adaptation.enrolled is None else \
            runtime.for_speaker(adaptation.enrolled, adaptation.tau)
        for path in paths:
            yield path, _label(model, path, max_seconds, adaptation, None, adaptation.enrolled)
        return
    own: dict[int, tuple[str | None, SpeakerStatistics]] = {}
    failed: dict[int, EmovoxError] = {}
    totals: dict[str | None, SpeakerStatistics] = {}
    for i, path in enumerate(paths):
        try:
            speaker = adaptation.speaker_of(path)
            wave = load_audio(path, runtime.sample_rate, max_seconds=max_seconds)
        except EmovoxError as exc:
            failed[i] = exc
            continue
        stats = SpeakerStatistics.of([runtime.frames(wave)])
        own[i] = speaker, stats
        totals[speaker] = totals[speaker] + stats if speaker in totals else stats
    for i, path in enumerate(paths):
        if i in failed:
            yield path, failed[i]
            continue
        speaker, stats = own[i]
        others = totals[speaker] - stats
        if adaptation.enrolled is not None:
            others = others + adaptation.enrolled
        yield path, _label(runtime.for_speaker(others, adaptation.tau), path, max_seconds,
                           adaptation, speaker, others)


def _label(model: Runtime, path: str, max_seconds: float, adaptation: Adaptation,
           speaker: str | None, heard: SpeakerStatistics | None) -> dict | EmovoxError:
    try:
        record = model.predict_file(path, max_seconds=max_seconds)
    except EmovoxError as exc:
        return exc
    return {**record, "adapted": bool(heard is not None and heard.count),
            "adaptation": adaptation.mode, "speaker": speaker,
            "speaker_s": model.speaker_seconds(heard)}
