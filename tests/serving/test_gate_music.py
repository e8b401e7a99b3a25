"""The speech gate keeps non-speech sounds from becoming decided utterances: a beep (the tone
check), chords (the steadiness check: held notes keep their spectrum, speech does not) and a
door (too short to decide); speech, real and synthetic, still gets its decision."""

from __future__ import annotations

import numpy as np
import pytest

from emovox.audio import load_audio
from emovox.errors import ConfigError
from emovox.serving.model_dir import Recognizer, default_model_dir
from emovox.serving.streaming import GateConfig, SpeechGate, StreamingRecognizer

SR = 16_000


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SR), dtype=np.float32)


def _at(wave: np.ndarray, rms: float = 0.05) -> np.ndarray:
    """``wave`` at an RMS level, between 1 s of silence before and after."""
    wave = wave * rms / np.sqrt(np.mean(np.square(wave)))
    return np.concatenate([_silence(1.0), wave, _silence(1.0)]).astype(np.float32)


def tone(hz: float = 1000.0, seconds: float = 1.0) -> np.ndarray:
    return np.sin(2 * np.pi * hz * np.arange(int(seconds * SR)) / SR)


def chords(roots=(220.0, 196.0, 262.0), seconds: float = 0.7) -> np.ndarray:
    """Piano-like major chords: six partials per note, a 10 ms attack, decaying."""
    t = np.arange(int(seconds * SR)) / SR
    parts = []
    for root in roots:
        notes = [root * 2 ** (step / 12) for step in (0, 4, 7)]
        chord = sum(np.sin(2 * np.pi * k * hz * t) / k for hz in notes for k in range(1, 7))
        parts.append(chord * np.minimum(t / 0.01, 1.0) * np.exp(-t / 0.5))
    return np.concatenate(parts)


def door(seconds: float = 0.6, seed: int = 0) -> np.ndarray:
    """A 70 Hz thump and a decaying noise burst."""
    t = np.arange(int(seconds * SR)) / SR
    burst = np.random.default_rng(seed).standard_normal(len(t)) * np.exp(-t / 0.06)
    return np.sin(2 * np.pi * 70 * t) * np.exp(-t / 0.08) + burst


def syllables(seconds: float = 2.5, seed: int = 0) -> np.ndarray:
    """Speech-like: a harmonic voice whose pitch moves within each syllable (four a second)
    and whose vowel (two formant peaks) changes from syllable to syllable."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    syllable = np.floor(t * 4).astype(int)
    within = t * 4 - syllable
    f0 = 150 * (1 + 0.15 * np.sin(2 * np.pi * within + rng.uniform(0, 6, syllable.max() + 1)
                                  [syllable]))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    vowels = rng.uniform([300, 900], [800, 2400], (syllable.max() + 1, 2))[syllable]
    voice = sum(np.sin(k * phase) * (np.exp(-((k * f0 - vowels[:, 0]) / 150) ** 2)
                                     + np.exp(-((k * f0 - vowels[:, 1]) / 250) ** 2) + 0.05)
                for k in range(1, 30))
    return voice * np.sin(np.pi * within) ** 2


@pytest.fixture(scope="module")
def recognizer():
    return Recognizer(default_model_dir())


def _decisions(recognizer, wave: np.ndarray, gate: GateConfig | None = None) -> list:
    stream = StreamingRecognizer(recognizer, gate=gate or GateConfig(pause_ms=300.0))
    events = []
    for start in range(0, len(wave), 1600):
        events += stream.push(wave[start : start + 1600])
    return [e for e in events + stream.end() if e.type == "decision"]


@pytest.mark.parametrize("sound", [tone, chords, door], ids=["tone", "chords", "door"])
def test_non_speech_gets_no_decision(recognizer, sound):
    assert _decisions(recognizer, _at(sound())) == []


def test_the_steadiness_check_is_what_holds_chords(recognizer):
    """Without it (max_steady_fraction 1) the same chords pass webrtcvad and get decided."""
    off = GateConfig(pause_ms=300.0, max_steady_fraction=1.0)
    assert len(_decisions(recognizer, _at(chords()), off)) == 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_speech_like_synthetic_is_decided(recognizer, seed):
    assert len(_decisions(recognizer, _at(syllables(seed=seed)))) == 1


def test_real_speech_is_decided_and_mostly_not_steady(recognizer, emodb):
    wave = load_audio(emodb / "wav" / "03a01Wa.wav")
    assert len(_decisions(recognizer, np.concatenate([_silence(0.5), wave, _silence(1.0)]))) == 1
    gate = SpeechGate(GateConfig(), SR)
    n = len(wave) // gate.frame
    speech, _ = gate.judge(wave[: n * gate.frame].reshape(n, gate.frame))
    assert gate.steady[speech].mean() < GateConfig().max_steady_fraction


def test_steadiness_is_the_same_however_the_frames_are_chunked():
    wave = _at(chords())
    whole = SpeechGate(GateConfig(), SR)
    n = len(wave) // whole.frame
    frames = wave[: n * whole.frame].reshape(n, whole.frame)
    whole.judge(frames)
    chunked = SpeechGate(GateConfig(), SR)
    parts = []
    for i in range(0, n, 7):
        chunked.judge(frames[i : i + 7])
        parts.append(chunked.steady)
    np.testing.assert_array_equal(np.concatenate(parts), whole.steady)


@pytest.mark.parametrize("key,value", [("max_steady_fraction", 1.5), ("steady_similarity", 0.0)])
def test_bad_steadiness_settings_name_their_key(key, value):
    with pytest.raises(ConfigError, match=key):
        GateConfig(**{key: value}).validate(step_ms=300.0)
