"""``StreamingRecognizer(model).push(pcm_chunk) -> list[Event]``: emotion decisions while audio
is still arriving.

Per utterance it carries the feature extractor's state (:class:`StreamingFeatures`), the frame
stacker and the GRU's hidden state and running mean, so a chunk costs the same however much audio
came before. Every decision step (``step_ms`` of audio) it emits the running class probabilities;
the agent (EmoRL) or a confidence threshold (``gru_baseline``) chooses when to emit the single
``decision`` of the utterance; an utterance that ends undecided gets a forced decision. With
``vad=True`` a continuous stream is cut into utterances by webrtcvad and the state is reset
between them. Offline inference on the same audio gives the same decisions (a test checks it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from emovox.errors import EmovoxError
from emovox.features.incremental import StreamingFeatures
from emovox.models.emorl import TERMINATE, EmoRL
from emovox.models.recurrent import GruBaseline

EVENT_TYPES = ("utterance_start", "step", "decision", "utterance_end")


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


class _Utterance:
    """Streaming state of one utterance."""

    def __init__(self, owner: StreamingRecognizer, start: float):
        self.owner = owner
        self.start = start
        self.features = StreamingFeatures(owner.extractor)
        self.pending = np.zeros((0, owner.extractor.dim), dtype=np.float32)
        self.hidden: torch.Tensor | None = None
        self.total = torch.zeros(owner.hidden_size)
        self.count = 0  # stacked frames read
        self.steps_done = 0
        self.last: tuple[np.ndarray, float] | None = None  # probabilities, time at last step
        self.decided = False
        self.decided_frames = 0
        self.samples = 0

    def push(self, samples: np.ndarray) -> list[Event]:
        self.samples += len(samples)
        return self._frames(self.features.push(samples), final=False)

    def finish(self) -> list[Event]:
        events = self._frames(self.features.finish(), final=True)
        owner = self.owner
        if self.count and self.count % owner.step and self.steps_done < owner.max_steps:
            events += self._step(final=True)
        if not self.decided and self.last is not None:
            events.append(self._decision(*self.last, forced=True))
        events.append(Event("utterance_end", self.start + self.samples / owner.sample_rate, {
            "duration": round(self.samples / owner.sample_rate, 4),
            "frames": self.count,
            "fraction_at_decision": round(self.decided_frames / max(self.count, 1), 4)
            if self.decided else None,
        }))
        return events

    def _frames(self, frames: np.ndarray, final: bool) -> list[Event]:
        owner = self.owner
        if len(frames):
            frames = owner.normalise(frames)
            self.pending = np.concatenate([self.pending, frames])
        k = owner.stack
        usable = len(self.pending) // k * k
        rows = [self.pending[:usable].reshape(-1, k * owner.extractor.dim)]
        self.pending = self.pending[usable:]
        if final and len(self.pending):
            tail = np.concatenate([self.pending,
                                   np.repeat(self.pending[-1:], k - len(self.pending), 0)])
            rows.append(tail.reshape(1, -1))
            self.pending = self.pending[:0]
        x = np.concatenate(rows)
        if not len(x):
            return []
        with torch.no_grad():
            out, self.hidden = owner.gru(torch.from_numpy(x)[None], self.hidden)
        events = []
        cumulative = torch.cumsum(out[0], 0) + self.total
        for i in range(len(x)):
            self.count += 1
            if self.count % owner.step == 0 and self.steps_done < owner.max_steps:
                events += self._step(final=False, state=cumulative[i] / self.count)
        self.total = cumulative[-1]
        return events

    def _step(self, final: bool, state: torch.Tensor | None = None) -> list[Event]:
        owner = self.owner
        if state is None:
            state = self.total / self.count
        with torch.no_grad():
            proba = torch.softmax(owner.classifier(state), -1).numpy()
            stop = owner.should_stop(state, proba)
        heard = self.count / owner.frame_rate
        k = self.steps_done
        self.steps_done += 1
        self.last = (proba, heard)
        events = [Event("step", heard, {
            "step": k,
            "probabilities": owner.probabilities(proba),
            "action": "terminate" if stop else "wait",
        })]
        if self.decided:
            return events
        if stop or (self.steps_done >= owner.max_steps):
            events.append(self._decision(proba, heard, forced=not stop))
        return events

    def _decision(self, proba: np.ndarray, heard: float, forced: bool) -> Event:
        owner = self.owner
        self.decided = True
        self.decided_frames = int(round(heard * owner.frame_rate))
        return Event("decision", heard, {
            "label": owner.labels[int(proba.argmax())],
            "confidence": round(float(proba.max()), 6),
            "probabilities": owner.probabilities(proba),
            "forced": forced,
            "emitted_at": round(self.start + self.samples / owner.sample_rate, 4),
        })


class StreamingRecognizer:
    """Streams a trained ``emorl`` or ``gru_baseline`` model directory.

    ``threshold`` (gru_baseline only): decide at the first step whose top probability reaches
    it; by default a gru_baseline decides at the end of the utterance.
    """

    def __init__(self, model, sample_rate: int = 16_000, vad: bool = False,
                 vad_aggressiveness: int = 2, threshold: float | None = None,
                 max_steps: int | None = None):
        from emovox.early.reinforce import EmoRLConfig, step_frames
        from emovox.serving.model_dir import Recognizer

        rec = model if isinstance(model, Recognizer) else Recognizer(Path(model))
        self.recognizer = rec
        trained = rec.trained
        members = trained.members
        net = members[0]
        if len(members) > 1 or not isinstance(net, EmoRL | GruBaseline):
            raise EmovoxError(f"model {rec.config.model.name!r} cannot stream: streaming "
                              "needs a single emorl or gru_baseline model")
        if trained.normaliser.mode == "utterance":
            raise EmovoxError("per-utterance normalisation needs the whole utterance; "
                              "train the streaming model with global normalisation")
        if sample_rate != trained.extractor.sample_rate:
            raise EmovoxError(f"stream sample rate {sample_rate} Hz: the model expects "
                              f"{trained.extractor.sample_rate} Hz")
        self.net = net
        self.extractor = trained.extractor
        self.sample_rate = sample_rate
        self.labels = rec.labels
        self.stack = trained.stack
        self.gru = net.gru
        self.hidden_size = net.gru.hidden_size
        self.classifier = net.classifier if isinstance(net, EmoRL) else net.head
        params = rec.config.method.params
        emorl_cfg = params if isinstance(params, EmoRLConfig) else EmoRLConfig()
        self.frame_rate = self.extractor.frame_rate / self.stack
        self.step = step_frames(emorl_cfg, self.frame_rate)
        self.step_ms = emorl_cfg.step_ms
        self.max_steps = max_steps or emorl_cfg.max_steps or 10**9
        self.threshold = threshold
        self.vad = _Vad(sample_rate, vad_aggressiveness) if vad else None
        self.reset()

    # ---- policy -------------------------------------------------------------------------
    def should_stop(self, state: torch.Tensor, proba: np.ndarray) -> bool:
        if isinstance(self.net, EmoRL) and self.threshold is None:
            return int(self.net.policy(state).argmax()) == TERMINATE
        return self.threshold is not None and float(proba.max()) >= self.threshold

    def normalise(self, frames: np.ndarray) -> np.ndarray:
        return self.recognizer.trained.normaliser.apply([frames])[0]

    def probabilities(self, proba: np.ndarray) -> dict[str, float]:
        return {k: round(float(v), 6) for k, v in zip(self.labels, proba, strict=True)}

    # ---- stream -------------------------------------------------------------------------
    def reset(self) -> None:
        self.stream_samples = 0
        self.utterance: _Utterance | None = None if self.vad else _Utterance(self, 0.0)
        if self.vad:
            self.vad.reset()

    def push(self, chunk: bytes | np.ndarray) -> list[Event]:
        """Feed 16-bit PCM bytes or float samples; returns the events they caused."""
        samples = pcm16_to_float(chunk) if isinstance(chunk, bytes | bytearray) else \
            np.asarray(chunk, dtype=np.float32)
        if samples.ndim != 1:
            raise EmovoxError("streamed audio must be mono")
        events: list[Event] = []
        if self.vad is None:
            assert self.utterance is not None
            events = self.utterance.push(samples)
        else:
            for kind, piece in self.vad.feed(samples):
                events += self._vad_event(kind, piece)
        self.stream_samples += len(samples)
        return events

    def _vad_event(self, kind: str, piece: np.ndarray) -> list[Event]:
        now = self.stream_samples / self.sample_rate
        if kind == "start":
            self.utterance = _Utterance(self, now)
            return [Event("utterance_start", now)] + self.utterance.push(piece)
        if self.utterance is None:
            return []
        if kind == "speech":
            return self.utterance.push(piece)
        events = self.utterance.push(piece) + self.utterance.finish()  # kind == "end"
        self.utterance = None
        return events

    def end(self) -> list[Event]:
        """End of stream: finish the current utterance (forced decision if undecided)."""
        events: list[Event] = []
        if self.utterance is not None and self.utterance.samples:
            events = self.utterance.finish()
        self.reset()
        return events


class _Vad:
    """webrtcvad over 30 ms frames: an utterance starts after ``start_ms`` of speech (with
    ``preroll_ms`` of audio before it) and ends after ``end_ms`` of non-speech."""

    def __init__(self, sample_rate: int, aggressiveness: int, start_ms: int = 90,
                 end_ms: int = 600, preroll_ms: int = 300):
        import webrtcvad

        self.vad = webrtcvad.Vad(aggressiveness)
        self.sample_rate = sample_rate
        self.frame = sample_rate * 30 // 1000
        self.start_frames, self.end_frames = start_ms // 30, end_ms // 30
        self.preroll = preroll_ms // 30
        self.reset()

    def reset(self) -> None:
        self.rest = np.zeros(0, dtype=np.float32)
        self.history: list[np.ndarray] = []
        self.in_speech, self.voiced_run, self.silent_run = False, 0, 0

    def feed(self, samples: np.ndarray) -> list[tuple[str, np.ndarray]]:
        self.rest = np.concatenate([self.rest, samples])
        out: list[tuple[str, np.ndarray]] = []
        while len(self.rest) >= self.frame:
            frame, self.rest = self.rest[: self.frame], self.rest[self.frame :]
            pcm = (np.clip(frame, -1, 1) * 32767).astype("<i2").tobytes()
            voiced = self.vad.is_speech(pcm, self.sample_rate)
            if not self.in_speech:
                self.history = (self.history + [frame])[-(self.preroll + self.start_frames):]
                self.voiced_run = self.voiced_run + 1 if voiced else 0
                if self.voiced_run >= self.start_frames:
                    self.in_speech, self.silent_run = True, 0
                    out.append(("start", np.concatenate(self.history)))
                    self.history = []
            else:
                self.silent_run = 0 if voiced else self.silent_run + 1
                if self.silent_run >= self.end_frames:
                    self.in_speech, self.voiced_run = False, 0
                    out.append(("end", frame))
                else:
                    out.append(("speech", frame))
        return out
