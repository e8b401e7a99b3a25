"""Waveform augmentations in the audiomentations style: each a small class with ``min_*/max_*``
ranges and a probability ``p``, composed with :class:`Compose`, driven by an explicit RNG.

The DSP is delegated to field libraries: tempo to pedalboard's Rubber Band time stretch (pitch
preserved), rooms to pyroomacoustics, convolution to SciPy. (audiomentations itself pins
``soxr<1``, which conflicts with emovox's resampler pin, so its design is followed, not imported.)
All transforms work on mono float32 at 16 kHz.
"""

from __future__ import annotations

import inspect
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
    utterance are looped.
    """

    name = "noise"

    def __init__(self, directory: str = "../shared/data/noise", min_nsr: float = 0.5,
                 max_nsr: float = 0.9, min_snr_db: float | None = None,
                 max_snr_db: float | None = None, p: float = 1.0):
        super().__init__(p)
        if (min_snr_db is None) != (max_snr_db is None):
            raise ConfigError(f"{self.name}: give both min_snr_db and max_snr_db, or neither")
        if min_snr_db is not None:
            _check_range(self.name, min_snr_db, max_snr_db)
        else:
            _check_range(self.name, min_nsr, max_nsr)
        self.directory = str(Path(directory).expanduser())
        self.min_nsr, self.max_nsr = min_nsr, max_nsr
        self.min_snr_db, self.max_snr_db = min_snr_db, max_snr_db
        _noise_clips(self.directory)  # fail at construction, not in a training worker

    def noise_to_signal(self, rng: np.random.Generator) -> float:
        if self.min_snr_db is not None:
            return 10 ** (-rng.uniform(self.min_snr_db, self.max_snr_db) / 20)
        return rng.uniform(self.min_nsr, self.max_nsr)

    def apply(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        clips = _noise_clips(self.directory)
        _, clip = clips[rng.integers(len(clips))]
        reps = -(-len(wave) // len(clip))
        clip = np.tile(clip, reps + 1) if reps > 0 else clip
        start = rng.integers(0, len(clip) - len(wave) + 1)
        noise = clip[start : start + len(wave)]
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


def check_transforms(transforms: dict[str, dict[str, Any] | None]) -> None:
    """Names and parameter keys of an augmentation chain, checked without building it (a
    reverb bank is simulated on construction)."""
    for name, params in transforms.items():
        cls = TRANSFORMS.get(name)
        accepted = [k for k in inspect.signature(cls.__init__).parameters if k != "self"]
        unknown = sorted(set(params or {}) - set(accepted))
        if unknown:
            raise ConfigError(f"augment.transforms.{name}: unknown key(s) {unknown}; "
                              f"accepted: {accepted}")


def build_augmentation(transforms: dict[str, dict[str, Any] | None]) -> Compose:
    """``{tempo: {min_rate: 0.85, ...}, noise: {...}, reverb: null}`` → Compose; a null entry
    switches that transform off (how ablations drop one at a time)."""
    chain = []
    for name, params in transforms.items():
        if params is None:
            continue
        try:
            chain.append(TRANSFORMS.get(name)(**params))
        except TypeError as exc:
            raise ConfigError(f"bad parameter for augmentation {name!r}: {exc}") from None
    return Compose(chain)
