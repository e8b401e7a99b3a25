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


def write_tone(path: Path, hz: float = 220.0, seconds: float = 1.0, rate: int = 16000,
               amplitude: float = 0.3, channels: int = 1) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    wave = amplitude * np.sin(2 * np.pi * hz * t)
    if channels > 1:
        wave = np.stack([wave] * channels, axis=1)
    sf.write(path, wave, rate)
    return path
