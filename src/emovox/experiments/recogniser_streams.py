"""Streams of a recogniser-layer model, whose frames cannot be computed chunk by chunk
(Whisper's encoder attends over its whole input), and the batching of their encoder calls
across the streams of a process.

Both streamers are ``experiments.streamers.Streamer``s (the same ``start`` → ``push`` /
``finish`` → ``early.decisions.Step`` contract). :class:`WindowStreamer` re-encodes the heard
audio (or its last ``window_s`` seconds) every step: exact while the utterance fits the
window. :class:`BlockStreamer` encodes only what arrived: each step runs ``encode`` on the
new ``step_ms`` of audio preceded by at most ``context_s`` seconds already heard (read again as
context, its frames not kept); the new frames join the utterance's and are never recomputed;
``classify`` reads all frames heard. A step costs the same at any utterance length. The frames
differ from offline extraction (a frame sees at most ``context_s`` before its block and the
rest of its block after it): benchmarks/streaming_recogniser.py measures what that costs.
:class:`CausalBlockStreamer` streams a block-causal ``whisper_layers`` model (``block_ms``):
each step's block is encoded once after the stream's cached keys and values, and its frames
are exactly the offline frames, so training, ``predict`` and the stream read the same frames.

:class:`StepBatcher` collects the blocks of many streams' threads and encodes equally long
blocks in one call; a service runs each stream's ``push`` on its threads
(``serving.streaming.StreamingRecognizer.push_async``). Nothing here imports PyTorch: the ONNX
runtime streams an export with the same classes, ``encode`` and ``classify`` being its graphs.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from emovox.asr.frames import FRONT_MARGIN, context_offsets, frames_of
from emovox.asr.layers import BlockEncode, Encode
from emovox.early.decisions import Step
from emovox.errors import EmovoxError

#: Audio before a step's new audio that its encoding reads again as left context.
CONTEXT_S = 1.0
#: How long the first block of a batch waits for the blocks of other streams' steps.
DEADLINE_S = 0.01
#: Most blocks in one encoder call.
MAX_BATCH = 64
#: Threads that run streams' pushes (``StepBatcher.run``): at most this many at once.
THREADS = 256


@dataclass
class _Block:
    audio: np.ndarray
    first_frame: int
    since: float
    #: A block-causal block's stream ring of keys and values (the encoder updates it).
    ring: Any = None
    frames: np.ndarray | None = None
    error: BaseException | None = None


class StepBatcher:
    """Encodes blocks (``encode_block``, called from any thread) in batches: a batch runs as soon
    as every push in flight on :meth:`run`'s threads is waiting for its block (or has finished),
    when ``max_batch`` blocks wait, or ``deadline_s`` after its first block arrived; a lone
    caller (no service) runs at once. Equally long blocks share one ``encode`` call.
    ``cached``: ``encode`` is a :data:`~emovox.asr.layers.BlockEncode` (:meth:`encode_cached`)."""

    def __init__(self, encode: Encode | BlockEncode, deadline_s: float = DEADLINE_S,
                 max_batch: int = MAX_BATCH, threads: int = THREADS, cached: bool = False):
        self.encode, self.deadline_s, self.max_batch = encode, deadline_s, max_batch
        self.cached = cached
        self.threads = threads
        self.cond = threading.Condition()
        self.pending: list[_Block] = []
        self.in_flight = 0
        self.running = False
        self._executor: ThreadPoolExecutor | None = None
        #: Encoder calls made and blocks encoded (the batching a benchmark reports).
        self.calls = self.blocks = 0

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on one of the batcher's threads, counted as in flight."""
        with self.cond:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.threads, "emovox-step")
            self.in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        finally:
            with self.cond:
                self.in_flight -= 1
                self.cond.notify_all()

    def encode_block(self, audio: np.ndarray, first_frame: int) -> np.ndarray:
        """[frames, dim] of ``audio`` whose first sample starts frame ``first_frame``."""
        return self._wait(_Block(np.asarray(audio, np.float32), first_frame, time.monotonic()))

    def encode_cached(self, window: np.ndarray, first_frame: int, ring: Any) -> np.ndarray:
        """[frames, dim] of a block-causal block (after its front-end margin) starting frame
        ``first_frame`` of its utterance, after its stream's ``ring`` (updated)."""
        return self._wait(_Block(np.asarray(window, np.float32), first_frame, time.monotonic(),
                                 ring))

    def _wait(self, block: _Block) -> np.ndarray:
        """Queue ``block``, run batches until its frames are there."""
        with self.cond:
            self.pending.append(block)
            self.cond.notify_all()
            while block.frames is None and block.error is None:
                batch = self._take()
                if batch is None:
                    wait = self.pending[0].since + self.deadline_s - time.monotonic() \
                        if self.pending and not self.running else None
                    self.cond.wait(max(wait, 1e-4) if wait is not None else None)
                    continue
                self.cond.release()
                try:
                    self._encode(batch)
                finally:
                    self.cond.acquire()
                    self.running = False
                    self.cond.notify_all()
        if block.error is not None:
            raise block.error
        return block.frames

    def _take(self) -> list[_Block] | None:
        """The waiting blocks, when a batch is due (the lock is held)."""
        if self.running or not self.pending:
            return None
        due = (len(self.pending) >= max(self.in_flight, 1)
               or len(self.pending) >= self.max_batch
               or time.monotonic() >= self.pending[0].since + self.deadline_s)
        if not due:
            return None
        self.running = True
        batch, self.pending = self.pending, []
        return batch

    def _encode(self, batch: list[_Block]) -> None:
        groups: dict[int, list[_Block]] = {}
        for block in batch:
            groups.setdefault(len(block.audio), []).append(block)
        for samples, group in groups.items():
            for i in range(0, len(group), self.max_batch):
                part = group[i : i + self.max_batch]
                try:
                    frames = self._call(part, samples)
                except Exception as exc:  # noqa: BLE001  (handed to each waiting stream)
                    for block in part:
                        block.error = exc
                    continue
                self.calls += 1
                self.blocks += len(part)
                for block, row in zip(part, frames, strict=True):
                    block.frames = row


    def _call(self, part: list[_Block], samples: int) -> np.ndarray:
        audio = np.stack([b.audio for b in part])
        if not self.cached:
            return self.encode(audio, context_offsets([b.first_frame for b in part],
                                                      frames_of(samples)))
        return self.encode(audio, np.array([b.first_frame for b in part]),
                           [b.ring for b in part])


_BATCHERS: dict[str, StepBatcher] = {}
_BATCHERS_LOCK = threading.Lock()


def shared_batcher(key: str, encode: Encode | BlockEncode, cached: bool = False) -> StepBatcher:
    """The process's one batcher for the features ``key`` (an extractor's cache key): every
    stream of a model, enrolled or not, joins the same batches."""
    with _BATCHERS_LOCK:
        if key not in _BATCHERS:
            _BATCHERS[key] = StepBatcher(encode, cached=cached)
        return _BATCHERS[key]


# ---- the heard audio re-encoded every step -------------------------------------------------
class WindowStreamer:
    """A ``Streamer``: every ``step_ms``, ``features`` of the heard audio (or of its last
    ``window_s`` seconds, earlier frames kept as last computed), then ``classify`` on all
    frames heard.

    ``features(samples, first_frame)`` maps samples that start at frame ``first_frame`` of the
    utterance to [frames, dim] at ``frame_rate`` (frame i starting at sample i·hop; an
    extractor's ``extract_from``); ``classify`` maps an utterance's frames to class
    probabilities (normalisation, stacking and the model, as offline) and the agent's action
    logits (None without an agent). With ``window_s=None`` a step's probabilities are exactly
    offline inference on the prefix heard; with a window they are too while the utterance is no
    longer than the window. ``batcher`` (a :class:`StepBatcher`, for a window within Whisper's
    30 s context) computes the features instead, batched with other streams' steps.
    """

    def __init__(self, features: Callable[[np.ndarray, int], np.ndarray],
                 classify: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]],
                 sample_rate: int, frame_rate: float, step_ms: float,
                 window_s: float | None = None, max_steps: int | None = None,
                 batcher: StepBatcher | None = None):
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
        self.batcher = batcher
        if batcher is not None and (window_s is None or window_s > 30):
            raise EmovoxError("a batched stream re-encodes at most Whisper's 30 s context; "
                              f"window_s={window_s}")
        if batcher is not None:
            self.features = batcher.encode_block

    def start(self, max_steps: int) -> WindowStream:
        return WindowStream(self, max_steps)


class _HeardAudio:
    """An utterance's audio as it arrives (its buffer grows by doubling) and the steps due in
    it: every ``step_samples``, and once more at the end for a partial step. Subclasses say
    what a step computes (``_step``)."""

    def __init__(self, model: WindowStreamer | BlockStreamer | CausalBlockStreamer,
                 max_steps: int):
        self.model, self.max_steps = model, max_steps
        self.audio = np.zeros(model.sample_rate, dtype=np.float32)
        self.samples = 0
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
        steps = [self._step(at) for at in due if self.steps < self.max_steps]
        return [s for s in steps if s is not None]

    def finish(self) -> list[Step]:
        if self.samples % self.model.step_samples and self.steps < self.max_steps:
            return [self._step(self.samples)]
        return []

    def _step(self, end: int) -> Step | None:
        """The step at sample ``end``; None while it has no frames yet (a lookahead's)."""
        raise NotImplementedError


class WindowStream(_HeardAudio):
    """One utterance of a :class:`WindowStreamer` (an ``UtteranceStream``)."""

    def __init__(self, model: WindowStreamer, max_steps: int):
        super().__init__(model, max_steps)
        self.frozen: list[np.ndarray] = []  # frames that slid out of the window
        self.frozen_frames = 0
        self.window = np.zeros((0, 0), dtype=np.float32)  # the last window's frames

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


# ---- only the new audio encoded, after a bounded context ------------------------------------
class BlockStreamer:
    """A ``Streamer`` encoding each step's new audio after at most ``context_s`` seconds of
    context (see the module docstring). ``batcher`` encodes the blocks (:class:`StepBatcher`);
    ``classify`` maps all frames heard to class probabilities and the agent's action logits
    (None without an agent), as offline."""

    def __init__(self, batcher: StepBatcher,
                 classify: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]],
                 sample_rate: int, frame_rate: float, step_ms: float,
                 context_s: float = CONTEXT_S, max_steps: int | None = None):
        hop = sample_rate / frame_rate
        step = step_ms / 1000 * sample_rate
        if hop != int(hop) or step % hop:
            raise EmovoxError(f"a {step_ms:g} ms step is not a whole number of frames at "
                              f"{frame_rate:g} frames/s; this model cannot stream in blocks")
        if context_s * frame_rate < 1:
            raise EmovoxError(f"context_s={context_s:g}: must hold at least one frame")
        self.batcher, self.classify = batcher, classify
        self.sample_rate, self.frame_rate, self.hop = sample_rate, frame_rate, int(hop)
        self.step_ms, self.max_steps = step_ms, max_steps
        self.step_samples = int(step)
        self.context_samples = int(round(context_s * frame_rate)) * self.hop

    def start(self, max_steps: int) -> BlockStream:
        return BlockStream(self, max_steps)


class BlockStream(_HeardAudio):
    """One utterance of a :class:`BlockStreamer` (an ``UtteranceStream``)."""

    def __init__(self, model: BlockStreamer, max_steps: int):
        super().__init__(model, max_steps)
        self.encoded = 0  # samples whose frames are final
        self.blocks: list[np.ndarray] = []

    def heard_features(self, end: int) -> np.ndarray:
        """All frames of the first ``end`` samples: the new block's encoded after its context."""
        model = self.model
        if frames_of(end) > self.frames:
            start = max(0, self.encoded - model.context_samples)
            new = model.batcher.encode_block(self.audio[start:end], start // model.hop)
            self.blocks.append(new[(self.encoded - start) // model.hop :])
            self.frames += len(self.blocks[-1])
            self.encoded = end
        return np.concatenate(self.blocks) if len(self.blocks) > 1 else self.blocks[0]

    def _step(self, end: int) -> Step:
        feats = self.heard_features(end)
        self.steps += 1
        return Step(end / self.model.sample_rate, *self.model.classify(feats))


# ---- block-causal: each block encoded once after the stream's cached keys and values ---------
class CausalBlockStreamer:
    """A ``Streamer`` of a block-causal ``whisper_layers`` model: every step (one block,
    ``step_ms``) ``batcher.encode_cached`` encodes a block after its front-end margin, with the
    ``lookahead_ms`` after it, after the utterance's keys and values (``new_ring()``: an empty
    ring of them); the frames are the offline extractor's (a block is final once its lookahead
    was heard, or at the end), and ``classify`` reads all final frames, as offline."""

    def __init__(self, batcher: StepBatcher,
                 classify: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]],
                 sample_rate: int, frame_rate: float, step_ms: float,
                 new_ring: Callable[[], Any], lookahead_ms: float = 0.0,
                 max_steps: int | None = None):
        hop = sample_rate / frame_rate
        step = step_ms / 1000 * sample_rate
        ahead = lookahead_ms / 1000 * sample_rate
        if hop != int(hop) or step % hop or ahead % hop or ahead > step:
            raise EmovoxError(f"a {step_ms:g} ms step (lookahead {lookahead_ms:g} ms) is not a "
                              f"whole number of frames at {frame_rate:g} frames/s, or the "
                              "lookahead is longer than a step: this model cannot stream")
        self.batcher, self.classify, self.new_ring = batcher, classify, new_ring
        self.sample_rate, self.frame_rate, self.hop = sample_rate, frame_rate, int(hop)
        self.step_ms, self.max_steps = step_ms, max_steps
        self.step_samples, self.lookahead_samples = int(step), int(ahead)

    def start(self, max_steps: int) -> CausalBlockStream:
        return CausalBlockStream(self, max_steps)


class CausalBlockStream(_HeardAudio):
    """One utterance of a :class:`CausalBlockStreamer` (an ``UtteranceStream``)."""

    def __init__(self, model: CausalBlockStreamer, max_steps: int):
        super().__init__(model, max_steps)
        self.ring = model.new_ring()
        self.encoded = 0  # samples whose frames are final
        self.blocks: list[np.ndarray] = []

    def heard_features(self, end: int, final: bool = False) -> np.ndarray | None:
        """All final frames of the first ``end`` samples (``final``: the utterance ends there,
        no more lookahead will come): each new block encoded after the ring."""
        model = self.model
        while self.encoded < end and (final or self.encoded + model.step_samples
                                      + model.lookahead_samples <= end):
            block_end = min(self.encoded + model.step_samples, end)
            start = self.encoded - FRONT_MARGIN
            window = self.audio[max(start, 0) : min(block_end + model.lookahead_samples, end)]
            if start < 0:
                window = np.concatenate([np.zeros(-start, np.float32), window])
            new = model.batcher.encode_cached(window, self.encoded // model.hop, self.ring)
            self.blocks.append(new[: frames_of(block_end - self.encoded)])
            self.frames += len(self.blocks[-1])
            self.encoded = block_end
        if not self.blocks:
            return None
        return np.concatenate(self.blocks) if len(self.blocks) > 1 else self.blocks[0]

    def finish(self) -> list[Step]:
        if self.encoded < self.samples and self.steps < self.max_steps:
            return [self._step(self.samples, final=True)]
        return []

    def offline_frames(self) -> np.ndarray | None:
        """The offline frames of all audio pushed, when every sample was encoded (None
        otherwise): what running adaptation adds to the speaker's statistics."""
        if self.encoded != self.samples or not self.blocks:
            return None
        return np.concatenate(self.blocks)

    def _step(self, end: int, final: bool = False) -> Step | None:
        feats = self.heard_features(end, final)
        if feats is None:
            return None
        self.steps += 1
        return Step(end / self.model.sample_rate, *self.model.classify(feats))
