"""The live-stream augmentations: leading/trailing silence and a room's noise floor."""

from __future__ import annotations

import numpy as np
import pytest

from emovox.augment import NoiseFloor, PadSilence, build_augmentation
from emovox.augment.transforms import rms
from emovox.errors import ConfigError

SR = 16000


def test_pad_adds_silence_within_the_ranges():
    wave = np.ones(SR, np.float32)
    rng = np.random.default_rng(0)
    leads, trails = [], []
    for _ in range(200):
        out = PadSilence(0.5, 1.0, 0.0, 0.25)(wave, rng)
        nonzero = np.flatnonzero(out)
        leads.append(nonzero[0] / SR)
        trails.append((len(out) - nonzero[-1] - 1) / SR)
        assert len(nonzero) == SR  # the speech itself is untouched
    assert 0.5 <= min(leads) < 0.55 and 0.95 < max(leads) <= 1.0
    assert 0.0 <= min(trails) < 0.02 and 0.22 < max(trails) <= 0.25


def test_noise_floor_is_at_the_drawn_absolute_level_and_coloured():
    silence = np.zeros(4 * SR, np.float32)
    rng = np.random.default_rng(1)
    for level in (-70.0, -45.0):
        out = NoiseFloor(level, level)(silence, rng)
        assert 20 * np.log10(rms(out)) == pytest.approx(level, abs=0.01)
    brown = NoiseFloor(-50, -50, min_f_decay=-6, max_f_decay=-6)(silence, rng)
    spectrum = np.abs(np.fft.rfft(brown)) ** 2
    freqs = np.fft.rfftfreq(len(brown), 1 / SR)
    low = spectrum[(freqs > 200) & (freqs < 400)].mean()
    high = spectrum[(freqs > 3200) & (freqs < 6400)].mean()
    assert 10 * np.log10(low / high) > 20  # about 6 dB per octave over 4 octaves


def test_registered_checked_and_probability():
    chain = build_augmentation({"pad": {"min_lead_s": 1.0, "max_lead_s": 1.0, "max_trail_s": 0.0},
                                "noise_floor": {"p": 0.0}})
    wave = np.ones(SR, np.float32)
    out = chain(wave, np.random.default_rng(2))
    assert len(out) == 2 * SR and not out[:SR].any()  # p=0: no noise added
    for bad in ({"min_lead_s": 2.0, "max_lead_s": 1.0}, {"min_lead_s": -1.0}):
        with pytest.raises(ConfigError):
            PadSilence(**bad)
    with pytest.raises(ConfigError):
        NoiseFloor(-40.0, 3.0)
