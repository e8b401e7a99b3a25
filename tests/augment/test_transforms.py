"""Augmentation transforms: ranges, probabilities, seeding, and training-only application."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import NOISE

from emovox.augment import (
    AugmentConfig,
    BackgroundNoise,
    Compose,
    Gain,
    RoomReverb,
    TimeStretch,
    build_augmentation,
    variants,
)
from emovox.augment.transforms import rms
from emovox.errors import ConfigError

SR = 16000


def tone(hz: float = 220.0, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def peak_hz(wave: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / SR)[np.argmax(spectrum)])


def test_tempo_changes_duration_not_pitch():
    wave = tone(220.0, 2.0)
    for rate in (0.85, 1.2):
        out = TimeStretch(min_rate=rate, max_rate=rate)(wave, np.random.default_rng(0))
        assert len(out) == pytest.approx(len(wave) / rate, rel=0.02)
        assert peak_hz(out) == pytest.approx(220.0, abs=3.0)


def test_gain_stays_in_range():
    wave = tone()
    rng = np.random.default_rng(1)
    gains = [20 * np.log10(rms(Gain(-6, 3)(wave, rng)) / rms(wave)) for _ in range(200)]
    assert -6.0 <= min(gains) < -5.0 and 2.0 < max(gains) <= 3.0


def test_noise_to_signal_ratio_is_the_rms_ratio():
    wave = tone()
    rng = np.random.default_rng(2)
    noise = BackgroundNoise(str(NOISE), min_nsr=0.5, max_nsr=0.9)
    ratios = [rms(noise(wave, rng) - wave) / rms(wave) for _ in range(100)]
    assert min(ratios) >= 0.5 - 1e-4 and max(ratios) <= 0.9 + 1e-4
    assert max(ratios) - min(ratios) > 0.3  # drawn across the range, not a constant
    snr = BackgroundNoise(str(NOISE), min_snr_db=10, max_snr_db=10)
    added = snr(wave, rng) - wave
    assert 20 * np.log10(rms(wave) / rms(added)) == pytest.approx(10.0, abs=1e-3)


def test_noise_rejects_bad_settings(tmp_path):
    with pytest.raises(ConfigError, match="no audio files"):
        BackgroundNoise(str(tmp_path))
    with pytest.raises(ConfigError, match="exceeds"):
        BackgroundNoise(str(NOISE), min_nsr=0.9, max_nsr=0.5)
    with pytest.raises(ConfigError, match="both"):
        BackgroundNoise(str(NOISE), min_snr_db=3)


def test_reverb_keeps_length_and_level_and_smears_energy():
    wave = np.zeros(SR, dtype=np.float32)
    wave[100] = 1.0  # an impulse: the output is the (aligned) room response itself
    reverb = RoomReverb(rooms=10, min_rt60=0.6, max_rt60=0.8)
    out = reverb(wave, np.random.default_rng(3))
    assert len(out) == len(wave) and rms(out) == pytest.approx(rms(wave), rel=1e-4)
    assert np.argmax(np.abs(out)) == 100  # direct path aligned: no propagation delay
    tail = np.sum(out[100 + SR // 20 :] ** 2) / np.sum(out**2)
    assert tail > 0.01  # energy after 50 ms: a reverberant room, not a dry copy


def test_probability_and_seeding():
    wave = tone()
    chain = build_augmentation({"tempo": {"p": 0.0}, "gain": {"p": 0.0}})
    assert chain(wave, np.random.default_rng(0)) is wave
    chain = build_augmentation({"tempo": {}, "gain": {}, "noise": {"directory": str(NOISE)}})
    a = chain(wave, np.random.default_rng([7, 1]))
    b = chain(wave, np.random.default_rng([7, 1]))
    c = chain(wave, np.random.default_rng([7, 2]))
    assert np.array_equal(a, b) and not (len(a) == len(c) and np.allclose(a, c))
    assert Compose([Gain(-6, -6)], p=0.0)(wave, np.random.default_rng(0)) is wave


def test_build_rejects_unknown_and_null_switches_off():
    with pytest.raises(ConfigError, match="unknown augmentation"):
        build_augmentation({"flanger": {}})
    with pytest.raises(ConfigError, match="bad parameter"):
        build_augmentation({"gain": {"min_db": 1}})
    assert [t.name for t in build_augmentation({"tempo": None, "gain": {}}).transforms] == ["gain"]


def test_variants_are_seeded_per_utterance_and_version():
    config = AugmentConfig(transforms={"gain": {}, "noise": {"directory": str(NOISE)}}, copies=3)
    versions = variants(config)
    assert len(versions) == 3 and len({v.key for v in versions}) == 3
    wave = tone()
    assert np.array_equal(versions[0](wave, "u1"), versions[0](wave, "u1"))
    assert not np.allclose(versions[0](wave, "u1"), versions[1](wave, "u1"))
    assert not np.allclose(versions[0](wave, "u1"), versions[0](wave, "u2"))
    assert variants(AugmentConfig(transforms={"gain": None}, copies=3)) == []
