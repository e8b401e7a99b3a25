"""Per-utterance models for live streams: what a method hands ``serving.streaming``.

``Method.streamer(trained)`` returns a :class:`Streamer` for one trained model (built once, shared
by every stream of a process). :meth:`Streamer.start` opens the state of one utterance; the
streaming recogniser feeds it the gated audio with ``push(samples)`` and closes it with
``finish()``; both return the decision :class:`Step` s completed (class probabilities, the agent's
action logits if there is an agent, and the seconds of audio the model had heard). The speech
gate, the events and the stop rule live in ``serving.streaming`` and are the same for every
kind:

- :class:`GruStreamer` — a single GRU (``gru_baseline``/``rnn``, EmoRL's agent) on features that
  stream frame for frame: feature state, frame stacker, hidden state and running mean carried
  across chunks, so a chunk costs the same however much audio came before;
- :class:`WindowStreamer` — any sequence model on features that cannot be computed chunk by
  chunk (a recogniser's layers: Whisper's encoder attends over its whole input): every step
  re-encodes the heard audio (``window_s=None``, exactly the offline features of that prefix)
  or only its last ``window_s`` seconds, keeping the states of frames that slid out of the
  window as they were last computed; then the model reads all frames heard;
- :class:`UtteranceStreamer` — a model that cannot step (cross-modal attention over a
  transcript): no steps, one at the end of the utterance from its audio.

A stream has no speaker grouping, so a model trained with per-speaker normalisation falls back
to its training speakers' statistics; :func:`enrol` gives it its speaker's own instead, from
earlier unlabelled audio of that speaker (a robot that has heard its user before).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from emovox.early.reinforce import EmoRLConfig, step_frames
from emovox.errors import EmovoxError
from emovox.features import Extractor, Normaliser, SpeakerStatistics
from emovox.features.base import stack_frames
from emovox.features.incremental import StreamingFeatures

#: The decision step of models that do not set their own (EmoRL's default).
STEP_MS = EmoRLConfig().step_ms
#: Running speaker adaptation: frames of training statistics a speaker's own are pooled with
#: (``enrol(..., tau=)``), chosen on validation speakers (docs/default-model.md, issue 26).
SHRINKAGE_FRAMES = 500.0


@dataclass
class Step:
    """One decision step of an utterance."""

    #: Seconds of the utterance's audio the model had read.
    seconds: float
    proba: np.ndarray
    #: The agent's action logits (wait, terminate), or None for models without an agent.
    actions: np.ndarray | None = None


class UtteranceStream:
    """The state of one utterance. ``frames``: model input frames read (reported at the end)."""

    frames: int = 0

    def push(self, samples: np.ndarray) -> list[Step]:
        raise NotImplementedError

    def finish(self) -> list[Step]:
        raise NotImplementedError


class Streamer:
    """One trained model ready to stream; ``step_ms`` None: utterance-level (no steps)."""

    sample_rate: int
    step_ms: float | None = STEP_MS
    #: Model input frames per second (``frames`` and the fraction heard at the decision).
    frame_rate: float
    #: The model's own cap on decision steps (EmoRL's ``max_steps``), None for none.
    max_steps: int | None = None

    def start(self, max_steps: int) -> UtteranceStream:
        """A fresh utterance that stops stepping after ``max_steps`` steps."""
        raise NotImplementedError


def speaker_statistics(extractor: Extractor, waves: Iterable[np.ndarray]) -> SpeakerStatistics:
    """One speaker's normalisation statistics from recordings of that speaker: the frames
    ``extractor`` gives each whole recording, as offline extraction does."""
    return SpeakerStatistics.of([extractor.extract_long(np.asarray(w, np.float32))
                                 for w in waves])


def enrol(trained: Any, normalise: str, statistics: SpeakerStatistics,
          tau: float = 0.0) -> Any:
    """``trained`` (a method's trained-model dataclass with ``normaliser``, its training
    statistics) normalising with one speaker's ``statistics``, shrunk toward the training
    statistics by ``tau`` frames (``SpeakerStatistics.normaliser``; e.g. ``SHRINKAGE_FRAMES``
    for statistics gathered while the stream runs); only a model trained with ``normalise:
    speaker`` reads them as training did."""
    if normalise != "speaker":
        raise EmovoxError(f"enrolment needs a model trained with per-speaker normalisation; "
                          f"this one normalises {normalise!r}")
    return dataclasses.replace(trained, normaliser=statistics.normaliser(trained.normaliser, tau))


# ---- a GRU carried across chunks -------------------------------------------------------------
class GruStreamer(Streamer):
    """A single GRU whose running mean of hidden states feeds ``classifier`` (and ``policy``,
    EmoRL's agent) on features that :class:`StreamingFeatures` computes chunk by chunk."""

    def __init__(self, extractor: Extractor, normaliser: Normaliser, stack: int,
                 gru: torch.nn.GRU, classifier: torch.nn.Module,
                 policy: torch.nn.Module | None = None, step_ms: float = STEP_MS,
                 max_steps: int | None = None):
        if normaliser.mode == "utterance":
            raise EmovoxError("per-utterance normalisation needs the whole utterance; "
                              "train the streaming model with global normalisation")
        StreamingFeatures(extractor)  # fails with one line if the features cannot stream
        self.extractor, self.normaliser, self.stack = extractor, normaliser, stack
        self.gru, self.classifier, self.policy = gru, classifier, policy
        self.hidden_size = gru.hidden_size
        self.sample_rate = extractor.sample_rate
        self.frame_rate = extractor.frame_rate / stack
        self.step_ms, self.max_steps = step_ms, max_steps
        self.step = step_frames(EmoRLConfig(step_ms=step_ms), self.frame_rate)

    def start(self, max_steps: int) -> GruStream:
        return GruStream(self, max_steps)


class GruStream(UtteranceStream):
    def __init__(self, model: GruStreamer, max_steps: int):
        self.model, self.max_steps = model, max_steps
        # frames a step at a time: features and the GRU run once per step, not per chunk
        self.features = StreamingFeatures(model.extractor, batch=model.stack * model.step)
        self.pending = np.zeros((0, model.extractor.dim), dtype=np.float32)
        self.hidden: torch.Tensor | None = None
        self.total = torch.zeros(model.hidden_size)
        self.frames = 0  # stacked frames read
        self.steps = 0
        self.samples = 0

    def push(self, samples: np.ndarray) -> list[Step]:
        self.samples += len(samples)
        return self._frames(self.features.push(samples), final=False)

    def finish(self) -> list[Step]:
        steps = self._frames(self.features.finish(), final=True)
        if self.frames % self.model.step and self.steps < self.max_steps:
            steps.append(self._step(self.total / self.frames))
        return steps

    def _frames(self, frames: np.ndarray, final: bool) -> list[Step]:
        model = self.model
        if len(frames):
            self.pending = np.concatenate([self.pending, model.normaliser.apply([frames])[0]])
        # Whole groups of ``stack`` frames now; at the end the tail too, padded exactly as
        # training pads it (the same function).
        usable = len(self.pending) if final else len(self.pending) // model.stack * model.stack
        x = stack_frames(self.pending[:usable], model.stack)
        self.pending = self.pending[usable:]
        if not len(x):
            return []
        with torch.no_grad():
            out, self.hidden = model.gru(torch.from_numpy(x)[None], self.hidden)
        steps = []
        cumulative = torch.cumsum(out[0], 0) + self.total
        for i in range(len(x)):
            self.frames += 1
            if self.frames % model.step == 0 and self.steps < self.max_steps:
                steps.append(self._step(cumulative[i] / self.frames))
        self.total = cumulative[-1]
        return steps

    def _step(self, state: torch.Tensor) -> Step:
        model = self.model
        self.steps += 1
        proba, actions = read_state(model.classifier, model.policy, state)
        # The last stacked frame is padded: never claim more audio than there was.
        heard = min(self.frames / model.frame_rate, self.samples / model.sample_rate)
        return Step(heard, proba, actions)


@torch.no_grad()
def read_state(classifier: Callable, policy: Callable | None,
               state: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
    """Class probabilities and the agent's action logits (None without an agent) of a GRU's
    running-mean state: what every stepping streamer reports."""
    proba = torch.softmax(classifier(state), -1).numpy()
    return proba, policy(state).numpy() if policy is not None else None


# ---- the heard audio re-encoded every step ---------------------------------------------------
class WindowStreamer(Streamer):
    """Every ``step_ms``: ``features`` of the heard audio (or of its last ``window_s`` seconds,
    earlier frames kept as last computed), then ``classify`` on all frames heard.

    ``features(samples, first_frame)`` maps samples that start at frame ``first_frame`` of the
    utterance to [frames, dim] at ``frame_rate`` (frame i starting at sample i·hop; an
    extractor's ``extract_from``); ``classify`` maps an utterance's frames to class
    probabilities (normalisation, stacking and the model, as offline) and the agent's action
    logits (None without an agent). With ``window_s=None`` a step's probabilities are exactly
    offline inference on the prefix heard; with a window they are too while the utterance is no
    longer than the window.
    """

    def __init__(self, features: Callable[[np.ndarray, int], np.ndarray],
                 classify: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]],
                 sample_rate: int, frame_rate: float, step_ms: float = STEP_MS,
                 window_s: float | None = None, max_steps: int | None = None):
        hop = sample_rate / frame_rate
        if hop != int(hop):
            raise EmovoxError(f"features at {frame_rate:g} frames/s do not align with "
                              f"{sample_rate} Hz samples; this model cannot stream")
        self.features, self.classify = features, classify
        self.sample_rate, self.frame_rate, self.hop = sample_rate, frame_rate, int(hop)
        self.step_ms, self.max_steps = step_ms, max_steps
        self.step_samples = int(round(step_ms / 1000 * sample_rate))
        if window_s is not None and window_s < step_ms / 1000:
            raise EmovoxError(f"window_s={window_s:g}: must hold at least one step "
                              f"({step_ms / 1000:g} s)")
        self.window_s = window_s

    def start(self, max_steps: int) -> WindowStream:
        return WindowStream(self, max_steps)


class WindowStream(UtteranceStream):
    def __init__(self, model: WindowStreamer, max_steps: int):
        self.model, self.max_steps = model, max_steps
        self.audio = np.zeros(model.sample_rate, dtype=np.float32)  # grows by doubling
        self.samples = 0
        self.frozen: list[np.ndarray] = []  # frames that slid out of the window
        self.frozen_frames = 0
        self.window = np.zeros((0, 0), dtype=np.float32)  # the last window's frames
        self.steps = 0
        self.frames = 0

    def push(self, samples: np.ndarray) -> list[Step]:
        end = self.samples + len(samples)
        if end > len(self.audio):
            self.audio = np.concatenate([self.audio, np.zeros(max(end, len(self.audio)),
                                                              dtype=np.float32)])
        self.audio[self.samples : end] = samples
        step = self.model.step_samples
        due = range((self.samples // step + 1) * step, end + 1, step)
        self.samples = end
        return [self._step(at) for at in due if self.steps < self.max_steps]

    def finish(self) -> list[Step]:
        if self.samples % self.model.step_samples and self.steps < self.max_steps:
            return [self._step(self.samples)]
        return []

    def heard_features(self, end: int) -> np.ndarray:
        """Frames of the first ``end`` samples: the window's, after the frozen ones."""
        model = self.model
        start = 0
        if model.window_s is not None:
            start = max(0, end - int(model.window_s * model.sample_rate)) // model.hop * model.hop
        # Frames before the window keep the states of the last window that held them.
        first = start // model.hop
        if first > self.frozen_frames:
            self.frozen.append(self.window[: first - self.frozen_frames])
            self.frozen_frames = first
        self.window = model.features(self.audio[start:end], first)
        return np.concatenate([*self.frozen, self.window]) if self.frozen else self.window

    def _step(self, end: int) -> Step:
        feats = self.heard_features(end)
        self.steps += 1
        self.frames = len(feats)
        return Step(end / self.model.sample_rate, *self.model.classify(feats))


# ---- one decision per utterance --------------------------------------------------------------
class UtteranceStreamer(Streamer):
    """A model that needs the whole utterance: no steps; ``predict`` on the utterance's audio
    when it ends (the gate's pause, ``max_utterance_s`` or the end of the stream)."""

    step_ms = None

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], sample_rate: int):
        self.predict, self.sample_rate = predict, sample_rate
        self.frame_rate = float(sample_rate)

    def start(self, max_steps: int) -> UtteranceAudio:
        return UtteranceAudio(self)


class UtteranceAudio(UtteranceStream):
    def __init__(self, model: UtteranceStreamer):
        self.model = model
        self.parts: list[np.ndarray] = []

    def push(self, samples: np.ndarray) -> list[Step]:
        self.parts.append(np.asarray(samples, dtype=np.float32))
        self.frames += len(samples)
        return []

    def finish(self) -> list[Step]:
        if not self.frames:
            return []
        wave = np.concatenate(self.parts)
        return [Step(len(wave) / self.model.sample_rate, self.model.predict(wave))]
