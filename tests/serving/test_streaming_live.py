"""Streaming as a live microphone delivers it (issue 9): decisions on speech only, bounded
utterances on long streams, threads, flag validation. Real Emo-DB audio and noise clips."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from conftest import ROOT, speech_like

from emovox.audio import load_audio
from emovox.errors import ConfigError
from emovox.serving.model_dir import Recognizer
from emovox.serving.streaming import GateConfig, SpeechGate, StreamingRecognizer

SR = 16000
EMOTIONS = ["anger", "boredom", "disgust", "fear", "happiness", "neutral", "sadness"]
TRAIN_SPEAKERS = ["03", "08", "09", "10", "11", "12", "13"]
TEST_SPEAKERS = ["14", "15", "16"]


def at_level(x: np.ndarray, dbfs: float) -> np.ndarray:
    return (x * (10 ** (dbfs / 20) / np.sqrt(np.mean(np.square(x, dtype=np.float64))))
            ).astype(np.float32)


def non_speech() -> dict[str, np.ndarray]:
    t = np.arange(4 * SR) / SR
    tone = (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    return {
        "silence": np.zeros(4 * SR, np.float32),
        "noise -60 dBFS": at_level(np.random.default_rng(0).standard_normal(4 * SR), -60),
        "1 kHz tone": tone,
        "tone after silence": np.concatenate([np.zeros(SR, np.float32), tone]),
    }


def stream(rec, wave: np.ndarray, chunk: int = 1600, **kwargs) -> list[dict]:
    s = StreamingRecognizer(rec, **kwargs)
    events = []
    for start in range(0, len(wave), chunk):
        events += s.push(wave[start : start + chunk])
    return [e.to_dict() for e in events + s.end()]


def decisions(events: list[dict]) -> list[dict]:
    return [e for e in events if e["type"] == "decision"]


# ---- the gate alone (no model) ---------------------------------------------------------------

def test_gate_rejects_silence_noise_and_tones_not_speech():
    def speech_frames(wave: np.ndarray) -> tuple[int, int]:
        """(speech frames, longest run of them)"""
        gate = SpeechGate(GateConfig(), SR)
        total = run = longest = 0
        for i in range(0, len(wave) - 479, 480):
            run = run + 1 if gate(wave[i : i + 480]) else 0
            total, longest = total + (run > 0), max(longest, run)
        return total, longest

    opens = int(GateConfig().start_ms // 30)  # consecutive speech frames that open an utterance
    for name, wave in non_speech().items():
        assert speech_frames(wave)[1] < opens, name  # (the click where a tone starts: 1 frame)
    wave = speech_like(2.0, seed=7)
    assert speech_frames(wave)[0] > 0.5 * len(wave) / 480


def test_gate_settings_are_range_checked():
    GateConfig().validate(300.0)
    for bad in ({"preroll_ms": 300.0}, {"pause_ms": 0.0}, {"max_utterance_s": -1.0},
                {"aggressiveness": 5}, {"min_speech_ms": -5.0}, {"energy_floor_db": 3.0}):
        key = next(iter(bad))
        with pytest.raises(ConfigError, match=key):
            GateConfig(**bad).validate(300.0)


# ---- a small 7-class EmoRL model trained with the shipped padding augmentation ---------------

@pytest.fixture(scope="module")
def model7_dir(tmp_path_factory, emodb):
    root = tmp_path_factory.mktemp("live")
    shipped = yaml.safe_load((ROOT / "configs" / "emodb_emorl.yaml").read_text())
    config = {
        "name": "live_test",
        "corpus": {"format": "emodb", "path": str(emodb), "labels": EMOTIONS,
                   "speakers": TRAIN_SPEAKERS},
        "features": {"name": "mfcc_prosody", "normalise": "global", "stack": 3,
                     "cache": str(root / "cache"), "workers": 1},
        "model": {"name": "gru_baseline", "params": {"hidden": 128}},
        "training": {"epochs": 30, "lr": 0.005, "patience": 6},
        "method": {"name": "emorl", "params": {"episodes": 2000, "freeze_episodes": 500,
                                               "eval_every": 500, "lr": 0.003}},
        "augment": {**shipped["augment"], "copies": 2},
    }
    (root / "c.yaml").write_text(yaml.safe_dump(config))
    out = root / "model"
    proc = subprocess.run([sys.executable, "-m", "emovox.cli", "-q", "train", str(root / "c.yaml"),
                           "--out", str(out)], capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def model7(model7_dir):
    return Recognizer(model7_dir)


@pytest.fixture(scope="module")
def test_utterances(emodb_manifest):
    """20 utterances of unseen speakers, every emotion at least twice."""
    pool = [u for u in emodb_manifest if u.speaker in TEST_SPEAKERS]
    rng = np.random.default_rng(0)
    chosen = []
    for k in range(20):
        label = EMOTIONS[k % len(EMOTIONS)]
        options = [u for u in pool if u.label == label and u not in chosen]
        chosen.append(options[rng.integers(len(options))])
    return chosen


@pytest.mark.e2e
@pytest.mark.parametrize("vad", [False, True])
def test_no_decision_on_silence_noise_or_tone(model7, vad):
    for name, wave in non_speech().items():
        events = stream(model7, wave, vad=vad)
        assert not decisions(events), name
        assert [e["type"] for e in events] == ["no_speech"], name


@pytest.mark.e2e
@pytest.mark.parametrize("vad", [False, True])
def test_leading_silence_or_noise_keeps_the_decision(model7, test_utterances, noise_dir, vad):
    assert {u.label for u in test_utterances} == set(EMOTIONS)
    noises = [load_audio(p) for p in sorted(noise_dir.glob("*.wav"))
              if "white" not in p.name and "pink" not in p.name]
    rng = np.random.default_rng(1)
    same = total = 0
    for utt in test_utterances:
        wave = load_audio(utt.path)
        clean = decisions(stream(model7, wave, vad=vad))
        assert len(clean) == 1, utt.id
        for kind in ("silence", "noise"):
            n = int(rng.uniform(0.5, 2.0) * SR)
            if kind == "silence":
                lead = np.zeros(n, np.float32)
            else:
                clip = noises[rng.integers(len(noises))]
                offset = rng.integers(len(clip) - n)
                lead = at_level(clip[offset : offset + n], rng.uniform(-55, -45))
            padded = decisions(stream(model7, np.concatenate([lead, wave]), vad=vad))
            total += 1
            same += len(padded) == 1 and padded[0]["label"] == clean[0]["label"]
    assert same >= 0.9 * total, f"{same}/{total} decisions unchanged"


def _long_stream(utterances, gaps: list[np.ndarray]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    parts, spans, position = [], [], 0
    for utt, gap in zip(utterances, gaps, strict=True):
        wave = load_audio(utt.path)
        parts += [gap, wave]
        spans.append((position + len(gap), position + len(gap) + len(wave)))
        position += len(gap) + len(wave)
    return np.concatenate(parts + [np.zeros(SR, np.float32)]), spans


@pytest.mark.e2e
@pytest.mark.parametrize("vad", [False, True])
def test_minutes_of_speech_with_pauses_one_decision_each_no_drift(model7, emodb_manifest,
                                                                  noise_dir, vad):
    utterances = [u for u in emodb_manifest if u.speaker in TEST_SPEAKERS][::2]
    rng = np.random.default_rng(2)
    noise = load_audio(noise_dir / "running_tap.wav")
    gaps = []
    for _ in utterances:  # 1.8-3 s pauses, half silent, half faint tap noise
        n = int(rng.uniform(1.8, 3.0) * SR) // 480 * 480
        gaps.append(np.zeros(n, np.float32) if rng.random() < 0.5 else
                    at_level(noise[:n], -50))
    wave, spans = _long_stream(utterances, gaps)
    assert len(wave) > 4 * 60 * SR  # several minutes
    events = stream(model7, wave, vad=vad)
    found = decisions(events)
    assert len(found) == len(utterances)
    alone = []
    for d, (start, end) in zip(found, spans, strict=True):
        emitted = d["emitted_at"] * SR
        assert start <= d["start"] * SR + 0.2 * SR and emitted <= end + 0.2 * SR + 2 * SR
    for utt, gap in zip(utterances, gaps, strict=True):
        own = decisions(stream(model7, np.concatenate([gap, load_audio(utt.path)]), vad=vad))
        alone.append(own[0]["label"])
    agree = np.mean([d["label"] == a for d, a in zip(found, alone, strict=True)])
    assert agree >= 0.9  # the same decision as each utterance streamed alone
    late = [d["label"] for d in found[len(found) // 2 :]]
    assert max(late.count(k) for k in set(late)) <= 0.5 * len(late)  # no collapse to one class
    ends = [e for e in events if e["type"] == "utterance_end"]
    assert max(e["duration"] for e in ends) < 4.0


@pytest.mark.e2e
def test_continuous_speech_is_cut_at_the_maximum_length(model7, emodb_manifest):
    wave = np.concatenate([load_audio(u.path) for u in list(emodb_manifest)[:40]])  # ~70 s
    events = stream(model7, wave, gate=GateConfig(max_utterance_s=5.0))
    ends = [e for e in events if e["type"] == "utterance_end"]
    assert max(e["duration"] for e in ends) <= 5.0 + 0.1 + 0.03
    assert sum(e["reason"] == "max_length" for e in ends) >= len(wave) / SR / 5.0 * 0.5
    # every utterance is decided exactly once, none on the no-speech side
    assert len(decisions(events)) + sum(e["type"] == "no_speech" for e in events) == len(ends)


@pytest.mark.e2e
def test_no_decision_is_timed_after_its_audio(model7, emodb):
    wave = load_audio(emodb / "wav" / "03a01Wa.wav")
    assert [e["type"] for e in stream(model7, wave[:160])] == ["no_speech"]  # 10 ms
    gate = GateConfig(min_speech_ms=0, start_ms=30, preroll_ms=0)
    for n in (480, 800, 1600, 4000):
        events = stream(model7, wave[2400 : 2400 + n], chunk=160, gate=gate)
        for d in decisions(events):
            end = next(e for e in events if e["type"] == "utterance_end")
            assert d["time"] <= end["duration"] + 1e-4 <= n / SR + 1e-4


@pytest.mark.e2e
def test_threads_and_typed_settings(model7):
    StreamingRecognizer(model7, threads=2)
    assert torch.get_num_threads() == 2
    StreamingRecognizer(model7)
    assert torch.get_num_threads() == 1
    for bad in ({"threshold": "high"}, {"threshold": 0.0}, {"threads": 0}, {"max_steps": -1},
                {"sample_rate": "16000"}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            StreamingRecognizer(model7, **bad)


@pytest.mark.e2e
def test_stream_cli_flags_and_silence(model7_dir, tmp_path):
    model = str(model7_dir)
    silent = tmp_path / "silence.wav"
    sf.write(silent, np.zeros(2 * SR, np.float32), SR)
    base = [sys.executable, "-m", "emovox.cli", "stream", str(silent), "--model", model]
    for flags in (["--chunk-ms", "0"], ["--chunk-ms", "-100"], ["--chunk-ms", "nan"],
                  ["--threads", "0"], ["--pause-ms", "5"], ["--max-utterance-s", "0"],
                  ["--threshold", "2"]):
        proc = subprocess.run(base + flags, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, flags
        assert len(proc.stderr.strip().splitlines()) == 1 and not proc.stdout, flags
    proc = subprocess.run(base, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(x)["type"] for x in proc.stdout.splitlines()] == ["no_speech"]
