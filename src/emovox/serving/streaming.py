"""``StreamingRecognizer(model).push(pcm_chunk) -> list[Event]``: emotion decisions while audio
is still arriving, on speech only.

Every 30 ms frame passes a speech gate (:class:`SpeechGate`: webrtcvad, an absolute energy floor,
a margin over the tracked noise floor, and a pure-tone check), which also marks frames whose
spectrum is that of 60 ms before (steady: held notes, hums); an utterance whose speech is mostly
steady is music, not speech, and gets no decision. An utterance starts at a speech
onset with a short pre-roll (shorter than the decision step, so the first step hears mostly
speech), non-speech inside it is held back and only fed to the model when speech resumes, and it
ends after a pause (``pause_ms``; ``false_start_ms`` while it holds less than ``min_speech_ms``
of speech), at ``max_utterance_s`` or at the end of the stream; then its state is reset. Per
utterance the model that the method supplies (``Method.streamer``, see
:mod:`emovox.experiments.streamers`) keeps its own state: a GRU carries its feature extractor,
frame stacker, hidden state and running mean, so a chunk costs the same however much audio came
before; a recogniser-layer model re-encodes the heard audio every step; an utterance-level model
(multimodal) only collects the audio. Every decision step (``step_ms`` of audio) a stepping
model emits the running class probabilities; the agent (EmoRL) or a confidence threshold
chooses when to emit the single ``decision`` of the utterance, allowed only once the utterance
holds ``min_speech_ms`` of speech; an utterance that ends undecided gets a forced decision (an
utterance-level model's only one), or ``no_speech`` when it never held enough speech (noise
bursts). A stream with no onset at all ends with one ``no_speech`` event. Offline inference on
the utterance's audio gives the same decisions (tests check it).

A model trained with per-speaker normalisation adapts to its speaker while it listens (running
adaptation, on by default): after each utterance that held speech its frames join the speaker's
statistics (seeded by an enrolment, if any), and the next utterances are normalised with them,
shrunk toward the training statistics by ``tau`` frames, so the first utterance is normalised
exactly as without adaptation. PyTorch is imported only where a model runs: the gate serves the
ONNX runtime too (``serving.adaptation``'s enrolment check).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emovox.early.decisions import Step, stop_rule
from emovox.errors import ConfigError, EmovoxError
from emovox.features import SpeakerStatistics
from emovox.features.normalise import SHRINKAGE_FRAMES, require_speaker_normalisation

FRAME_MS = 30  # webrtcvad's longest frame
#: Frames between the two spectra compared for steadiness (60 ms: a vowel's formants move).
STEADY_LAG = 2
#: The pre-roll's bound when a model has no decision step (utterance-level).
UTTERANCE_PREROLL_MS = 1000.0
#: The pause that ends an utterance when ``GateConfig.pause_ms`` is None: with ``vad``, without.
VAD_PAUSE_MS, PAUSE_MS = 600.0, 1500.0


@dataclass
class Event:
    type: str
    #: Seconds of audio in the utterance that the event is about (for ``step`` and
    #: ``decision``: the audio the model had read; for the others, the stream time).
    time: float
    data: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"type": self.type, "time": round(self.time, 4), **self.data}


def pcm16_to_float(chunk: bytes) -> np.ndarray:
    if len(chunk) % 2:
        raise EmovoxError("PCM chunk has an odd number of bytes; expected 16-bit samples")
    return np.frombuffer(chunk, dtype="<i2").astype(np.float32) / 32768.0


_THREADS: int | None = None


def set_threads(threads: int) -> None:
    """Set torch's intra-op and the BLAS pools' threads for this process. A chunk is many tiny
    operations: extra threads cost more in synchronisation than they save, and they steal the
    cores that other streams (or worker processes) need."""
    global _THREADS
    if threads == _THREADS:
        return
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(threads)
    _THREADS = threads


@dataclass
class GateConfig:
    """When a 30 ms frame counts as speech, and how a stream is cut into utterances."""

    #: webrtcvad aggressiveness, 0 (permissive) to 3.
    aggressiveness: int = 2
    #: Frames quieter than this (RMS, dBFS) are never speech.
    energy_floor_db: float = -50.0
    #: A speech frame is at least this far above the noise floor, the quietest frame of the
    #: last ``floor_window_ms`` (stationary noise and steady tones never clear it).
    margin_db: float = 6.0
    floor_window_ms: float = 1500.0
    #: Share of a frame's power within two FFT bins of its peak above which it is a pure tone.
    tone_fraction: float = 0.99
    #: A frame is steady when its magnitude spectrum and that of the frame 60 ms before have at
    #: least this cosine similarity: held notes and chords are; speech moves (formants, pitch).
    steady_similarity: float = 0.95
    #: An utterance whose speech frames are more than this share steady is not speech (music):
    #: it gets no decision; 1 turns the check off. Emo-DB/nEMO speech stays below 0.35, most
    #: synthetic chords are above 0.5 (docs/sessions.md: "The music check").
    max_steady_fraction: float = 0.5
    #: Consecutive speech that opens an utterance.
    start_ms: float = 90.0
    #: Audio kept before the onset; must be shorter than the decision step.
    preroll_ms: float = 60.0
    #: Non-speech kept after the last speech frame when an utterance ends on a pause.
    postroll_ms: float = 150.0
    #: Non-speech that ends an utterance (None: 600 ms with ``vad``, 1500 ms without).
    pause_ms: float | None = None
    #: Speech an utterance must hold before any decision (else it ends with ``no_speech``).
    min_speech_ms: float = 500.0
    #: A run of speech resumes a paused utterance only within this many dB of the utterance's
    #: mean speech level (a tap or a fan behind a pause is not the speaker going on).
    resume_db: float = 15.0
    #: The shorter pause that ends an utterance still short of ``min_speech_ms``: a click or a
    #: bark that opened the gate is dropped before it can colour the speech that follows.
    false_start_ms: float = 300.0
    #: An utterance reaching this length is decided (forced if need be) and the state reset.
    max_utterance_s: float = 15.0

    def validate(self, step_ms: float) -> None:
        checks = [
            ("aggressiveness", self.aggressiveness in (0, 1, 2, 3), "0, 1, 2 or 3"),
            ("energy_floor_db", -120 <= self.energy_floor_db <= 0, "[-120, 0] dBFS"),
            ("margin_db", 0 <= self.margin_db <= 60, "[0, 60] dB"),
            ("floor_window_ms", FRAME_MS <= self.floor_window_ms <= 60_000, "[30, 60000] ms"),
            ("tone_fraction", 0 < self.tone_fraction <= 1, "(0, 1]"),
            ("steady_similarity", 0 < self.steady_similarity <= 1, "(0, 1]"),
            ("max_steady_fraction", 0 <= self.max_steady_fraction <= 1, "[0, 1]"),
            ("start_ms", FRAME_MS <= self.start_ms <= 1000, "[30, 1000] ms"),
            ("preroll_ms", 0 <= self.preroll_ms < step_ms,
             f"[0, {step_ms:g}) ms (shorter than the decision step)"),
            ("postroll_ms", 0 <= self.postroll_ms <= 1000, "[0, 1000] ms"),
            ("pause_ms", self.pause_ms is None or FRAME_MS <= self.pause_ms <= 60_000,
             "[30, 60000] ms"),
            ("min_speech_ms", 0 <= self.min_speech_ms <= 10_000, "[0, 10000] ms"),
            ("resume_db", 0 < self.resume_db <= 120, "(0, 120] dB"),
            ("false_start_ms", FRAME_MS <= self.false_start_ms <= 60_000, "[30, 60000] ms"),
            ("max_utterance_s", 0.5 <= self.max_utterance_s <= 3600, "[0.5, 3600] s"),
        ]
        for key, ok, allowed in checks:
            value = getattr(self, key)
            if isinstance(value, bool) or not ok:
                raise ConfigError(f"streaming {key}={value!r}: allowed {allowed}")


class SpeechGate:
    """Is this 30 ms frame speech? webrtcvad, and loud enough (absolute floor and margin over
    the tracked noise floor), and not a pure tone (webrtcvad calls steady tones speech). Is it
    steady (its spectrum that of :data:`STEADY_LAG` frames before)? ``steady`` holds that for
    the frames of the last :meth:`judge`; the stream keeps count of it per utterance.

    :meth:`judge` takes a chunk's frames at once: levels and spectra as array operations, the
    noise floor frame by frame, webrtcvad only on frames that passed the cheaper checks."""

    def __init__(self, config: GateConfig, sample_rate: int):
        import webrtcvad

        self.config = config
        self.vad = webrtcvad.Vad(config.aggressiveness)
        self.sample_rate = sample_rate
        self.frame = sample_rate * FRAME_MS // 1000
        self.n_fft = 1 << (self.frame - 1).bit_length()
        self.window = np.hanning(self.frame)
        self.levels: deque[float] = deque(maxlen=int(config.floor_window_ms // FRAME_MS))
        self.level = -120.0  # dBFS of the last frame
        #: Magnitude spectra of the last STEADY_LAG frames, and steadiness of the last judge's.
        self.recent = np.zeros((0, self.n_fft // 2 + 1))
        self.steady = np.zeros(0, dtype=bool)

    def reset(self) -> None:
        self.levels.clear()
        self.recent = self.recent[:0]

    def __call__(self, frame: np.ndarray) -> bool:
        return bool(self.judge(frame[None])[0][0])

    def judge(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Speech (bool) and level (dBFS) of each row of ``frames`` [n, frame], in order (the
        noise floor moves frame by frame); ``level`` is left at the last frame's."""
        cfg = self.config
        levels = 10 * np.log10(np.mean(np.square(frames, dtype=np.float64), axis=1) + 1e-12)
        loud = np.zeros(len(frames), dtype=bool)
        for i, level in enumerate(levels.tolist()):
            self.levels.append(level)
            loud[i] = level >= cfg.energy_floor_db and level >= min(self.levels) + cfg.margin_db
        if len(levels):
            self.level = float(levels[-1])
        speech = np.zeros(len(frames), dtype=bool)
        magnitude = np.abs(np.fft.rfft(frames * self.window, self.n_fft))
        self.steady = self._steady(magnitude)
        rows = np.flatnonzero(loud)
        if not len(rows):
            return speech, levels
        power = magnitude[rows] ** 2
        # the power within two bins of the peak, summed left to right as a 5-bin slice is
        near = power.argmax(axis=1)[:, None] + np.arange(-2, 3)
        inside = (near >= 0) & (near < power.shape[1])
        picked = np.where(inside, np.take_along_axis(power, near.clip(0, power.shape[1] - 1),
                                                     axis=1), 0.0)
        band = picked[:, 0] + picked[:, 1] + picked[:, 2] + picked[:, 3] + picked[:, 4]
        tone = band >= cfg.tone_fraction * power.sum(axis=1)
        pcm = (np.clip(frames[rows[~tone]], -1, 1) * 32767).astype("<i2")
        for i, row in zip(rows[~tone].tolist(), pcm, strict=True):
            speech[i] = self.vad.is_speech(row.tobytes(), self.sample_rate)
        return speech, levels

    def _steady(self, magnitude: np.ndarray) -> np.ndarray:
        """Each frame's spectrum against the one STEADY_LAG frames before (across chunks)."""
        joined = np.concatenate([self.recent, magnitude])
        self.recent = joined[-STEADY_LAG:]
        now, before = joined[STEADY_LAG:], joined[:-STEADY_LAG]
        norms = np.linalg.norm(now, axis=1) * np.linalg.norm(before, axis=1)
        similarity = (now * before).sum(axis=1) / np.maximum(norms, 1e-12)
        steady = similarity >= self.config.steady_similarity
        return np.concatenate([np.zeros(len(magnitude) - len(steady), dtype=bool), steady])


class _Utterance:
    """One gated utterance: its model state (``Streamer.start()``), its speech and decision."""

    def __init__(self, owner: StreamingRecognizer, start: float):
        self.owner = owner
        self.start = start
        self.state = owner.model.start(owner.max_steps)
        self.steps_done = 0
        self.last: Step | None = None
        self.decided = False
        self.decided_frames = 0
        self.samples = 0
        self.speech_samples = 0  # gate frames judged speech
        self.steady_samples = 0  # those of them that were steady
        self.levels: list[float] = []  # their dBFS
        #: The audio fed to the model, kept while the stream adapts to its speaker.
        self.audio: list[np.ndarray] = []

    def heard_speech(self, levels: list[float], samples: int, steady: int) -> None:
        """``samples`` of speech at ``levels`` (dBFS, one per frame), ``steady`` frames steady."""
        self.speech_samples += samples
        self.steady_samples += steady * self.owner.frame
        self.levels += levels

    @property
    def enough_speech(self) -> bool:
        """Enough speech for a decision, and speech-like: not mostly steady (music)."""
        owner = self.owner
        return self.speech_samples >= owner.min_speech_samples and \
            self.steady_samples <= owner.gate_config.max_steady_fraction * self.speech_samples

    def push(self, samples: np.ndarray) -> list[Event]:
        self.samples += len(samples)
        if self.owner.adapting:
            self.audio.append(samples)
        return self._steps(self.state.push(samples))

    def finish(self, reason: str) -> list[Event]:
        owner = self.owner
        # An utterance-level model runs (transcribes, classifies) only for a decision.
        wanted = owner.step_ms is not None or (self.enough_speech and not self.decided)
        events = self._steps(self.state.finish()) if wanted else []
        if not self.decided:
            if self.enough_speech and self.last is not None:
                events.append(self._decision(self.last, forced=True))
            else:
                events.append(Event("no_speech", self.start, {
                    "speech": round(self.speech_samples / owner.sample_rate, 4)}))
        seconds = self.samples / owner.sample_rate
        events.append(Event("utterance_end", self.start + seconds, {
            "start": round(self.start, 4),
            "duration": round(seconds, 4),
            "speech": round(self.speech_samples / owner.sample_rate, 4),
            "frames": self.state.frames,
            "reason": reason,
            "fraction_at_decision": round(self.decided_frames / max(self.state.frames, 1), 4)
            if self.decided else None,
        }))
        return events

    def _steps(self, steps: list[Step]) -> list[Event]:
        """Step events (stepping models) and the decision when the stop rule says so; an
        utterance-level model's single result waits for :meth:`finish`."""
        if self.owner.model.step_ms is None:
            self.last = steps[-1] if steps else self.last
            return []
        events = []
        for step in steps:
            events += self._step(step)
        return events

    def _step(self, step: Step) -> list[Event]:
        owner = self.owner
        stop = bool(stop_rule(step.proba, owner.threshold, step.actions))
        k = self.steps_done
        self.steps_done += 1
        self.last = step
        events = [Event("step", step.seconds, {
            "step": k,
            "probabilities": owner.probabilities(step.proba),
            "action": "terminate" if stop else "wait",
        })]
        if self.decided or not self.enough_speech:
            return events
        if stop or (self.steps_done >= owner.max_steps):
            events.append(self._decision(step, forced=not stop))
        return events

    def _decision(self, step: Step, forced: bool) -> Event:
        owner = self.owner
        self.decided = True
        self.decided_frames = int(round(step.seconds * owner.model.frame_rate))
        return Event("decision", step.seconds, {
            "label": owner.labels[int(step.proba.argmax())],
            "confidence": round(float(step.proba.max()), 6),
            "probabilities": owner.probabilities(step.proba),
            "forced": forced,
            "start": round(self.start, 4),
            "emitted_at": round(owner.now, 4),
            **owner.adaptation(),
        })


class StreamingRecognizer:
    """Streams a trained model directory whose method supplies a per-utterance model
    (``Method.streamer``, :mod:`emovox.experiments.streamers`): a GRU carried across chunks
    (``emorl``, ``gru_baseline``), a recogniser-layer model re-encoding the heard audio every
    step (``mp``, ``layer_mix``, ``rnn`` on ``whisper_layers``), or an utterance-level model
    (``multimodal``: no steps, one decision at the end of each utterance).

    ``threshold``: decide at the first step whose top probability reaches it; without it a
    model with no agent decides at the end of the utterance. ``vad`` only shortens the pause
    that ends an utterance (see :class:`GateConfig`); every mode decides on speech only.
    ``threads``: torch/BLAS threads of this process (:func:`set_threads`; None leaves them).

    A model trained with per-speaker normalisation normalises with what it has heard of its
    speaker, shrunk toward its training statistics by ``tau`` frames: ``speaker`` (enrolment
    statistics, ``serving.adaptation.enrolment``) and, with ``adapt`` (the default), every
    utterance heard so far that held speech; the stream's decisions say so (``adapted``,
    ``adaptation``, ``speaker_s``). :meth:`reset` forgets the utterances, not the enrolment.
    Other models refuse ``speaker`` (one line) and ignore ``adapt``.
    """

    def __init__(self, model, sample_rate: int = 16_000, vad: bool = False,
                 threshold: float | None = None, max_steps: int | None = None,
                 gate: GateConfig | None = None, threads: int | None = 1,
                 speaker: SpeakerStatistics | None = None, adapt: bool = True,
                 tau: float = SHRINKAGE_FRAMES):
        from emovox.serving.model_dir import Recognizer

        _check_number("threshold", threshold, 0.0, 1.0, "(0, 1]", low_open=True)
        _check_number("max_steps", max_steps, 1, 10**6, "an integer >= 1", integer=True)
        _check_number("threads", threads, 1, 1024, "an integer >= 1", integer=True)
        _check_number("sample_rate", sample_rate, 1, 10**6, "an integer > 0", integer=True,
                      optional=False)
        _check_number("tau", tau, 0, 1e12, "a number of frames >= 0", optional=False)
        if threads is not None:
            set_threads(threads)
        rec = model if isinstance(model, Recognizer) else Recognizer(Path(model))
        self.recognizer = rec
        if speaker is not None:
            require_speaker_normalisation(rec.normalise)
        self.enrolment, self.tau = speaker, tau
        self.adapting = adapt and rec.normalise == "speaker"
        self._listen(self._seed())
        if sample_rate != self.model.sample_rate:
            raise EmovoxError(f"stream sample rate {sample_rate} Hz: the model expects "
                              f"{self.model.sample_rate} Hz")
        self.sample_rate = sample_rate
        self.labels = rec.labels
        #: None: utterance-level decisions (no ``step`` events).
        self.step_ms = self.model.step_ms
        self.max_steps = max_steps or self.model.max_steps or 10**9
        self.threshold = threshold
        self.vad = vad
        self.gate_config = gate = gate or GateConfig()
        gate.validate(self.step_ms or UTTERANCE_PREROLL_MS)
        self.gate = SpeechGate(gate, sample_rate)
        frame = self.gate.frame
        ms = sample_rate // 1000
        self.start_frames = max(1, int(gate.start_ms // FRAME_MS))
        self.preroll_frames = int(gate.preroll_ms // FRAME_MS)
        self.postroll_samples = int(gate.postroll_ms * ms)
        pause = gate.pause_ms if gate.pause_ms is not None else (VAD_PAUSE_MS if vad else PAUSE_MS)
        self.pause_frames = max(1, int(pause // FRAME_MS))
        self.false_start_frames = min(self.pause_frames, max(1, int(gate.false_start_ms //
                                                                     FRAME_MS)))
        self.min_speech_samples = int(gate.min_speech_ms * ms)
        self.max_samples = int(gate.max_utterance_s * sample_rate)
        self.frame = frame
        self.reset()

    def probabilities(self, proba: np.ndarray) -> dict[str, float]:
        return {k: round(float(v), 6) for k, v in zip(self.labels, proba, strict=True)}

    # ---- the speaker --------------------------------------------------------------------
    def _seed(self) -> SpeakerStatistics | None:
        """What is known of the speaker before the stream: the enrolment (a copy: heard
        utterances are added to it), nothing yet when adapting, else None (training's)."""
        if self.enrolment is None and not self.adapting:
            return None
        seed = SpeakerStatistics(self.recognizer.extractor.dim)
        return seed + self.enrolment if self.enrolment is not None else seed

    def _listen(self, heard: SpeakerStatistics | None) -> None:
        """The per-utterance model normalising with ``heard`` (None: the training statistics)."""
        rec = self.recognizer
        self.heard = heard
        self.model = rec.method.streamer(rec.trained if heard is None else
                                         rec.for_speaker(heard, self.tau).trained)

    def _heard_utterance(self, utterance: _Utterance) -> None:
        """Running adaptation: a finished utterance that held speech joins the statistics."""
        if not (self.adapting and utterance.enough_speech and utterance.audio):
            return
        assert self.heard is not None
        # A block-causal stream already holds the offline frames: no second encoding.
        offline = getattr(utterance.state, "offline_frames", lambda: None)()
        self.heard.add(offline if offline is not None else
                       self.recognizer.frames(np.concatenate(utterance.audio)))
        self._listen(self.heard)

    def adaptation(self) -> dict:
        """How the current utterance is normalised (the fields of ``decision`` events):
        ``adapted`` (with any of the speaker's statistics), ``adaptation`` (``enrolled``,
        ``running``, both joined by ``+``, or ``none``) and ``speaker_s`` (seconds of the
        speaker's audio in the statistics)."""
        modes = [m for m, on in (("enrolled", self.enrolment is not None),
                                 ("running", self.adapting)) if on]
        heard = self.heard
        return {"adapted": bool(heard and heard.count), "adaptation": "+".join(modes) or "none",
                "speaker_s": self.recognizer.speaker_seconds(heard)}

    # ---- stream -------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the stream: no utterance, empty gate history, stream time 0."""
        self.position = 0  # samples the gate has judged
        self.rest = np.zeros(0, dtype=np.float32)  # less than one gate frame
        self.history: deque[np.ndarray] = deque(maxlen=self.preroll_frames + self.start_frames)
        self.run = 0  # consecutive speech frames while no utterance is open, or in a pause
        self.run_levels: list[float] = []  # their dBFS
        self.run_steady = 0  # how many of them were steady
        self.held: list[np.ndarray] = []  # audio of the pause since the utterance's speech
        #: Speech frames of this push not yet fed to the utterance: fed in one call per chunk,
        #: so features and the GRU run once per chunk, not once per 30 ms gate frame.
        self.speech: list[np.ndarray] = []
        self.utterance: _Utterance | None = None
        self.utterances = 0
        self.gate.reset()
        if self.adapting:  # back to the enrolment: the next stream may be someone else
            self._listen(self._seed())

    @property
    def now(self) -> float:
        """Stream time (s) of the audio judged so far."""
        return self.position / self.sample_rate

    def push(self, chunk: bytes | np.ndarray) -> list[Event]:
        """Feed 16-bit PCM bytes or float samples; returns the events they caused."""
        samples = pcm16_to_float(chunk) if isinstance(chunk, bytes | bytearray) else \
            np.asarray(chunk, dtype=np.float32)
        if samples.ndim != 1:
            raise EmovoxError("streamed audio must be mono")
        if not np.isfinite(samples).all():
            raise EmovoxError("streamed audio contains NaN or infinite samples")
        audio = np.concatenate([self.rest, samples]) if len(self.rest) else samples
        n = len(audio) // self.frame
        events: list[Event] = []
        frames = audio[: n * self.frame].reshape(n, self.frame)
        speech, levels = self.gate.judge(frames)  # the whole chunk's frames at once
        steady = self.gate.steady
        for i in range(n):
            self.gate.level = float(levels[i])
            events += self._frame(frames[i], bool(speech[i]), bool(steady[i]))
        self.rest = audio[n * self.frame :].copy()
        return events + self._feed()

    async def push_async(self, chunk: bytes | np.ndarray) -> list[Event]:
        """:meth:`push` for a service's event loop: a model that batches its steps across
        streams (``experiments.recogniser_streams.StepBatcher``) pushes on the batcher's
        threads, so that this stream's step joins the other streams'; any other model pushes
        inline."""
        batcher = getattr(self.model, "batcher", None)
        return self.push(chunk) if batcher is None else await batcher.run(self.push, chunk)

    async def end_async(self) -> list[Event]:
        """:meth:`end` as :meth:`push_async` pushes."""
        batcher = getattr(self.model, "batcher", None)
        return self.end() if batcher is None else await batcher.run(self.end)

    def _feed(self) -> list[Event]:
        """Feed the speech frames gathered so far to the open utterance."""
        if not self.speech:
            return []
        audio, self.speech = np.concatenate(self.speech), []
        return self.utterance.push(audio)

    def _frame(self, frame: np.ndarray, speech: bool, steady: bool) -> list[Event]:
        self.position += len(frame)
        utterance = self.utterance
        if utterance is None:
            self.history.append(frame)
            self._count(speech, steady)
            if self.run < self.start_frames:
                return []
            audio = list(self.history)[-(self.run + self.preroll_frames):]
            start = self.now - len(audio) * self.frame / self.sample_rate
            self.utterance = utterance = _Utterance(self, start)
            utterance.heard_speech(self.run_levels, self.run * self.frame, self.run_steady)
            self.utterances += 1
            self.history.clear()
            self.run, self.run_levels, self.run_steady = 0, [], 0
            events = [Event("utterance_start", start)] + utterance.push(np.concatenate(audio))
        elif speech and not self.held:
            utterance.heard_speech([self.gate.level], len(frame), int(steady))
            self.speech.append(frame)
            events = []
            if utterance.samples + len(self.speech) * self.frame >= self.max_samples:
                events = self._feed()
        else:  # in a pause: only a run of speech (as at an onset) resumes the utterance
            events = self._feed()
            self.held.append(frame)
            self._count(speech, steady)
            resumes = self.run >= self.start_frames and np.mean(self.run_levels) >= \
                np.mean(utterance.levels) - self.gate_config.resume_db
            if not resumes:
                if len(self.held) >= self.pause_frames:
                    return events + self._close("pause")
                if len(self.held) >= self.false_start_frames and not utterance.enough_speech:
                    return events + self._close("false_start")
                return events
            utterance.heard_speech(self.run_levels, self.run * self.frame, self.run_steady)
            events += utterance.push(np.concatenate(self.held))
            self.held, self.run, self.run_levels, self.run_steady = [], 0, [], 0
        if utterance.samples >= self.max_samples:
            events += self._close("max_length")
        return events

    def _count(self, speech: bool, steady: bool) -> None:
        """Track the current run of consecutive speech frames, their levels and how many of
        them were steady."""
        if speech:
            self.run += 1
            self.run_levels.append(self.gate.level)
            self.run_steady += steady
        else:
            self.run, self.run_levels, self.run_steady = 0, [], 0

    def _close(self, reason: str, tail: np.ndarray | None = None) -> list[Event]:
        """End the open utterance: feed the post-roll (``tail``: the end of the stream's audio
        after the last speech), decide or report ``no_speech``, reset its state."""
        assert self.utterance is not None
        events = self._feed()
        if tail is None:
            tail = np.concatenate(self.held)[: self.postroll_samples] if self.held else \
                np.zeros(0, dtype=np.float32)
        events += self.utterance.push(tail) if len(tail) else []
        events += self.utterance.finish(reason)
        self._heard_utterance(self.utterance)
        self.history.extend(self.held)
        self.held = []
        self.utterance = None
        return events

    def end(self) -> list[Event]:
        """End of stream: finish the open utterance (forced decision if undecided and it held
        enough speech); ``no_speech`` if the stream never had an utterance. Then reset."""
        events: list[Event] = []
        self.position += len(self.rest)
        if self.utterance is not None:
            if self.held:  # in a pause: keep the post-roll only
                tail = np.concatenate([*self.held, self.rest])[: self.postroll_samples]
            else:  # mid-speech: the partial frame belongs to it
                tail = self.rest
            events = self._close("end", tail)
        elif not self.utterances:
            events = [Event("no_speech", self.now, {"speech": 0.0})]
        self.reset()
        return events


def _check_number(key: str, value, low: float, high: float, allowed: str,
                  integer: bool = False, low_open: bool = False, optional: bool = True) -> None:
    """One-line ConfigError unless ``value`` is a number within [low, high] (or None)."""
    if value is None and optional:
        return
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    ok = isinstance(value, kinds) and not isinstance(value, bool)
    ok = ok and (low < value if low_open else low <= value) and value <= high
    if not ok:
        raise ConfigError(f"{key}={value!r}: allowed {allowed}")
