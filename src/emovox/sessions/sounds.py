"""Test material for sessions — background noises, non-speech events and rooms — all synthesised
here with documented parameters, so none of it can be a training noise: the six recordings in
``../shared/data/noise`` are the training augmentation's, and the rooms are simulated under a
purpose (seed namespace) of their own.

Noises (continuous, unit RMS): ``pink`` (1/f), ``brown`` (1/f², high-passed at 40 Hz),
``babble`` (six synthetic talkers: speech-band noise plus a jittered harmonic voice, each gated
by a syllable-rate envelope in phrases), ``tv`` (two such talkers over a chord bed, through a
small speaker's 200–5000 Hz band). Events (unit RMS over their length): ``door`` (a 50–100 Hz
thump and a low-passed noise burst, both decaying), ``music`` (two to four piano-like chords),
``tone`` (a 440–2000 Hz beep with 10 ms ramps).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.signal import butter, sosfilt

from emovox.audio import SAMPLE_RATE
from emovox.augment.rooms import RoomRanges, fingerprint, simulated_rooms
from emovox.augment.transforms import rms
from emovox.channels.robot import harmonic_tone, pink_noise

SR = SAMPLE_RATE

#: The rooms of the ``room_noise`` conditions: their own seed namespace and ranges (the
#: training augmentation's are RT60 0.2–0.8 s at 0.5–3 m under purpose "augmentation").
TEST_ROOMS = RoomRanges(min_size=(3.5, 3.0, 2.5), max_size=(9.0, 7.0, 3.5), min_rt60=0.3,
                        max_rt60=1.0, min_distance=1.0, max_distance=4.0,
                        purpose="sessions-test")


def test_rooms(n: int, seed: int) -> tuple[np.ndarray, ...]:
    return simulated_rooms(n, seed, TEST_ROOMS)


def _unit(x: np.ndarray) -> np.ndarray:
    level = rms(x)
    return (x / level if level > 0 else x).astype(np.float32)


def _band(x: np.ndarray, low: float, high: float, order: int = 2) -> np.ndarray:
    return sosfilt(butter(order, [low, high], btype="band", fs=SR, output="sos"), x)


# ---- background noises -------------------------------------------------------------------
def _brown(n: int, rng: np.random.Generator) -> np.ndarray:
    walk = np.cumsum(rng.standard_normal(n))
    return sosfilt(butter(2, 40, btype="high", fs=SR, output="sos"), walk)


def _syllables(n: int, rng: np.random.Generator) -> np.ndarray:
    """A talker's loudness over time: 120–250 ms syllables at about 4 per second, in phrases
    of 1–3 s separated by 0.2–0.8 s."""
    env = np.zeros(n)
    t = rng.uniform(0, 0.5) * SR
    while t < n:
        phrase_end = t + rng.uniform(1.0, 3.0) * SR
        while t < min(phrase_end, n):
            length = int(rng.uniform(0.12, 0.25) * SR)
            start = int(t)
            bump = np.hanning(length)[: n - start] * rng.uniform(0.5, 1.0)
            env[start : start + len(bump)] += bump
            t += rng.exponential(0.25) * SR + 0.5 * length
        t += rng.uniform(0.2, 0.8) * SR
    return env


def _talker(n: int, rng: np.random.Generator) -> np.ndarray:
    voice = harmonic_tone(n, rng.uniform(100, 250), 20, 0.8, 0.05, rng)
    breath = pink_noise(n, rng)
    source = _unit(voice) + 0.5 * _unit(breath)
    return _band(source, 150, 3500) * _syllables(n, rng)


def _babble(n: int, rng: np.random.Generator, talkers: int = 6) -> np.ndarray:
    return sum(_unit(_talker(n, rng)) * rng.uniform(0.5, 1.0) for _ in range(talkers))


def _tv(n: int, rng: np.random.Generator) -> np.ndarray:
    bed = np.zeros(n)
    t = 0
    while t < n:  # chords back to back
        chord = _music(rng, chords=1)
        bed[t : t + len(chord)] += chord[: n - t]
        t += len(chord)
    mix = _unit(_babble(n, rng, talkers=2)) + 0.5 * _unit(bed)
    return _band(mix, 200, 5000, order=4)


NOISES: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "pink": pink_noise, "brown": _brown, "babble": _babble, "tv": _tv}


def noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of the background noise ``kind``, unit RMS."""
    return _unit(NOISES[kind](n, rng))


# ---- events ------------------------------------------------------------------------------
def _door(rng: np.random.Generator) -> np.ndarray:
    n = int(rng.uniform(0.4, 0.8) * SR)
    t = np.arange(n) / SR
    thump = np.sin(2 * np.pi * rng.uniform(50, 100) * t) * np.exp(-t / rng.uniform(0.05, 0.12))
    burst = sosfilt(butter(2, rng.uniform(800, 3000), fs=SR, output="sos"),
                    rng.standard_normal(n)) * np.exp(-t / rng.uniform(0.03, 0.12))
    return _unit(thump) + _unit(burst) * rng.uniform(0.5, 1.5)


def _note(hz: float, n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / SR
    partials = sum(np.sin(2 * np.pi * k * hz * t + rng.uniform(0, 6.3)) / k
                   for k in range(1, 7) if k * hz < SR / 2)
    attack = np.minimum(t / 0.01, 1.0)
    return partials * attack * np.exp(-t / rng.uniform(0.3, 0.8))


def _music(rng: np.random.Generator, chords: int | None = None) -> np.ndarray:
    parts = []
    for _ in range(chords or int(rng.integers(2, 5))):
        n = int(rng.uniform(0.4, 0.8) * SR)
        root = 220 * 2 ** (rng.integers(-5, 8) / 12)
        third = 4 if rng.random() < 0.5 else 3  # major or minor
        steps = [0, third, 7] + ([12] if rng.random() < 0.5 else [])
        parts.append(sum(_note(root * 2 ** (s / 12), n, rng) for s in steps))
    return np.concatenate(parts)


def _tone(rng: np.random.Generator) -> np.ndarray:
    n = int(rng.uniform(0.3, 1.0) * SR)
    t = np.arange(n) / SR
    ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)
    return np.sin(2 * np.pi * rng.uniform(440, 2000) * t) * ramp


EVENTS: dict[str, Callable[[np.random.Generator], np.ndarray]] = {
    "door": _door, "music": _music, "tone": _tone}
#: Each event's level range relative to the session's speech RMS (dB): a slammed door as loud
#: as the voice, music and a beep below it.
EVENT_LEVELS_DB: dict[str, tuple[float, float]] = {
    "door": (-6.0, 0.0), "music": (-10.0, -3.0), "tone": (-12.0, -6.0)}


def event(kind: str, seed: int) -> np.ndarray:
    """The event ``kind`` drawn from ``seed``, unit RMS."""
    return _unit(EVENTS[kind](np.random.default_rng(seed)))


def sources(rooms: tuple[np.ndarray, ...]) -> set[str]:
    """Ids of the material a set mixes in (the same form as the augmentation's)."""
    return ({f"rir:{fingerprint(r)}" for r in rooms}
            | {f"synth:session-{k}" for k in (*NOISES, *EVENTS)})
