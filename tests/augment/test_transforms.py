"""Augmentation transforms: ranges, probabilities, seeding, and training-only application."""

from __future__ import annotations

import numpy as np
import pytest

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
from emovox.augment.transforms import ChannelColour, SoftClip, rms
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


def test_noise_to_signal_ratio_is_the_rms_ratio(synthetic_noise):
    wave = tone()
    rng = np.random.default_rng(2)
    noise = BackgroundNoise(str(synthetic_noise), min_nsr=0.5, max_nsr=0.9)
    ratios = [rms(noise(wave, rng) - wave) / rms(wave) for _ in range(100)]
    assert min(ratios) >= 0.5 - 1e-4 and max(ratios) <= 0.9 + 1e-4
    assert max(ratios) - min(ratios) > 0.3  # drawn across the range, not a constant
    snr = BackgroundNoise(str(synthetic_noise), min_snr_db=10, max_snr_db=10)
    added = snr(wave, rng) - wave
    assert 20 * np.log10(rms(wave) / rms(added)) == pytest.approx(10.0, abs=1e-3)


def test_noise_rejects_bad_settings(tmp_path, synthetic_noise):
    with pytest.raises(ConfigError, match="no audio files"):
        BackgroundNoise(str(tmp_path))
    with pytest.raises(ConfigError, match="exceeds"):
        BackgroundNoise(str(synthetic_noise), min_nsr=0.9, max_nsr=0.5)
    with pytest.raises(ConfigError, match="both"):
        BackgroundNoise(str(synthetic_noise), min_snr_db=3)


def test_reverb_keeps_length_and_level_and_smears_energy():
    wave = np.zeros(SR, dtype=np.float32)
    wave[100] = 1.0  # an impulse: the output is the (aligned) room response itself
    reverb = RoomReverb(rooms=10, min_rt60=0.6, max_rt60=0.8)
    out = reverb(wave, np.random.default_rng(3))
    assert len(out) == len(wave) and rms(out) == pytest.approx(rms(wave), rel=1e-4)
    assert np.argmax(np.abs(out)) == 100  # direct path aligned: no propagation delay
    tail = np.sum(out[100 + SR // 20 :] ** 2) / np.sum(out**2)
    assert tail > 0.01  # energy after 50 ms: a reverberant room, not a dry copy


def test_probability_and_seeding(synthetic_noise):
    wave = tone()
    chain = build_augmentation({"tempo": {"p": 0.0}, "gain": {"p": 0.0}})
    assert chain(wave, np.random.default_rng(0)) is wave
    noise = {"directory": str(synthetic_noise)}
    chain = build_augmentation({"tempo": {}, "gain": {}, "noise": noise})
    a = chain(wave, np.random.default_rng([7, 1]))
    b = chain(wave, np.random.default_rng([7, 1]))
    c = chain(wave, np.random.default_rng([7, 2]))
    assert np.array_equal(a, b) and not (len(a) == len(c) and np.allclose(a, c))
    assert Compose([Gain(-6, -6)], p=0.0)(wave, np.random.default_rng(0)) is wave


def test_build_rejects_unknown_and_null_switches_off():
    with pytest.raises(ConfigError, match="unknown augmentation"):
        build_augmentation({"flanger": {}})
    with pytest.raises(ConfigError, match=r"transforms.gain: unknown key\(s\) \[.min_db.\]"):
        build_augmentation({"gain": {"min_db": 1}})
    assert [t.name for t in build_augmentation({"tempo": None, "gain": {}}).transforms] == ["gain"]


def test_variants_are_seeded_per_utterance_and_version(synthetic_noise):
    noise = {"directory": str(synthetic_noise)}
    config = AugmentConfig(transforms={"gain": {}, "noise": noise}, copies=3)
    versions = variants(config)
    assert len(versions) == 3 and len({v.key for v in versions}) == 3
    wave = tone()
    assert np.array_equal(versions[0](wave, "u1"), versions[0](wave, "u1"))
    assert not np.allclose(versions[0](wave, "u1"), versions[1](wave, "u1"))
    assert not np.allclose(versions[0](wave, "u1"), versions[0](wave, "u2"))
    assert variants(AugmentConfig(transforms={"gain": None}, copies=3)) == []


def band_energy(wave: np.ndarray, hz: float) -> float:
    spectrum = np.abs(np.fft.rfft(wave)) ** 2
    freqs = np.fft.rfftfreq(len(wave), 1 / SR)
    return float(spectrum[np.abs(freqs - hz) < 20].sum())


def test_noise_mixes_clips_at_the_drawn_level(synthetic_noise):
    wave = tone()
    mixed = BackgroundNoise(str(synthetic_noise), min_snr_db=5, max_snr_db=5, max_clips=3)
    single = BackgroundNoise(str(synthetic_noise), min_snr_db=5, max_snr_db=5)
    outs = [mixed(wave, np.random.default_rng(s)) for s in range(8)]
    for out in outs:
        assert 20 * np.log10(rms(wave) / rms(out - wave)) == pytest.approx(5.0, abs=1e-3)
    assert sum(not np.allclose(o, single(wave, np.random.default_rng(s)))
               for s, o in enumerate(outs)) > 0  # some backgrounds are mixtures
    with pytest.raises(ConfigError, match="max_clips"):
        BackgroundNoise(str(synthetic_noise), max_clips=0)


def test_colour_band_limits_and_keeps_length_dtype_level():
    wave = tone(100.0) + tone(2000.0)
    colour = ChannelColour(min_highpass_hz=500, max_highpass_hz=500, min_lowpass_hz=7000,
                           max_lowpass_hz=7000, min_order=4, max_order=4, bands=0)
    out = colour(wave, np.random.default_rng(0))
    assert out.dtype == np.float32 and len(out) == len(wave)
    assert rms(out) == pytest.approx(rms(wave), rel=1e-4)
    before = band_energy(wave, 100) / band_energy(wave, 2000)
    after = band_energy(out, 100) / band_energy(out, 2000)
    assert 10 * np.log10(before / after) > 30  # 100 Hz is 2.3 octaves below a 24 dB/oct cut


def test_colour_draws_from_its_ranges_and_is_seeded():
    wave = np.random.default_rng(0).standard_normal(SR).astype(np.float32)
    peak = ChannelColour(min_highpass_hz=20, max_highpass_hz=20, min_lowpass_hz=7400,
                         max_lowpass_hz=7400, bands=1, min_centre_hz=1000, max_centre_hz=1000,
                         min_gain_db=9, max_gain_db=9, min_q=2, max_q=2)
    out = peak(wave, np.random.default_rng(1))
    boost = (band_energy(out, 1000) / band_energy(out, 4000)) / (
        band_energy(wave, 1000) / band_energy(wave, 4000))
    assert 10 * np.log10(boost) == pytest.approx(9.0, abs=1.5)
    colour = ChannelColour()
    a, b = (colour(wave, np.random.default_rng([3, 1])) for _ in range(2))
    c = colour(wave, np.random.default_rng([3, 2]))
    assert np.array_equal(a, b) and not np.allclose(a, c)
    assert ChannelColour(p=0.0)(wave, np.random.default_rng(0)) is wave
    with pytest.raises(ConfigError, match="exceeds"):
        ChannelColour(min_lowpass_hz=6000, max_lowpass_hz=4000)
    with pytest.raises(ConfigError, match="frequencies"):
        ChannelColour(max_lowpass_hz=9000)


def test_clipping_squashes_peaks_only_as_far_as_drawn():
    wave = tone() * np.linspace(0.1, 1.0, SR, dtype=np.float32)  # a crescendo
    crest = float(np.max(np.abs(wave))) / rms(wave)
    hard = SoftClip(min_percentile=20, max_percentile=20)(wave, np.random.default_rng(0))
    assert hard.dtype == np.float32 and len(hard) == len(wave)
    assert rms(hard) == pytest.approx(rms(wave), rel=1e-4)
    assert float(np.max(np.abs(hard))) / rms(hard) < 0.9 * crest
    crests = [float(np.max(np.abs(o))) / rms(o) for o in
              (SoftClip(0, 20)(wave, np.random.default_rng(s)) for s in range(20))]
    assert max(crests) - min(crests) > 0.05  # the share is drawn, not fixed
    assert SoftClip(p=0.0)(wave, np.random.default_rng(0)) is wave
    with pytest.raises(ConfigError, match="percentiles"):
        SoftClip(max_percentile=100)
