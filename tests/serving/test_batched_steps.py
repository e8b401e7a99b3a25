"""Recogniser streams (experiments.recogniser_streams): which frames a block keeps and where
they sit in Whisper's context, and the batcher that encodes many streams' blocks in one call."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from emovox.asr.frames import FRAME_SAMPLES, frames_of
from emovox.experiments.recogniser_streams import BlockStreamer, StepBatcher


def positional(audio: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """A stand-in encoder whose frame depends only on its own samples and its position:
    [B, frames, 2] = (sum of the frame's samples, its position in the context)."""
    frames = frames_of(audio.shape[1])
    audio = audio[:, : frames * FRAME_SAMPLES]
    padded = np.pad(audio, ((0, 0), (0, frames * FRAME_SAMPLES - audio.shape[1])))
    sums = padded.reshape(len(audio), frames, FRAME_SAMPLES).sum(-1)
    return np.stack([sums, offset[:, None] + np.arange(frames)[None]], -1).astype(np.float32)


def test_blocks_keep_each_frame_once_in_its_place():
    """Streamed in 100 ms chunks, the blocks' frames are the offline frames in order: each
    step's new frames after its context, at their position in the recording (a stand-in
    encoder whose frames depend on nothing else; the whole utterance under 30 s)."""
    wave = np.random.default_rng(0).standard_normal(16000 * 4 + 123).astype(np.float32)
    calls = []

    def encode(audio, offset):
        calls.append(audio.shape[1])
        return positional(audio, offset)

    streamer = BlockStreamer(StepBatcher(encode), lambda f: (f[:, 1], None), 16000, 50.0,
                             300.0, context_s=0.5)
    stream = streamer.start(10**9)
    steps = [s for i in range(0, len(wave), 1600) for s in stream.push(wave[i : i + 1600])]
    steps += stream.finish()
    want = positional(wave[None], np.zeros(1, dtype=np.int64))[0]
    got = np.concatenate(stream.blocks)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-3)
    assert [s.seconds for s in steps] == pytest.approx(
        [0.3 * (k + 1) for k in range(len(steps) - 1)] + [len(wave) / 16000])
    assert np.array_equal(steps[-1].proba, np.arange(len(want)))
    # every step reads its 300 ms and at most 0.5 s of context before it
    assert max(calls) == 4800 + 8000 and calls[0] == 4800


def test_batcher_encodes_many_streams_in_one_call_and_as_alone():
    """Eight streams pushing at once through ``run``: their blocks share encoder calls, and
    every stream gets the frames it gets alone."""
    rng = np.random.default_rng(1)
    waves = [rng.standard_normal(16000 * 2).astype(np.float32) for _ in range(8)]
    sizes = []

    def encode(audio, offset):
        sizes.append(len(audio))
        return positional(audio, offset)

    batcher = StepBatcher(encode, deadline_s=1.0)
    streamer = BlockStreamer(batcher, lambda f: (f[:, 0], None), 16000, 50.0, 300.0, 1.0)

    def one(wave):
        stream = streamer.start(10**9)
        return [s.proba for s in stream.push(wave) + stream.finish()]

    async def all_streams():
        return await asyncio.gather(*(batcher.run(one, w) for w in waves))

    together = asyncio.run(all_streams())
    assert batcher.blocks == sum(sizes) and batcher.calls == len(sizes) < batcher.blocks
    alone = [one(w) for w in waves]
    for a, b in zip(together, alone, strict=True):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            np.testing.assert_allclose(x, y, atol=1e-4)


def test_batcher_hands_an_encoder_error_to_each_waiting_stream():
    def broken(audio, offset):
        raise ValueError("encoder down")

    batcher = StepBatcher(broken)
    errors = []

    def call():
        try:
            batcher.encode_block(np.zeros(4800, np.float32), 0)
        except ValueError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == ["encoder down"] * 3


def test_block_streamer_refuses_steps_that_split_a_frame():
    from emovox.errors import EmovoxError

    with pytest.raises(EmovoxError, match="whole number of frames"):
        BlockStreamer(StepBatcher(positional), lambda f: (f, None), 16000, 50.0, 310.0)
    with pytest.raises(EmovoxError, match="context_s"):
        BlockStreamer(StepBatcher(positional), lambda f: (f, None), 16000, 50.0, 300.0, 0.0)
