"""Streaming beyond the GRU: a recogniser-layer model (Whisper tiny.en layer 2, MP head) that
re-encodes the heard audio every step, and an utterance-level multimodal model; through
`StreamingRecognizer`, `emovox stream`, the WebSocket service and `emovox models`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import yaml
from conftest import ROOT
from test_http import running, stream_file

from emovox.audio import load_audio
from emovox.cli import main
from emovox.experiments.recogniser_streams import WindowStreamer
from emovox.serving.catalog import describe
from emovox.serving.model_dir import Recognizer
from emovox.serving.streaming import GateConfig, StreamingRecognizer

FILE = "16b10Wb"  # a speaker the models below never saw


def speech(emodb, names=(FILE, "16b03Wb")) -> np.ndarray:
    """Two of the speaker's utterances back to back: one 4 s utterance for the gate."""
    return np.concatenate([load_audio(emodb / "wav" / f"{n}.wav") for n in names])


def _train(root, config: dict) -> Recognizer:
    (root / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["-q", "train", str(root / "c.yaml"), "--out", str(root / "m")]) == 0
    return Recognizer(root / "m")


@pytest.fixture(scope="module")
def mp_rec(emodb, tmp_path_factory) -> Recognizer:
    """An MP-2 head on Whisper tiny.en layer 2, trained on anger vs neutral of two speakers."""
    root = tmp_path_factory.mktemp("mp")
    return _train(root, {
        "name": "mp_stream", "corpus": {"format": "emodb", "path": str(emodb),
                                        "labels": ["anger", "neutral"], "speakers": ["03", "08"]},
        "features": {"name": "whisper_layers", "params": {"model": "tiny.en", "layers": 2},
                     "normalise": "global", "cache": str(root / "cache"), "workers": 1},
        "model": {"name": "mp", "params": {"dropout": 0.0}},
        "training": {"epochs": 5, "lr": 0.003, "progress": False}})


@pytest.fixture(scope="module")
def mm_rec(synthetic_corpus, tmp_path_factory) -> Recognizer:
    """A tiny audio + text cross-modal model on the synthetic corpus (transcripts in its CSV)."""
    root = tmp_path_factory.mktemp("mm")
    rows = synthetic_corpus.read_text().splitlines()
    lines = [rows[0] + ",transcript"] + [
        f"{synthetic_corpus.parent / r.split(',')[0]},{r.split(',', 1)[1]},"
        f"{'a deep hum' if ',low,' in r else 'a high whistle'}" for r in rows[1:]]
    (root / "corpus.csv").write_text("\n".join(lines) + "\n")
    return _train(root, {
        "name": "mm_stream", "corpus": {"format": "csv", "path": str(root / "corpus.csv")},
        "features": {"name": "log_mel", "params": {"n_mels": 16}, "normalise": "none",
                     "cache": None, "workers": 1},
        "method": {"name": "multimodal", "params": {
            "modality": "both", "strides": [1, 1, 1], "pools": [2, 2, 2], "width": 20,
            "heads": 2, "layers": 1, "normalise": "global", "max_seconds": 5.0}},
        "training": {"epochs": 2, "batch_size": 8, "lr": 0.003, "progress": False,
                     "threads": 1}})


def windowed(stream: StreamingRecognizer, window_s: float | None) -> StreamingRecognizer:
    """The stream re-encoding the last ``window_s`` seconds (None: all it heard) every step."""
    model = stream.model
    stream.model = WindowStreamer(model.features, model.classify, model.sample_rate,
                                  model.frame_rate, model.step_ms, window_s, model.max_steps)
    return stream


def _stream(stream: StreamingRecognizer, wave: np.ndarray, chunk: int = 1600) -> list:
    events = []
    for start in range(0, len(wave), chunk):
        events += stream.push(wave[start : start + chunk])
    return events + stream.end()


# ---- recogniser layers ---------------------------------------------------------------------
def test_recogniser_steps_equal_offline_on_the_heard_prefix(mp_rec, emodb):
    """Parity, re-encoding all that was heard: every step's probabilities are `Recognizer.proba`
    on the audio heard so far (the utterance from its onset), within 1e-4; the window the stream
    encoded is exactly the offline features of that prefix; the forced decision is the last
    step."""
    wave = speech(emodb)
    stream = windowed(StreamingRecognizer(mp_rec, gate=GateConfig(min_speech_ms=0)), None)
    assert stream.step_ms == 300
    events, checked = [], 0
    for start in range(0, len(wave), 4800):
        new = stream.push(wave[start : start + 4800])
        events += new
        steps = [e for e in new if e.type == "step"]
        if steps and checked < 4:  # the window of this push's last step
            utt = stream.utterance
            first = round(utt.start * 16000)
            prefix = wave[first : first + round(steps[-1].time * 16000)]
            np.testing.assert_allclose(utt.state.window, mp_rec.trained.extractor(prefix),
                                       atol=1e-5)
            checked += 1
    events += stream.end()
    assert checked == 4
    steps = [e for e in events if e.type == "step"]
    first = round(events[0].time * 16000)
    assert events[0].type == "utterance_start" and len(steps) >= 12
    for step in steps[::2] + steps[-1:]:
        offline = mp_rec.proba(wave[first : first + round(step.time * 16000)])
        np.testing.assert_allclose(list(step.data["probabilities"].values()), offline,
                                   atol=1e-4)
    assert [s.time for s in steps[:-1]] == pytest.approx(0.3 * np.arange(1, len(steps)))
    decision = next(e for e in events if e.type == "decision")
    assert decision.data["forced"] and decision.time == steps[-1].time
    assert decision.data["probabilities"] == steps[-1].data["probabilities"]


def test_recogniser_threshold_decides_early_and_window_is_exact_within_it(mp_rec, emodb):
    wave = speech(emodb)
    events = _stream(StreamingRecognizer(mp_rec, threshold=0.5, gate=GateConfig(
        min_speech_ms=0)), wave)
    decision = next(e for e in events if e.type == "decision")
    assert not decision.data["forced"] and decision.time == pytest.approx(0.3)

    # The default 3 s window: the same steps as re-encoding everything until the utterance
    # outgrows it, then the frames that slid out keep their states (close, no longer exact).
    exact = [e for e in _stream(windowed(StreamingRecognizer(mp_rec), None), wave)
             if e.type == "step"]
    default = StreamingRecognizer(mp_rec)
    assert default.model.window_s == 3.0
    capped = [e for e in _stream(default, wave) if e.type == "step"]
    assert len(capped) == len(exact)
    for a, b in zip(exact, capped, strict=True):
        gap = np.abs(np.subtract(list(a.data["probabilities"].values()),
                                 list(b.data["probabilities"].values()))).max()
        assert gap < 1e-4 if a.time <= 3.0 else gap < 0.5
    assert any(a.data["probabilities"] != b.data["probabilities"]
               for a, b in zip(exact, capped, strict=True) if a.time > 3.2)


def test_an_emorl_agent_on_recogniser_layers_decides_on_the_heard_prefix(emodb):
    """EmoRL's agent on Whisper layers: each step's probabilities and actions are the agent's on
    the running mean of its GRU over the offline features of the prefix heard."""
    import torch

    from emovox.early.reinforce import EmoRLConfig
    from emovox.experiments.methods.emorl import EmoRLMethod, EmoRLModels
    from emovox.features import Normaliser, make_extractor
    from emovox.models.emorl import EmoRL

    torch.manual_seed(0)
    extractor = make_extractor("whisper_layers", model="tiny.en", layers=2)
    wave = load_audio(emodb / "wav" / f"{FILE}.wav")
    normaliser = Normaliser("global").fit([extractor(wave)])
    agent = EmoRL(extractor.dim, 3, hidden=8).eval()
    method = EmoRLMethod(SimpleNamespace(method=SimpleNamespace(params=EmoRLConfig())))
    trained = EmoRLModels([agent], normaliser, None, extractor, 1)
    stream = method.streamer(trained).start(10**9)
    steps = stream.push(wave[:9000]) + stream.push(wave[9000:]) + stream.finish()
    assert [round(s.seconds, 4) for s in steps] == [0.3, 0.6, 0.9, 1.2, 1.5, 1.8, 2.0]
    for step in steps:
        feats = normaliser.apply([extractor(wave[: round(step.seconds * 16000)])])[0]
        with torch.no_grad():
            state = agent.gru(torch.from_numpy(feats)[None])[0][0].mean(0)
            np.testing.assert_allclose(step.proba, torch.softmax(agent.classifier(state), -1),
                                       atol=1e-5)
            np.testing.assert_allclose(step.actions, agent.policy(state), atol=1e-5)


def test_early_benchmark_feeds_a_file_as_the_deployed_stream_does(mp_rec, emodb, tmp_path):
    """benchmarks/early_steps.py with the gate (the early-decision benchmark of the default
    recipe): a file with silence around its speech starts where the stream's utterance starts
    (onset less the pre-roll), steps at the same fed seconds with the same probabilities, and
    counts the speech the stream counted (within a gate frame)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from early_steps import stream_means

    hush = 1e-4 * np.random.default_rng(0).standard_normal((2, 8000))  # -80 dBFS, kept on load
    wave = np.concatenate([hush[0], load_audio(emodb / "wav" / f"{FILE}.wav"), hush[1]]
                          ).astype(np.float32)
    sf.write(tmp_path / "padded.wav", wave, 16000, subtype="FLOAT")  # the same samples
    stream = StreamingRecognizer(mp_rec, adapt=False)
    events = _stream(stream, wave)
    gate = GateConfig()
    heard = stream_means(stream.model, str(tmp_path / "padded.wav"), gate)
    start, end = events[0], events[-1]
    assert start.type == "utterance_start" and end.type == "utterance_end"
    assert heard.start == pytest.approx(start.time, abs=1e-6) and heard.start > 0.4
    assert heard.onset - heard.start == pytest.approx(gate.preroll_ms / 1000)
    assert heard.end - heard.start == pytest.approx(end.data["duration"], abs=1e-4)
    steps = [e for e in events if e.type == "step"]
    assert heard.seconds == pytest.approx([e.time for e in steps], abs=1e-6)
    np.testing.assert_allclose(heard.means, [list(e.data["probabilities"].values())
                                             for e in steps], atol=1e-5)
    assert heard.speech[-1] == pytest.approx(end.data["speech"], abs=0.031)


def test_recogniser_model_is_listed_as_streaming_and_streams_from_the_cli(mp_rec, emodb):
    assert describe(mp_rec.model_dir)["streams"]
    proc = subprocess.run([sys.executable, "-m", "emovox.cli", "stream",
                           str(emodb / "wav" / f"{FILE}.wav"), "--model", str(mp_rec.model_dir),
                           "--threshold", "0.6", "--steps"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [x["type"] for x in lines if x["type"] != "step"] == [
        "utterance_start", "decision", "utterance_end"]
    assert sum(x["type"] == "step" for x in lines) >= 1


# ---- utterance level -----------------------------------------------------------------------
def test_multimodal_decides_once_per_utterance_from_its_audio(mm_rec, emodb):
    """No steps; one decision at the end of each gated utterance, equal to offline inference
    (transcribe, then classify) on that utterance's audio."""
    silence = np.zeros(16000, dtype=np.float32)
    waves = [load_audio(emodb / "wav" / f"{n}.wav") for n in (FILE, "03a01Wa")]
    audio = np.concatenate([silence, waves[0], silence, silence, waves[1]])
    stream = StreamingRecognizer(mm_rec)
    assert stream.step_ms is None
    events = _stream(stream, audio)
    assert not any(e.type == "step" for e in events)
    assert [e.type for e in events] == ["utterance_start", "decision", "utterance_end"] * 2
    for start, decision, end in zip(events[::3], events[1::3], events[2::3], strict=True):
        first = round(end.data["start"] * 16000)
        heard = audio[first : first + round(end.data["duration"] * 16000)]
        assert decision.time == pytest.approx(end.data["duration"], abs=1e-4)
        assert decision.data["emitted_at"] >= start.time + end.data["duration"] - 1e-3
        np.testing.assert_allclose(list(decision.data["probabilities"].values()),
                                   mm_rec.proba(heard), atol=1e-4)
        assert end.data["fraction_at_decision"] == 1.0


def test_multimodal_does_not_transcribe_a_burst_too_short_to_decide(mm_rec, emodb):
    wave = load_audio(emodb / "wav" / f"{FILE}.wav")
    onset = int(np.argmax(np.abs(wave) > 0.05))
    burst = np.concatenate([wave[onset : onset + 4800], np.zeros(16000, np.float32)])
    stream = StreamingRecognizer(mm_rec)
    stream.model.predict = None  # calling it would fail the test
    events = _stream(stream, burst)
    assert [e.type for e in events] == ["utterance_start", "no_speech", "utterance_end"]


def test_multimodal_streams_through_the_cli_and_the_service(mm_rec, emodb, tmp_path):
    assert describe(mm_rec.model_dir)["streams"]
    export = subprocess.run([sys.executable, "-m", "emovox.cli", "export",
                             str(mm_rec.model_dir), "--out", str(tmp_path / "onnx")],
                            capture_output=True, text=True, timeout=120)
    assert export.returncode == 2 and len(export.stderr.strip().splitlines()) == 1, export.stderr
    # the service receives 16-bit PCM: the CLI streams the same quantised samples, so the two
    # paths differ only in arithmetic (a tolerance), not in their input
    samples = (load_audio(emodb / "wav" / f"{FILE}.wav") * 32767).astype("<i2")
    path = tmp_path / f"{FILE}_pcm16.wav"
    sf.write(path, samples, 16_000, subtype="PCM_16")
    proc = subprocess.run([sys.executable, "-m", "emovox.cli", "stream", str(path), "--model",
                           str(mm_rec.model_dir), "--steps"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [x["type"] for x in lines] == ["utterance_start", "decision", "utterance_end"]
    pcm = samples.tobytes()
    with running(mm_rec.model_dir) as addr:
        async def body():
            return await asyncio.gather(*[stream_file(f"ws://{addr}/v1/stream", pcm)
                                          for _ in range(2)])

        for events in asyncio.run(body()):
            assert [e["type"] for e in events] == ["utterance_start", "decision",
                                                   "utterance_end"]
            assert events[1]["label"] == lines[1]["label"]
            assert events[1]["probabilities"] == pytest.approx(lines[1]["probabilities"],
                                                               abs=1e-4)
