"""A simulated robot-microphone channel, for testing only.

Modelled on the robustness paper's re-recording (utterances played through a loudspeaker and
recorded by a robot's ears 1.6 m away, with fans running and lab noise), each step from material
of its own, kept disjoint from the training augmentation sources (:meth:`RobotChannel.sources`):

1. loudspeaker colouring — a small speaker's band limits and cabinet resonance (pedalboard
   filters) and mild driver saturation;
2. reverberation at 1–3 m — rooms simulated with pyroomacoustics under the purpose "robot", a
   seed namespace and RT60 range the augmentation banks never use;
3. robot ego-noise — synthesised fan hum (a fundamental with decaying harmonics and jitter),
   motor whine (amplitude-modulated harmonics) and broadband hiss (pink noise);
4. environmental events — synthesised knocks, clatters and beeps at random times.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass

import numpy as np
from scipy.signal import lfilter, oaconvolve

from emovox.audio import SAMPLE_RATE
from emovox.augment.rooms import RoomRanges, fingerprint, simulated_rooms
from emovox.augment.transforms import rms
from emovox.registry import Registry

SR = SAMPLE_RATE


@dataclass(frozen=True)
class RobotChannelConfig:
    seed: int = 0
    rooms: int = 50
    min_rt60: float = 0.3
    max_rt60: float = 0.9
    min_distance: float = 1.0
    max_distance: float = 3.0
    #: Speech-to-ego-noise ratio (dB), uniform per utterance.
    min_snr_db: float = 0.0
    max_snr_db: float = 10.0
    #: Expected number of environmental events per second, and their level relative to speech.
    events_per_second: float = 0.3
    min_event_snr_db: float = -3.0
    max_event_snr_db: float = 8.0


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """1/f noise by Paul Kellet's filter approximation (economy version)."""
    b = [0.049922035, -0.095993537, 0.050612699, -0.004408786]
    a = [1, -2.494956002, 2.017265875, -0.522189400]
    return lfilter(b, a, rng.standard_normal(n)).astype(np.float32)


def harmonic_tone(n: int, f0: float, harmonics: int, decay: float, jitter: float,
                  rng: np.random.Generator) -> np.ndarray:
    """A hum of ``harmonics`` partials whose frequency wanders by ±``jitter`` (relative)."""
    t = np.arange(n) / SR
    drift = 1 + jitter * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t + rng.uniform(0, 6.3))
    phase = 2 * np.pi * f0 * np.cumsum(drift) / SR
    out = np.zeros(n)
    for k in range(1, harmonics + 1):
        if k * f0 >= SR / 2:
            break
        out += decay ** (k - 1) * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    return out.astype(np.float32)


class RobotChannel:
    """A robot's microphone: loudspeaker colouring, a room at 1–3 m, ego-noise and events."""

    name = "robot"
    Params = RobotChannelConfig

    def __init__(self, config: RobotChannelConfig = RobotChannelConfig()):
        self.config = config
        self.ranges = RoomRanges(min_size=(4.0, 4.0, 2.6), max_size=(9.0, 7.0, 3.5),
                                 min_rt60=config.min_rt60, max_rt60=config.max_rt60,
                                 min_distance=config.min_distance,
                                 max_distance=config.max_distance, purpose="robot-channel")

    def rooms(self) -> tuple[np.ndarray, ...]:
        return simulated_rooms(self.config.rooms, self.config.seed, self.ranges)

    def settings(self) -> dict:
        return {"channel": self.name, **asdict(self.config)}

    def sources(self) -> set[str]:
        """Ids of the material mixed in: the channel's own rooms and synthetic noises."""
        return {f"rir:{fingerprint(r)}" for r in self.rooms()} | {
            "synth:fan", "synth:motor", "synth:hiss", "synth:knock", "synth:clatter", "synth:beep"}

    # ---- the four stages -----------------------------------------------------------------
    def loudspeaker(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        import pedalboard

        board = pedalboard.Pedalboard([
            pedalboard.HighpassFilter(cutoff_frequency_hz=rng.uniform(150, 300)),
            pedalboard.PeakFilter(cutoff_frequency_hz=rng.uniform(1500, 3500),
                                  gain_db=rng.uniform(3, 6), q=1.2),
            pedalboard.LowpassFilter(cutoff_frequency_hz=rng.uniform(5000, 7000)),
        ])
        out = board(wave[None, :].astype(np.float32), SR)[0]
        peak = np.max(np.abs(out)) or 1.0
        drive = rng.uniform(1.0, 2.5)  # soft clipping of an over-driven small speaker
        return np.tanh(drive * out / peak) * peak / np.tanh(drive)

    def room(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        rooms = self.rooms()
        wet = oaconvolve(wave, rooms[rng.integers(len(rooms))])[: len(wave)]
        return wet * (rms(wave) / max(rms(wet), 1e-12))

    def ego_noise(self, n: int, rng: np.random.Generator) -> np.ndarray:
        fan = harmonic_tone(n, rng.uniform(80, 140), 12, 0.7, 0.01, rng)
        motor = harmonic_tone(n, rng.uniform(300, 900), 5, 0.5, 0.03, rng)
        t = np.arange(n) / SR
        motor *= 0.5 * (1 + np.sin(2 * np.pi * rng.uniform(0.2, 2) * t)) * rng.uniform(0.2, 1)
        hiss = pink_noise(n, rng)
        parts = [fan / rms(fan), motor / max(rms(motor), 1e-12), hiss / rms(hiss)]
        weights = rng.dirichlet([2, 1, 2])
        return sum(w * p for w, p in zip(weights, parts, strict=True)).astype(np.float32)

    def events(self, n: int, rng: np.random.Generator) -> np.ndarray:
        out = np.zeros(n, dtype=np.float32)
        for _ in range(rng.poisson(self.config.events_per_second * n / SR)):
            kind = rng.choice(["knock", "clatter", "beep"])
            length = int(rng.uniform(0.08, 0.4) * SR)
            t = np.arange(length) / SR
            if kind == "knock":
                event = np.sin(2 * np.pi * rng.uniform(60, 200) * t) * np.exp(-t * 40)
            elif kind == "clatter":
                event = rng.standard_normal(length) * np.exp(-t * rng.uniform(10, 30))
            else:
                event = np.sin(2 * np.pi * rng.uniform(800, 2500) * t)
            start = rng.integers(0, max(n - length, 1))
            event = event[: n - start]
            out[start : start + len(event)] += event / max(rms(event), 1e-12)
        return out

    def __call__(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        c = self.config
        speech = self.room(self.loudspeaker(wave, rng), rng)
        level = rms(speech)
        noise = self.ego_noise(len(speech), rng)
        out = speech + noise * level * 10 ** (-rng.uniform(c.min_snr_db, c.max_snr_db) / 20)
        events = self.events(len(speech), rng)
        if np.any(events):
            gain = level * 10 ** (-rng.uniform(c.min_event_snr_db, c.max_event_snr_db) / 20)
            out = out + events * gain
        peak = np.max(np.abs(out))
        return (out * (0.9 / peak) if peak > 0.9 else out).astype(np.float32)

    def rng_for(self, utterance_id: str) -> np.random.Generator:
        return np.random.default_rng([self.config.seed, zlib.crc32(utterance_id.encode())])



CHANNELS: Registry[type[RobotChannel]] = Registry("channel")
CHANNELS.register(RobotChannel)


def make_channel(name: str, **params) -> RobotChannel:
    return CHANNELS.get(name)(CHANNELS.params(name, params, "channel_params"))
