"""Room impulse responses: simulated shoebox rooms (pyroomacoustics) or files from a directory.

A bank of RIRs is drawn once per (seed, ranges) and cached on disk, so augmentation samples from
hundreds of rooms at the cost of one FFT convolution per utterance.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from emovox.audio import SAMPLE_RATE, load_audio
from emovox.errors import ConfigError
from emovox.io import atomic_write, cache_dir

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class RoomRanges:
    """Uniform ranges from which each simulated room is drawn (metres, seconds)."""

    min_size: tuple[float, float, float] = (3.0, 3.0, 2.4)
    max_size: tuple[float, float, float] = (10.0, 8.0, 4.0)
    min_rt60: float = 0.2
    max_rt60: float = 0.8
    min_distance: float = 0.5
    max_distance: float = 3.0
    #: Namespace mixed into the seed: banks for different purposes never share a room.
    purpose: str = "augmentation"


def align_direct_path(rir: np.ndarray, max_seconds: float = 1.0) -> np.ndarray:
    """Drop the propagation delay (start at the direct-path peak), cut the tail, unit energy."""
    rir = rir[int(np.argmax(np.abs(rir))):][: int(max_seconds * SAMPLE_RATE)]
    return (rir / np.sqrt(np.sum(rir**2))).astype(np.float32)


def _simulate_one(rng: np.random.Generator, ranges: RoomRanges) -> np.ndarray:
    import pyroomacoustics as pra

    size = rng.uniform(ranges.min_size, ranges.max_size)
    rt60 = rng.uniform(ranges.min_rt60, ranges.max_rt60)
    absorption, max_order = pra.inverse_sabine(rt60, size)
    room = pra.ShoeBox(size, fs=SAMPLE_RATE, materials=pra.Material(absorption),
                       max_order=min(max_order, 30))
    margin = 0.3
    mic = rng.uniform([margin] * 3, size - margin)
    mic[2] = min(mic[2], 1.5)  # robot / handset height
    for _ in range(100):  # a source position at the requested distance inside the room
        distance = rng.uniform(ranges.min_distance, ranges.max_distance)
        direction = rng.normal(size=3)
        direction[2] *= 0.2
        source = mic + distance * direction / np.linalg.norm(direction)
        if np.all(source > margin) and np.all(source < size - margin):
            break
    else:
        source = np.clip(source, margin, size - margin)
    room.add_source(source)
    room.add_microphone(mic)
    room.compute_rir()
    return align_direct_path(np.asarray(room.rir[0][0]))


@lru_cache(maxsize=8)
def simulated_rooms(n: int, seed: int, ranges: RoomRanges = RoomRanges()) -> tuple[np.ndarray, ...]:
    """``n`` RIRs of random shoebox rooms; cached in memory and under ``cache_dir("rooms")``."""
    key = hashlib.sha256(json.dumps([n, seed, asdict(ranges)]).encode()).hexdigest()[:16]
    path = cache_dir("rooms") / f"{key}.npz"
    if path.exists():
        try:
            with np.load(path) as data:
                return tuple(data[f"rir{i}"] for i in range(n))
        except (OSError, ValueError, KeyError):
            log.warning("re-simulating unreadable room bank %s", path)
    purpose = int.from_bytes(hashlib.sha256(ranges.purpose.encode()).digest()[:4], "little")
    rng = np.random.default_rng([seed, purpose])
    rirs = tuple(_simulate_one(rng, ranges) for _ in range(n))
    buf = io.BytesIO()
    np.savez(buf, **{f"rir{i}": r for i, r in enumerate(rirs)})
    atomic_write(path, lambda fh: fh.write(buf.getvalue()))
    return rirs


AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


def audio_files(directory: str | Path) -> list[Path]:
    """Audio files under ``directory`` (recursively, sorted), or a ConfigError if none."""
    root = Path(directory).expanduser()
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise ConfigError(f"{root}: no audio files (.wav/.flac/.ogg) found")
    return files


@lru_cache(maxsize=8)
def recorded_rooms(directory: str) -> tuple[np.ndarray, ...]:
    """Measured RIRs from a directory of audio files."""
    # an impulse response may be shorter than the shortest speech that is labelled
    return tuple(align_direct_path(load_audio(p, min_seconds=0.0))
                 for p in audio_files(directory))


def fingerprint(signal: np.ndarray) -> str:
    """Content id of a signal, to prove two source sets share nothing."""
    return hashlib.sha1(np.ascontiguousarray(signal, dtype=np.float32).tobytes()).hexdigest()[:16]
