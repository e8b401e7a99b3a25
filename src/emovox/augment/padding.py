"""What a live stream puts around an utterance: leading/trailing silence and a room's noise floor.

A streamed utterance starts at the onset gate's pre-roll and ends after a short post-roll, both
over whatever the microphone hears between utterances; corpus files are cut tight around the
speech. Training with these transforms makes the GRU indifferent to that margin (issue 9).
Same conventions as :mod:`emovox.augment.transforms`: ``min_*/max_*`` ranges and ``p``.
"""

from __future__ import annotations

import numpy as np

from emovox.audio import SAMPLE_RATE
from emovox.augment.transforms import TRANSFORMS, Transform, _check_range, rms
from emovox.errors import ConfigError


@TRANSFORMS.register
class PadSilence(Transform):
    """Add digital silence: min_lead_s..max_lead_s before the utterance and
    min_trail_s..max_trail_s after it (uniform draws)."""

    name = "pad"

    def __init__(self, min_lead_s: float = 0.0, max_lead_s: float = 0.5,
                 min_trail_s: float = 0.0, max_trail_s: float = 0.5, p: float = 1.0):
        super().__init__(p)
        _check_range(self.name, min_lead_s, max_lead_s)
        _check_range(self.name, min_trail_s, max_trail_s)
        if min_lead_s < 0 or min_trail_s < 0:
            raise ConfigError(f"{self.name}: durations must be >= 0")
        self.lead = (min_lead_s, max_lead_s)
        self.trail = (min_trail_s, max_trail_s)

    def apply(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        lead = int(rng.uniform(*self.lead) * SAMPLE_RATE)
        trail = int(rng.uniform(*self.trail) * SAMPLE_RATE)
        return np.pad(wave, (lead, trail))


@TRANSFORMS.register
class NoiseFloor(Transform):
    """Add stationary coloured Gaussian noise over the whole signal at an absolute RMS level
    uniform in [min_level_db, max_level_db] dBFS; its spectrum falls by a slope uniform in
    [min_f_decay, max_f_decay] dB per octave (0 white, -3 pink, -6 brown), as
    audiomentations' AddColorNoise. Synthetic on purpose: recorded noise clips stay free for
    testing."""

    name = "noise_floor"

    def __init__(self, min_level_db: float = -70.0, max_level_db: float = -45.0,
                 min_f_decay: float = -6.0, max_f_decay: float = 0.0, p: float = 1.0):
        super().__init__(p)
        _check_range(self.name, min_level_db, max_level_db)
        _check_range(self.name, min_f_decay, max_f_decay)
        if max_level_db > 0:
            raise ConfigError(f"{self.name}: levels are dBFS and must be <= 0")
        self.level = (min_level_db, max_level_db)
        self.f_decay = (min_f_decay, max_f_decay)

    def apply(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if not len(wave):
            return wave
        spectrum = np.fft.rfft(rng.standard_normal(len(wave)))
        freqs = np.fft.rfftfreq(len(wave), 1 / SAMPLE_RATE)
        octaves = np.log2(np.maximum(freqs, 20.0) / 20.0)  # flat below 20 Hz
        spectrum *= 10 ** (rng.uniform(*self.f_decay) * octaves / 20)
        noise = np.fft.irfft(spectrum, len(wave))
        level = 10 ** (rng.uniform(*self.level) / 20)
        return wave + (noise * (level / max(rms(noise), 1e-12))).astype(np.float32)
