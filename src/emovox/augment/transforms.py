"""Waveform augmentations in the audiomentations style: each a small class with ``min_*/max_*``
ranges and a probability ``p``, composed with :class:`Compose`, driven by an explicit RNG.

The DSP is delegated to field libraries: tempo to pedalboard's Rubber Band time stretch (pitch
preserved), rooms to pyroomacoustics, convolution to SciPy. (audiomentations itself pins
``soxr<1``, which conflicts with emovox's resampler pin, so its design is followed, not imported.)
All transforms work on mono float32 at 16 kHz.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from emovox.audio import SAMPLE_RATE, load_audio
from emovox.augment.rooms import (
    RoomRanges,
    audio_files,
    fingerprint,
    recorded_rooms,
    simulated_rooms,
)
from emovox.errors import ConfigError
from emovox.registry import Registry

#: Transform classes; a transform's parameters are its constructor's keyword parameters.
TRANSFORMS: Registry[type[Transform]] = Registry("augmentation", ("emovox.augment.padding",))


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


class Transform:
    """Applies :meth:`apply` with probability ``p``."""

    name = "transform"

    def __init__(self, p: float = 1.0):
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"{self.name}: p must be in [0, 1], got {p}")
        self.p = p

    def __call__(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() >= self.p:
            return wave
        return self.apply(wave, rng).astype(np.float32, copy=False)

    def apply(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def sources(self) -> set[str]:
        """Ids of the external material (noise clips, impulse responses) this transform mixes in."""
        return set()


def _check_range(name: str, low: float, high: float) -> None:
    if low > high:
        raise ConfigError(f"{name}: minimum {low} exceeds maximum {high}")


@TRANSFORMS.register
class TimeStretch(Transform):
    """Change the tempo by a factor uniform in [min_rate, max_rate] (> 1 is faster); pitch kept."""

    name = "tempo"

    def __init__(self, min_rate: float = 0.85, max_rate: float = 1.20, p: float = 1.0,
                 high_quality: bool = True):
        super().__init__(p)
        _check_range(self.name, min_rate, max_rate)
        if min_rate <= 0:
            raise ConfigError(f"{self.name}: rates must be positive")
        self.min_rate, self.max_rate, self.high_quality = min_rate, max_rate, high_quality

    def apply(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        import pedalboard

        rate = rng.uniform(self.min_rate, self.max_rate)
        return pedalboard.time_stretch(wave[None, :], SAMPLE_RATE, stretch_factor=rate,
                                       high_quality=self.high_quality)[0]


@TRANSFORMS.register
class Gain(Transform):
    """Multiply by a gain uniform in [min_gain_db, max_gain_db] decibels."""

    name = "gain"

    def __init__(self, min_gain_db: float = -6.0, max_gain_db: float = 3.0, p: float = 1.0):
        super().__init__(p)
        _check_range(self.name, min_gain_db, max_gain_db)
        self.min_gain_db, self.max_gain_db = min_gain_db, max_gain_db

    def apply(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return wave * np.float32(10 ** (rng.uniform(self.min_gain_db, self.max_gain_db) / 20))


@lru_cache(maxsize=4)
def _noise_clips(directory: str) -> tuple[tuple[str, np.ndarray], ...]:
    clips = []
    for path in audio_files(directory):
        clip = load_audio(path)
        clips.append((f"noise:{fingerprint(clip)}", clip))
    return tuple(clips)


@TRANSFORMS.register
class BackgroundNoise(Transform):
    """Add a random stretch of a random noise clip from ``directory``.

    The level is set by the **noise-to-signal ratio** NSR = RMS(noise) / RMS(speech), both RMS
    over the utterance's samples (an amplitude ratio: NSR 0.5 ≈ 6.0 dB SNR, 0.9 ≈ 0.9 dB), drawn
    uniformly in [min_nsr, max_nsr] (the robustness paper's [0.5, 0.9]); or, when ``min_snr_db``
    and ``max_snr_db`` are given, by an SNR drawn uniformly in decibels. Clips shorter than the
    utterance are looped. With ``max_clips`` > 1 the noise is a mixture of 1…max_clips stretches
    of random clips at random relative levels (0 to −10 dB), so a handful of recordings yields
    many more backgrounds.
    """

    name = "noise"

    def __init__(self, directory: str = "../shared/data/noise", min_nsr: float = 0.5,
                 max_nsr: float = 0.9, min_snr_db: float | None = None,
                 max_snr_db: float | None = None, max_clips: int = 1, p: float = 1.0):
        super().__init__(p)
        if max_clips < 1:
            raise ConfigError(f"{self.name}: max_clips must be at least 1, got {max_clips}")
        if (min_snr_db is None) != (max_snr_db is None):
            raise ConfigError(f"{self.name}: give both min_snr_db and max_snr_db, or neither")
        if min_snr_db is not None:
            _check_range(self.name, min_snr_db, max_snr_db)
        else:
            _check_range(self.name, min_nsr, max_nsr)
        self.directory = str(Path(directory).expanduser())
        self.min_nsr, self.max_nsr = min_nsr, max_nsr
        self.min_snr_db, self.max_snr_db = min_snr_db, max_snr_db
        self.max_clips = max_clips
        _noise_clips(self.directory)  # fail at construction, not in a training worker

    def noise_to_signal(self, rng: np.random.Generator) -> float:
        if self.min_snr_db is not None:
            return 10 ** (-rng.uniform(self.min_snr_db, self.max_snr_db) / 20)
        return rng.uniform(self.min_nsr, self.max_nsr)

    def stretch(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` samples from a random place of a random clip (looped if short)."""
        clips = _noise_clips(self.directory)
        _, clip = clips[rng.integers(len(clips))]
        reps = -(-n // len(clip))
        clip = np.tile(clip, reps + 1) if reps > 0 else clip
        start = rng.integers(0, len(clip) - n + 1)
        return clip[start : start + n]

    def apply(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        noise = self.stretch(len(wave), rng)
        if self.max_clips > 1:  # draws nothing more when max_clips is 1: old versions stay
            for _ in range(rng.integers(self.max_clips)):
                extra = self.stretch(len(wave), rng)
                level = rms(extra)
                if level > 0:
                    noise = noise + extra * np.float32(
                        rms(noise) / level * 10 ** (-rng.uniform(0, 10) / 20))
        level = rms(noise)
        if level == 0:
            return wave
        return wave + noise * np.float32(self.noise_to_signal(rng) * rms(wave) / level)

    def sources(self) -> set[str]:
        return {source for source, _ in _noise_clips(self.directory)}


@TRANSFORMS.register
class RoomReverb(Transform):
    """Convolve with a room impulse response: measured ones from ``directory``, or a bank of
    ``rooms`` shoebox rooms simulated with pyroomacoustics (random size, RT60 and
    source–microphone distance from the ranges). The output keeps the input's length and RMS.
    """

    name = "reverb"

    def __init__(self, directory: str | None = None, rooms: int = 200, seed: int = 0,
                 min_rt60: float = 0.2, max_rt60: float = 0.8, min_distance: float = 0.5,
                 max_distance: float = 3.0, p: float = 1.0, purpose: str = "augmentation"):
        super().__init__(p)
        _check_range(self.name, min_rt60, max_rt60)
        _check_range(self.name, min_distance, max_distance)
        self.directory = str(Path(directory).expanduser()) if directory else None
        self.rooms, self.seed = rooms, seed
        self.ranges = RoomRanges(min_rt60=min_rt60, max_rt60=max_rt60, min_distance=min_distance,
                                 max_distance=max_distance, purpose=purpose)

    def bank(self) -> tuple[np.ndarray, ...]:
        if self.directory:
            return recorded_rooms(self.directory)
        return simulated_rooms(self.rooms, self.seed, self.ranges)

    def apply(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        bank = self.bank()
        from scipy.signal import oaconvolve  # scipy.signal takes 0.6 s to import

        wet = oaconvolve(wave, bank[rng.integers(len(bank))])[: len(wave)]
        level = rms(wet)
        return wet * np.float32(rms(wave) / level) if level > 0 else wave

    def sources(self) -> set[str]:
        return {f"rir:{fingerprint(r)}" for r in self.bank()}


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


@TRANSFORMS.register
class ChannelColour(Transform):
    """An unknown microphone, loudspeaker or line: a random Butterworth high-pass and low-pass
    (cut-offs log-uniform in their ranges, order ``min_order…max_order``, i.e. 6–24 dB/octave)
    and ``bands`` peaking filters (centre log-uniform, gain and Q uniform) — the
    HighPassFilter / LowPassFilter / PeakingFilter family of audiomentations in one transform.
    The output keeps the input's length and RMS, so level stays the gain transform's business.
    """

    name = "colour"

    def __init__(self, min_highpass_hz: float = 20.0, max_highpass_hz: float = 400.0,
                 min_lowpass_hz: float = 3000.0, max_lowpass_hz: float = 7500.0,
                 min_order: int = 1, max_order: int = 4, bands: int = 2,
                 min_centre_hz: float = 150.0, max_centre_hz: float = 6000.0,
                 min_gain_db: float = -10.0, max_gain_db: float = 10.0, min_q: float = 0.5,
                 max_q: float = 4.0, p: float = 1.0):
        super().__init__(p)
        for low, high in ((min_highpass_hz, max_highpass_hz), (min_lowpass_hz, max_lowpass_hz),
                          (min_order, max_order), (min_centre_hz, max_centre_hz),
                          (min_gain_db, max_gain_db), (min_q, max_q)):
            _check_range(self.name, low, high)
        nyquist = SAMPLE_RATE / 2
        if not (min_highpass_hz > 0 and max_lowpass_hz < nyquist and max_centre_hz < nyquist):
            raise ConfigError(f"{self.name}: frequencies must lie in (0, {nyquist:g}) Hz")
        if min_order < 1 or bands < 0 or min_q <= 0 or min_centre_hz <= 0:
            raise ConfigError(f"{self.name}: orders ≥ 1, bands ≥ 0, Q and centres > 0")
        self.highpass = (min_highpass_hz, max_highpass_hz)
        self.lowpass = (min_lowpass_hz, max_lowpass_hz)
        self.order = (min_order, max_order)
        self.bands, self.centre = bands, (min_centre_hz, max_centre_hz)
        self.gain_db, self.q = (min_gain_db, max_gain_db), (min_q, max_q)

    def apply(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        import pedalboard
        from scipy.signal import butter, sosfilt

        out = wave.astype(np.float64)
        for kind, cutoff in (("highpass", self.highpass), ("lowpass", self.lowpass)):
            order = int(rng.integers(self.order[0], self.order[1] + 1))
            sos = butter(order, _log_uniform(rng, *cutoff), kind, fs=SAMPLE_RATE, output="sos")
            out = sosfilt(sos, out)
        peaks = [pedalboard.PeakFilter(cutoff_frequency_hz=_log_uniform(rng, *self.centre),
                                       gain_db=rng.uniform(*self.gain_db),
                                       q=rng.uniform(*self.q)) for _ in range(self.bands)]
        out = pedalboard.Pedalboard(peaks)(out.astype(np.float32), SAMPLE_RATE)
        level = rms(out)
        return out * np.float32(rms(wave) / level) if level > 0 else wave


@TRANSFORMS.register
class SoftClip(Transform):
    """Saturation of an overdriven microphone pre-amp or small loudspeaker: the loudest
    ``min_percentile…max_percentile`` % of samples are squashed by tanh above the threshold
    they define (audiomentations' ClippingDistortion with a soft knee). Length and RMS kept."""

    name = "clipping"

    def __init__(self, min_percentile: float = 0.0, max_percentile: float = 10.0,
                 p: float = 1.0):
        super().__init__(p)
        _check_range(self.name, min_percentile, max_percentile)
        if not (min_percentile >= 0 and max_percentile < 100):
            raise ConfigError(f"{self.name}: percentiles must lie in [0, 100)")
        self.min_percentile, self.max_percentile = min_percentile, max_percentile

    def apply(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        share = rng.uniform(self.min_percentile, self.max_percentile)
        threshold = float(np.percentile(np.abs(wave), 100 - share))
        if threshold <= 0:
            return wave
        out = threshold * np.tanh(wave / threshold)
        level = rms(out)
        return out * np.float32(rms(wave) / level) if level > 0 else wave


class Compose:
    """Apply transforms in order; the whole chain runs with probability ``p``."""

    def __init__(self, transforms: list[Transform], p: float = 1.0):
        self.transforms, self.p = list(transforms), p

    def __call__(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() >= self.p:
            return wave
        for transform in self.transforms:
            wave = transform(wave, rng)
        return wave

    def sources(self) -> set[str]:
        return set().union(*(t.sources() for t in self.transforms))


def build_augmentation(transforms: dict[str, dict[str, Any] | None]) -> Compose:
    """``{tempo: {min_rate: 0.85, ...}, noise: {...}, reverb: null}`` → Compose; a null entry
    switches that transform off (how ablations drop one at a time)."""
    return Compose([
        TRANSFORMS.get(name)(**vars(TRANSFORMS.params(name, params, f"augment.transforms.{name}")))
        for name, params in transforms.items() if params is not None])
