"""Block-causal Whisper layers (``whisper_layers`` ``block_ms``): a stream that encodes each
300 ms block once, after its cached keys and values, reads the offline extractor's frames; the
whole-utterance encoding keeps its cache key."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import yaml
from conftest import speech_like

from emovox.audio import load_audio
from emovox.cli import main
from emovox.errors import ConfigError
from emovox.experiments.recogniser_streams import CausalBlockStreamer, StepBatcher
from emovox.features import make_extractor
from emovox.serving.model_dir import Recognizer
from emovox.serving.streaming import GateConfig, StreamingRecognizer

#: Float32 frames of the same computation in other batch shapes (one block per call against
#: many blocks under a banded mask): agree to this, relative to the frames' scale.
RTOL = 1e-4
#: The same in bfloat16 (8-bit mantissas; measured up to 5e-3 on Emo-DB with Whisper base).
RTOL_BF16 = 2e-2


def blocks(context_ms: int = 400, bf16: bool = False, lookahead_ms: int = 0):
    return make_extractor("whisper_layers", model="tiny.en", layers=[1, 2], block_ms=300,
                          context_ms=context_ms, bf16=bf16, lookahead_ms=lookahead_ms)


def streamer(extractor, batcher: StepBatcher | None = None) -> CausalBlockStreamer:
    """Steps whose 'probabilities' are the frames heard so far."""
    batcher = batcher or StepBatcher(extractor.encode_block, cached=True)
    return CausalBlockStreamer(batcher, lambda f: (f, None), 16000, 50.0, 300.0,
                               extractor.block_causal.new_ring, extractor.params["lookahead_ms"])


def test_whole_utterance_encoding_keeps_its_cache_key():
    plain = make_extractor("whisper_layers", model="base", layers=3)
    assert plain.key() == "whisper_layers-68a609feb8ab"  # the key before block_ms existed
    causal = make_extractor("whisper_layers", model="base", layers=3, block_ms=300)
    assert causal.key() == "whisper_layers-564a598391f4"  # the key before lookahead_ms
    assert blocks().key() != make_extractor("whisper_layers", model="tiny.en",
                                            layers=[1, 2]).key()
    assert blocks().key() != blocks(600).key()


@pytest.mark.parametrize(("seconds", "lookahead_ms"), [
    (4.013, 0), (0.3, 0), (0.19, 0), (4.013, 100), (3.9, 300), (0.45, 100), (0.6, 300)])
def test_streamed_frames_are_the_offline_frames(seconds, lookahead_ms):
    """100 ms chunks (a 4 s utterance spans the 0.4 s context many times over; 0.3 s is one
    whole block, 0.19 s a partial one; with a lookahead, the last blocks lack some or all of
    it): every step's frames are the offline frames of the audio heard up to its last final
    block, to RTOL."""
    extractor = blocks(lookahead_ms=lookahead_ms)
    wave = speech_like(seconds, seed=3)
    stream = streamer(extractor).start(10**9)
    steps = [s for i in range(0, len(wave), 1600) for s in stream.push(wave[i : i + 1600])]
    steps += stream.finish()
    offline = extractor(wave)
    assert offline.shape == (-(-(len(wave) // 160) // 2), 2 * 384)
    scale = np.abs(offline).max()
    np.testing.assert_allclose(stream.offline_frames(), offline, atol=RTOL * scale)
    for step in steps[:-1]:  # the frames of the blocks whose lookahead was heard
        heard = int(round(step.seconds * 16000))
        assert len(step.proba) == (heard - 16 * lookahead_ms) // 4800 * 15
        np.testing.assert_allclose(step.proba, offline[: len(step.proba)], atol=RTOL * scale)
    np.testing.assert_allclose(steps[-1].proba, offline, atol=RTOL * scale)
    if not lookahead_ms:  # causal: a prefix's frames are the whole utterance's
        for step in steps:
            prefix = extractor(wave[: int(round(step.seconds * 16000))])
            np.testing.assert_allclose(prefix, offline[: len(prefix)], atol=RTOL * scale)


def test_bfloat16_streamed_frames_are_the_offline_frames():
    extractor = blocks(bf16=True)
    wave = speech_like(2.5, seed=4)
    stream = streamer(extractor).start(10**9)
    for i in range(0, len(wave), 1600):
        stream.push(wave[i : i + 1600])
    stream.finish()
    offline = extractor(wave)
    assert offline.dtype == np.float32 and stream.ring.dtype.is_floating_point
    np.testing.assert_allclose(stream.offline_frames(), offline,
                               atol=RTOL_BF16 * np.abs(offline).max())
    exact = blocks()(wave)  # and close to float32's
    np.testing.assert_allclose(offline, exact, atol=10 * RTOL_BF16 * np.abs(exact).max())
    assert blocks(bf16=True).key() != blocks().key()


def test_streams_batched_together_get_their_frames_alone():
    extractor = blocks()
    waves = [speech_like(1.0 + 0.37 * k, seed=k) for k in range(4)]
    batcher = StepBatcher(extractor.encode_block, deadline_s=1.0, cached=True)
    model = streamer(extractor, batcher)

    def one(wave):
        stream = model.start(10**9)
        stream.push(wave)
        stream.finish()
        return stream.offline_frames()

    async def all_streams():
        return await asyncio.gather(*(batcher.run(one, w) for w in waves))

    together = asyncio.run(all_streams())
    assert batcher.calls < batcher.blocks
    for got, wave in zip(together, waves, strict=True):
        want = extractor(wave)
        np.testing.assert_allclose(got, want, atol=RTOL * np.abs(want).max())


@pytest.mark.parametrize("lookahead_ms", [0, 200])
def test_block_causal_frames_see_no_later_audio(lookahead_ms):
    """Changing audio after a block and its lookahead leaves that block's frames unchanged;
    frames within a block see their whole block (and its lookahead)."""
    extractor = blocks(lookahead_ms=lookahead_ms)
    wave = speech_like(2.0, seed=1)
    later = wave.copy()
    later[16000:] = speech_like(1.0, seed=9)
    a, b = extractor(wave), extractor(later)
    whole = 45 if not lookahead_ms else 30  # blocks (and lookahead) ending before 1 s
    np.testing.assert_allclose(a[:whole], b[:whole], atol=1e-5)
    assert not np.allclose(a[whole:], b[whole:])


def test_block_parameters_are_checked():
    with pytest.raises(ConfigError, match="multiples of 20 ms"):
        make_extractor("whisper_layers", model="tiny.en", block_ms=310).block_causal  # noqa: B018
    with pytest.raises(ConfigError, match="bf16 and lookahead_ms are for block-causal"):
        make_extractor("whisper_layers", model="tiny.en", bf16=True)(speech_like(0.5, seed=0))
    with pytest.raises(ConfigError, match="start with their utterance"):
        blocks().extract_from(speech_like(1.0, seed=0), 50)


def test_a_block_causal_model_streams_its_offline_decision(emodb, tmp_path):
    """End to end: an MP head trained on block-causal tiny.en frames (per-speaker
    normalisation, so the stream adapts as it listens) streams each step's block once, and its
    forced decision on an utterance is ``Recognizer.proba`` of the utterance's audio (1e-4,
    same label); the running adaptation adds the streamed frames, which are the offline ones."""
    config = {
        "name": "mp_blocks", "corpus": {"format": "emodb", "path": str(emodb),
                                        "labels": ["anger", "neutral"], "speakers": ["03", "08"]},
        "features": {"name": "whisper_layers",
                     "params": {"model": "tiny.en", "layers": 2, "block_ms": 300,
                                "context_ms": 400},
                     "normalise": "speaker", "cache": str(tmp_path / "cache"), "workers": 1},
        "model": {"name": "mp", "params": {"dropout": 0.0}},
        "training": {"epochs": 5, "lr": 0.003, "progress": False}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["-q", "train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "m")]) == 0
    rec = Recognizer(tmp_path / "m")
    wave = np.concatenate([load_audio(emodb / "wav" / f"{n}.wav")
                           for n in ("16b10Wb", "16b03Wb")])
    stream = StreamingRecognizer(rec, gate=GateConfig(min_speech_ms=0))
    assert isinstance(stream.model, CausalBlockStreamer)
    events = [e for i in range(0, len(wave), 1600) for e in stream.push(wave[i : i + 1600])]
    utterance = stream.utterance
    events += stream.end()
    heard = np.concatenate(utterance.audio)  # all the utterance's audio, the tail included
    decision = next(e for e in events if e.type == "decision")
    offline = rec.proba(heard)
    np.testing.assert_allclose(list(decision.data["probabilities"].values()), offline,
                               atol=1e-4)
    assert decision.data["label"] == rec.labels[int(np.argmax(offline))]
    frames = rec.trained.extractor(heard)
    np.testing.assert_allclose(utterance.state.offline_frames(), frames,
                               atol=RTOL * np.abs(frames).max())
