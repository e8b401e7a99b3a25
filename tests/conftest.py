"""Shared fixtures: the real Emo-DB corpus in ../shared/data and small audio files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
EMODB = ROOT.parent / "shared" / "data" / "emodb"
NOISE = ROOT.parent / "shared" / "data" / "noise"


@pytest.fixture(scope="session")
def emodb() -> Path:
    assert EMODB.is_dir(), f"tests need the Emo-DB corpus at {EMODB} (see README)"
    return EMODB


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


def write_tone(path: Path, hz: float = 220.0, seconds: float = 1.0, rate: int = 16000,
               amplitude: float = 0.3, channels: int = 1) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    wave = amplitude * np.sin(2 * np.pi * hz * t)
    if channels > 1:
        wave = np.stack([wave] * channels, axis=1)
    sf.write(path, wave, rate)
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
