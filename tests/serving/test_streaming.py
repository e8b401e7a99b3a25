"""Streaming agrees with offline inference; the stream CLI (the service: test_http.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from emovox.audio import load_audio
from emovox.early.reinforce import greedy_decisions
from emovox.errors import EmovoxError
from emovox.features.incremental import StreamingFeatures
from emovox.serving.model_dir import Recognizer
from emovox.serving.streaming import GateConfig, StreamingRecognizer
from emovox.training import SequenceSet

pytestmark = pytest.mark.e2e  # trains models on real corpus speakers

FILES = ["03a01Wa", "08a02Na", "16b10Wb", "11b03Nb"]


@pytest.fixture(scope="module")
def emorl_dir(stream_model_dir):
    """The session's small EmoRL model (``stream_model_dir`` in tests/conftest.py; a negative
    latency weight keeps the agent listening, so decisions fall mid-utterance)."""
    return stream_model_dir


def _stream(stream, wave, chunk):
    events = []
    for start in range(0, len(wave), chunk):
        events += stream.push(wave[start : start + chunk])
    return events + stream.end()


@pytest.mark.parametrize("name", ["mfcc_prosody", "mfcc_pitch", "log_mel"])
def test_streaming_features_equal_offline(emodb, name):
    from emovox.features import make_extractor

    extractor = make_extractor(name)
    wave = load_audio(emodb / "wav" / "03a01Fa.wav")
    offline = extractor(wave)
    for chunk in (160, 999, 4800):
        stream = StreamingFeatures(extractor)
        online = np.concatenate([stream.push(wave[i : i + chunk])
                                 for i in range(0, len(wave), chunk)] + [stream.finish()])
        assert online.shape == offline.shape
        np.testing.assert_allclose(online, offline, atol=1e-4, rtol=1e-5)


def test_streaming_decisions_equal_offline(emorl_dir, emodb):
    """The stream's decision equals offline inference on the audio of its utterance (from the
    onset's pre-roll to the post-roll; the gate chose it)."""
    rec = Recognizer(emorl_dir)
    gate = GateConfig(min_speech_ms=0)  # the offline agent may stop on the first step
    for name in FILES:
        wave = load_audio(emodb / "wav" / f"{name}.wav")
        probe = StreamingRecognizer(rec)
        for chunk in (480, 1600, 7000):
            events = _stream(StreamingRecognizer(rec, gate=gate), wave, chunk)
            assert [e.type for e in events if e.type != "step"] == [
                "utterance_start", "decision", "utterance_end"], name
            span = events[-1].data
            first = round(span["start"] * 16000)
            heard = wave[first : first + round(span["duration"] * 16000)]
            assert first <= 0.2 * 16000 and len(heard) >= len(wave) - first - 0.2 * 16000
            offline = greedy_decisions(rec.trained.members[0], SequenceSet([rec.features(heard)],
                                                                 np.zeros(1, int)),
                                       probe.model.step, probe.model.frame_rate)
            d = [e for e in events if e.type == "decision"][0].to_dict()
            assert d["label"] == rec.labels[int(offline.proba[0].argmax())]
            assert d["time"] == pytest.approx(min(float(offline.seconds[0]), len(heard) / 16000),
                                              abs=1e-4)
            assert d["forced"] == bool(offline.forced[0])
            np.testing.assert_allclose(list(d["probabilities"].values()), offline.proba[0],
                                       atol=1e-4)
            steps = [e for e in events if e.type == "step"]
            assert [s.data["step"] for s in steps] == list(range(len(steps)))


def test_chunk_cost_does_not_grow(emorl_dir, emodb):
    """The work per chunk is bounded: the feature buffer never holds more than a window."""
    rec = Recognizer(emorl_dir)
    wave = np.concatenate([load_audio(emodb / "wav" / f"{n}.wav") for n in FILES * 3])
    stream = StreamingRecognizer(rec)
    sizes = []
    for start in range(0, len(wave), 1600):
        stream.push(wave[start : start + 1600])
        if stream.utterance is not None:
            sizes.append(len(stream.utterance.state.features.buffer))
    assert max(sizes) < 1600 + 40 * 160


def test_vad_splits_a_continuous_stream(emorl_dir, emodb):
    silence = np.zeros(16000, dtype=np.float32)
    parts = [silence]
    for name in FILES[:3]:
        parts += [load_audio(emodb / "wav" / f"{name}.wav"), silence]
    events = _stream(StreamingRecognizer(emorl_dir, vad=True), np.concatenate(parts), 1600)
    kinds = [e.type for e in events if e.type != "step"]
    assert kinds.count("utterance_start") == 3
    assert kinds.count("decision") == 3 and kinds.count("utterance_end") == 3


def test_pcm_bytes_and_bad_streams(emorl_dir, emodb):
    wave = load_audio(emodb / "wav" / "03a01Wa.wav")
    pcm = (np.clip(wave, -1, 1) * 32767).astype("<i2").tobytes()
    events = _stream(StreamingRecognizer(emorl_dir), pcm, 3200)
    assert sum(e.type == "decision" for e in events) == 1
    with pytest.raises(EmovoxError, match="odd number of bytes"):
        StreamingRecognizer(emorl_dir).push(b"\x00\x01\x02")
    with pytest.raises(EmovoxError, match="expects 16000 Hz"):
        StreamingRecognizer(emorl_dir, sample_rate=8000)


def test_stream_cli_file_and_stdin(emorl_dir, emodb):
    path = emodb / "wav" / "03a01Wa.wav"
    proc = subprocess.run([sys.executable, "-m", "emovox.cli", "stream", str(path), "--model",
                           str(emorl_dir)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [x["type"] for x in lines] == ["utterance_start", "decision", "utterance_end"]
    pcm = (load_audio(path) * 32767).astype("<i2").tobytes()
    proc = subprocess.run([sys.executable, "-m", "emovox.cli", "stream", "-", "--model",
                           str(emorl_dir)], input=pcm, capture_output=True, timeout=120)
    assert json.loads(proc.stdout.splitlines()[1])["label"] == lines[1]["label"]
    proc = subprocess.run([sys.executable, "-m", "emovox.cli", "stream", "-", "--rate", "8000",
                           "--model", str(emorl_dir)], input=b"", capture_output=True, timeout=60)
    assert proc.returncode == 2 and b"expects 16000 Hz" in proc.stderr
