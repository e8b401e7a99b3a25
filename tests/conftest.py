"""Shared fixtures: the real corpora in ../shared/data (tests using them are e2e and skip when
the data is absent) and synthesised audio for the unit tests.

The data root is ``$EMOVOX_DATA`` when set (``EMOVOX_DATA=/nonexistent pytest -m "not e2e"``
checks that the fast suite needs no corpus), else ``../shared/data`` beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EMOVOX_DATA") or ROOT.parent / "shared" / "data")
EMODB = DATA / "emodb"
NEMO = DATA / "nemo"
NOISE = DATA / "noise"
MELD = DATA / "meld_text"

#: Fixtures that read a real corpus: a test using any of them (directly or through another
#: fixture) is marked e2e by ``pytest_collection_modifyitems`` below.
REAL_DATA_FIXTURES = frozenset({"emodb", "nemo", "noise_dir", "meld"})


def _data(path: Path, what: str) -> Path:
    if not path.is_dir():
        pytest.skip(f"needs {what} at {path} (set EMOVOX_DATA to the folder holding it)")
    return path


@pytest.fixture(scope="session")
def emodb() -> Path:
    return _data(EMODB, "the Emo-DB corpus")


@pytest.fixture(scope="session")
def nemo() -> Path:
    return _data(NEMO, "the nEMO corpus")


@pytest.fixture(scope="session")
def noise_dir() -> Path:
    return _data(NOISE, "the noise clips")


@pytest.fixture(scope="session")
def meld() -> Path:
    return _data(MELD, "the MELD tables")


@pytest.fixture(scope="session")
def emodb_manifest(emodb):
    from emovox.corpora import load_corpus

    return load_corpus("emodb", emodb)


@pytest.fixture(scope="session")
def speaker_stream_model_dir(tmp_path_factory, emodb) -> Path:
    """A small streamable GRU trained with per-speaker normalisation (anger vs neutral, four
    real Emo-DB speakers; the others unseen), so it can be enrolled; trained once per test
    session with `emovox train`."""
    import yaml

    from emovox.cli import main

    root = tmp_path_factory.mktemp("speaker_stream_model")
    (root / "c.yaml").write_text(yaml.safe_dump({
        "name": "speaker_service_test",
        "corpus": {"format": "emodb", "path": str(emodb), "labels": ["anger", "neutral"],
                   "speakers": ["03", "08", "09", "16"]},
        "features": {"name": "mfcc_prosody", "normalise": "speaker", "stack": 3,
                     "cache": str(root / "cache"), "workers": 1},
        "model": {"name": "gru_baseline", "params": {"hidden": 32}},
        "training": {"epochs": 6, "lr": 0.005, "progress": False}}))
    assert main(["-q", "train", str(root / "c.yaml"), "--out", str(root / "model")]) == 0
    return root / "model"


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        if REAL_DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


# ---- synthesised audio -------------------------------------------------------------------------

def write_tone(path: Path, hz: float = 220.0, seconds: float = 1.0, rate: int = 16000,
               amplitude: float = 0.3, channels: int = 1) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    wave = amplitude * np.sin(2 * np.pi * hz * t)
    if channels > 1:
        wave = np.stack([wave] * channels, axis=1)
    sf.write(path, wave, rate)
    return path


def speech_like(seconds: float = 2.0, seed: int = 0, rate: int = 16000) -> np.ndarray:
    """Syllables of a buzz (a sawtooth at a gliding F0 of 100–220 Hz) through three formant
    resonators, 120–300 ms each with short pauses, in faint noise: voiced, formant-shaped and
    syllabic enough for pitch tracking, the speech gate and webrtcvad to treat it as speech."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    wave = 1e-3 * rng.standard_normal(n)
    start, end = int(rng.uniform(0.05, 0.15) * rate), n - int(0.1 * rate)  # pauses around
    while start < end - 0.05 * rate:
        length = min(int(rng.uniform(0.12, 0.3) * rate), end - start)
        t = np.arange(length) / rate
        f0 = rng.uniform(100, 220) * (1 + rng.uniform(-0.2, 0.2) * t / max(t[-1], 1e-3))
        syllable = signal.sawtooth(2 * np.pi * np.cumsum(f0) / rate)
        syllable += 0.05 * rng.standard_normal(length)
        for low, high, bandwidth in ((300, 800, 80), (900, 2200, 120), (2400, 3200, 160)):
            r = np.exp(-np.pi * bandwidth / rate)
            cos = np.cos(2 * np.pi * rng.uniform(low, high) / rate)
            syllable = signal.lfilter([1 - r], [1, -2 * r * cos, r * r], syllable)
        envelope = np.sqrt(np.hanning(length)) * rng.uniform(0.2, 0.5)
        wave[start : start + length] += syllable / (np.abs(syllable).max() + 1e-9) * envelope
        start += length + int(rng.uniform(0.03, 0.2) * rate)
    return wave.astype(np.float32)


def write_speech(path: Path, seconds: float = 2.0, seed: int = 0, rate: int = 16000) -> Path:
    sf.write(path, speech_like(seconds, seed, rate), rate)
    return path


@pytest.fixture(scope="session")
def synthetic_corpus(tmp_path_factory) -> Path:
    """A tiny corpus in the ``csv`` format: 4 speakers × 2 labels × 4 utterances of 0.6 s.
    "low" is a 220 Hz tone, "high" an 880 Hz tone, each in a little noise, so any working
    method separates them; fast enough for unit tests of the whole pipeline."""
    root = tmp_path_factory.mktemp("synthetic")
    rng = np.random.default_rng(0)
    rows = ["path,label,speaker"]
    for speaker in ("s1", "s2", "s3", "s4"):
        for label, hz in (("low", 220.0), ("high", 880.0)):
            for k in range(4):
                t = np.arange(int(0.6 * 16000)) / 16000
                wave = 0.3 * np.sin(2 * np.pi * (hz * (1 + 0.02 * k)) * t)
                wave += 0.01 * rng.standard_normal(len(t))
                name = f"{speaker}_{label}_{k}.wav"
                sf.write(root / name, wave.astype(np.float32), 16000)
                rows.append(f"{name},{label},{speaker}")
    (root / "corpus.csv").write_text("\n".join(rows) + "\n")
    return root / "corpus.csv"


@pytest.fixture(scope="session")
def synthetic_manifest(synthetic_corpus):
    from emovox.corpora import load_corpus

    return load_corpus("csv", synthetic_corpus)


@pytest.fixture(scope="session")
def synthetic_noise(tmp_path_factory) -> Path:
    """Three 3 s noise clips (white, brown, a hum with harmonics): a stand-in for the real
    noise directory wherever only "some noise recordings" matter."""
    root = tmp_path_factory.mktemp("noise")
    rng = np.random.default_rng(0)
    n, t = 3 * 16000, np.arange(3 * 16000) / 16000
    white = rng.standard_normal(n)
    brown = np.cumsum(rng.standard_normal(n))
    brown -= np.convolve(brown, np.ones(801) / 801, mode="same")  # no drift
    hum = sum(np.sin(2 * np.pi * 50 * k * t) / k for k in range(1, 8)) + 0.1 * white
    for name, wave in (("white", white), ("brown", brown), ("hum", hum)):
        sf.write(root / f"{name}.wav", (0.2 * wave / np.abs(wave).max()).astype(np.float32),
                 16000)
    return root


@pytest.fixture(scope="session")
def stream_model_dir(tmp_path_factory, emodb) -> Path:
    """A small streamable EmoRL model (anger vs neutral, four real Emo-DB speakers), trained
    once per test session with `emovox train`."""
    import subprocess
    import sys

    import yaml

    root = tmp_path_factory.mktemp("stream_model")
    config = {
        "name": "service_test",
        "corpus": {"format": "emodb", "path": str(emodb), "labels": ["anger", "neutral"],
                   "speakers": ["03", "08", "09", "16"]},
        "features": {"name": "mfcc_prosody", "normalise": "global", "stack": 3,
                     "cache": str(root / "cache"), "workers": 1},
        "model": {"name": "gru_baseline", "params": {"hidden": 32}},
        "training": {"epochs": 3, "lr": 0.005},
        "method": {"name": "emorl", "params": {
            "episodes": 600, "freeze_episodes": 200, "eval_every": 200, "latency_weight": -0.5,
            "lr": 0.003}},
    }
    (root / "c.yaml").write_text(yaml.safe_dump(config))
    out = root / "model"
    proc = subprocess.run([sys.executable, "-m", "emovox.cli", "-q", "train", str(root / "c.yaml"),
                           "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return out


def write_voiced(path: Path, seconds: float = 3.0, f0: float = 140.0, seed: int = 0,
                 rate: int = 16000, amplitude: float = 0.2) -> Path:
    """Synthetic speech-like audio that the streams' speech gate accepts (a pure tone it
    refuses): a gliding harmonic voice around ``f0``, opened and closed three times a second
    like syllables, in a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(f0 + 0.2 * f0 * np.sin(2 * np.pi * 0.7 * t)) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 20))
    syllables = 0.5 * (1 + np.sin(2 * np.pi * 3 * t))
    wave = amplitude * voice * syllables + 0.003 * rng.standard_normal(len(t))
    sf.write(path, wave.astype(np.float32), rate)
    return path


@pytest.fixture(scope="session")
def speaker_model_dir(synthetic_corpus, tmp_path_factory) -> Path:
    """A tiny GRU on log-mel frames trained with per-speaker normalisation on the synthetic
    speakers s1–s3 (s4 unseen), with its ONNX export in ``onnx/`` (so ``--runtime auto``
    and ``onnx`` run onnxruntime, ``torch`` PyTorch)."""
    import yaml

    from emovox.cli import main

    root = tmp_path_factory.mktemp("speaker_model")
    (root / "c.yaml").write_text(yaml.safe_dump({
        "name": "speaker", "corpus": {"format": "csv", "path": str(synthetic_corpus),
                                      "speakers": ["s1", "s2", "s3"]},
        "features": {"name": "log_mel", "params": {"n_mels": 16}, "normalise": "speaker",
                     "cache": None, "workers": 1},
        "model": {"name": "gru_baseline", "params": {"hidden": 8}},
        "training": {"epochs": 2, "lr": 0.01, "progress": False}}))
    out = root / "model"
    assert main(["-q", "train", str(root / "c.yaml"), "--out", str(out)]) == 0
    assert main(["-q", "export", str(out), "--out", str(out / "onnx")]) == 0
    return out


def assert_features_close(actual: np.ndarray, expected: np.ndarray) -> None:
    """Features of the same audio computed along different paths (chunked, streamed, batched,
    another runtime) agree: same shape, every value within 1e-5 of its column's largest
    magnitude (at least 1e-6). Bitwise equality would depend on the CPU's vector code: sums
    ordered differently round differently in float32."""
    assert actual.shape == expected.shape
    tolerance = 1e-5 * np.maximum(np.abs(expected).max(axis=0, initial=0.0), 0.1)
    excess = np.abs(actual.astype(np.float64) - expected) - tolerance
    assert (excess <= 0).all(), (
        f"{int((excess > 0).sum())} of {excess.size} values beyond 1e-5 of their column's "
        f"scale; worst difference {np.abs(actual.astype(np.float64) - expected).max():.3g}")
