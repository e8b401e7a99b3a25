"""Sessions from a corpus: for each test speaker, sessions of ``utterances`` of that speaker's
utterances in an order where the emotion changes from one to the next, separated by pauses
drawn uniformly from ``min_pause_s``–``max_pause_s`` (speech offset to next speech onset), each
rendered in every condition:

- ``clean`` — the corpus audio, digital silence in the pauses;
- ``robot`` — the whole session through the simulated robot channel
  (:mod:`emovox.channels.robot`: loudspeaker, room, ego-noise, knocks and beeps);
- ``room_noise_20db`` / ``_10db`` / ``_5db`` — the session in a simulated room
  (:data:`emovox.sessions.sounds.TEST_ROOMS`, one room per session) plus one synthesised
  background noise (pink, brown, babble or tv) over the whole session, at that SNR: speech RMS
  over the utterances' speech spans (before the room) to noise RMS;
- ``events`` — clean, with a door, music or a tone in every pause long enough to hold the event
  with ``event_margin_s`` of silence on both sides;
- ``levels`` — clean, each utterance at its own level, uniform in ``min_level_db``–
  ``max_level_db`` (a speaker moving about the room).

The layout (order, pauses) of a session is the same in every condition, so conditions compare
session by session. Everything is drawn from ``seed``, the session id and the condition, and
recorded in the manifest (:mod:`emovox.sessions.timeline`). Audio is 16-bit FLAC at 16 kHz,
written atomically; files already there are kept (an interrupted build resumes).
"""

from __future__ import annotations

import io
import json
import zlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf

from emovox.audio import SAMPLE_RATE, load_audio
from emovox.augment.transforms import rms
from emovox.channels.robot import RobotChannel, RobotChannelConfig
from emovox.corpora.manifest import Manifest, Utterance
from emovox.errors import ConfigError
from emovox.io import atomic_write, atomic_write_json
from emovox.schema import bounded
from emovox.sessions import sounds
from emovox.sessions.timeline import NonSpeech, Session, SessionSet, Spoken

SR = SAMPLE_RATE
ConditionName = Literal["clean", "robot", "room_noise_20db", "room_noise_10db",
                        "room_noise_5db", "events", "levels"]
CONDITIONS: tuple[str, ...] = ConditionName.__args__  # type: ignore[attr-defined]
#: SNR (dB) of each room_noise condition.
ROOM_NOISE_SNR = {"room_noise_20db": 20.0, "room_noise_10db": 10.0, "room_noise_5db": 5.0}
#: Frames quieter than the loudest frame by more than this are silence (speech spans).
SPAN_RANGE_DB = 40.0
#: The ``robot`` condition's channel, with its own rooms (``RobotChannelConfig`` defaults).
ROBOT = RobotChannel(RobotChannelConfig())


@dataclass(frozen=True)
class BuildSettings:
    """How sessions are cut from a corpus and rendered."""

    utterances: int = bounded(12, ge=2, le=1000)
    min_pause_s: float = bounded(0.2, ge=0.0, le=60.0)
    max_pause_s: float = bounded(3.0, ge=0.0, le=60.0)
    #: Silence before the first utterance's speech and after the last one's.
    lead_in_s: float = bounded(1.0, ge=0.0, le=60.0)
    tail_s: float = bounded(2.0, ge=0.0, le=60.0)
    conditions: tuple[ConditionName, ...] = CONDITIONS
    seed: int = 0
    #: At most this many sessions per speaker (None: as many as the speaker's utterances make).
    max_sessions_per_speaker: int | None = bounded(None, ge=1)
    #: Simulated rooms of the room_noise conditions.
    rooms: int = bounded(20, ge=1, le=1000)
    min_level_db: float = bounded(-18.0, ge=-60.0, le=20.0)
    max_level_db: float = bounded(6.0, ge=-60.0, le=20.0)
    event_margin_s: float = bounded(0.3, ge=0.0, le=10.0)

    def __post_init__(self) -> None:
        for low, high in (("min_pause_s", "max_pause_s"), ("min_level_db", "max_level_db")):
            if getattr(self, low) > getattr(self, high):
                raise ConfigError(f"sessions: {low}={getattr(self, low)} exceeds "
                                  f"{high}={getattr(self, high)}")
        if not self.conditions:
            raise ConfigError("sessions: conditions is empty")


def speech_span(wave: np.ndarray) -> tuple[float, float]:
    """Speech onset and offset (s) of a cut utterance: the first and last 10 ms frame within
    :data:`SPAN_RANGE_DB` of its loudest frame."""
    hop = SR // 100
    n = max(1, len(wave) // hop)
    frames = np.resize(wave, n * hop).reshape(n, hop) if len(wave) >= hop else wave[None]
    db = 10 * np.log10(np.mean(np.square(frames, dtype=np.float64), axis=1) + 1e-12)
    loud = np.flatnonzero(db >= db.max() - SPAN_RANGE_DB)
    return loud[0] * hop / SR, min(len(wave), (loud[-1] + 1) * hop) / SR


def alternate(utterances: list[Utterance], rng: np.random.Generator) -> list[Utterance]:
    """The utterances in a random order where no two neighbours share a label, as far as the
    label counts allow: each next label is drawn with weight its remaining count among those
    differing from the last, and forced when it must be (over half of what is left)."""
    pools: dict[str, list[Utterance]] = {}
    for u in rng.permutation(len(utterances)):
        pools.setdefault(utterances[u].label, []).append(utterances[u])
    order: list[Utterance] = []
    last = None
    while any(pools.values()):
        left = sum(len(p) for p in pools.values())
        counts = {k: len(p) for k, p in pools.items() if p}
        forced = [k for k, c in counts.items() if c > left / 2 and k != last]
        options = forced or [k for k in counts if k != last] or list(counts)
        weights = np.array([counts[k] for k in options], dtype=float)
        last = options[rng.choice(len(options), p=weights / weights.sum())]
        order.append(pools[last].pop())
    return order


def _rng(seed: int, *names: str) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(n.encode()) for n in names)])


def _layout(session_id: str, utts: list[Utterance], spans: dict[str, tuple[float, float]],
            lengths: dict[str, float], s: BuildSettings) -> tuple[list[Spoken], float]:
    """Speech spans on the session timeline: a lead-in, drawn pauses, a tail."""
    rng = _rng(s.seed, session_id, "layout")
    placed, onset = [], s.lead_in_s
    for i, u in enumerate(utts):
        if i:
            onset = placed[-1].end + rng.uniform(s.min_pause_s, s.max_pause_s)
        first, last = spans[u.id]
        placed.append(Spoken(u.id, u.label, u.path, start=round(onset, 4),
                             end=round(onset + last - first, 4),
                             placed_at=round(onset - first, 4), source_start=u.start,
                             source_end=u.end))
    duration = max(max(p.placed_at + lengths[p.utterance_id] for p in placed),
                   placed[-1].end + s.tail_s)
    return placed, round(duration, 4)


def _events(session_id: str, placed: list[Spoken], s: BuildSettings) -> tuple[NonSpeech, ...]:
    """One event in every pause that holds it with ``event_margin_s`` free on both sides."""
    rng = _rng(s.seed, session_id, "events")
    events = []
    for before, after in zip(placed, placed[1:], strict=False):
        kind = str(rng.choice(list(sounds.EVENTS)))
        seed = int(rng.integers(2**31))
        level = rng.uniform(*sounds.EVENT_LEVELS_DB[kind])
        length = len(sounds.event(kind, seed)) / SR
        room = after.start - before.end - 2 * s.event_margin_s
        if length <= room:
            start = before.end + s.event_margin_s + rng.uniform(0, room - length)
            events.append(NonSpeech(kind, round(start, 4), round(start + length, 4),
                                    round(level, 2), seed))
    return tuple(events)


def _condition(base: Session, condition: str, s: BuildSettings) -> Session:
    """``base`` (the clean session) as it is rendered in ``condition``."""
    rng = _rng(s.seed, base.id, condition)
    session = replace(base, condition=condition, audio=f"audio/{condition}/{base.id}.flac")
    if condition == "robot":
        return replace(session, mix={"channel": "robot", "seed": int(rng.integers(2**31))})
    if condition in ROOM_NOISE_SNR:
        return replace(session, mix={"room": int(rng.integers(s.rooms)),
                                     "noise": str(rng.choice(list(sounds.NOISES))),
                                     "noise_seed": int(rng.integers(2**31)),
                                     "snr_db": ROOM_NOISE_SNR[condition]})
    if condition == "events":
        return replace(session, events=_events(base.id, list(base.utterances), s))
    if condition == "levels":
        return replace(session, utterances=tuple(
            replace(u, gain_db=round(rng.uniform(s.min_level_db, s.max_level_db), 2))
            for u in base.utterances))
    return session


def plan_sessions(manifest: Manifest, s: BuildSettings, progress: bool = False
                  ) -> list[Session]:
    """Every session in every condition, without rendering audio (reads each utterance once
    for its speech span)."""
    from tqdm import tqdm

    spans, lengths = {}, {}
    for u in tqdm(manifest, desc="speech spans", unit="utt", disable=not progress, leave=False):
        wave = load_audio(u.path, SR, u.start, u.end)
        spans[u.id], lengths[u.id] = speech_span(wave), len(wave) / SR
    sessions = []
    for speaker in manifest.speakers:
        order = alternate(list(manifest.with_speakers([speaker])), _rng(s.seed, speaker))
        count = len(order) // s.utterances
        if s.max_sessions_per_speaker is not None:
            count = min(count, s.max_sessions_per_speaker)
        for k in range(count):
            session_id = f"{speaker}_s{k:03d}"
            utts = order[k * s.utterances : (k + 1) * s.utterances]
            placed, duration = _layout(session_id, utts, spans, lengths, s)
            base = Session(session_id, speaker, "clean", "", duration, SR, tuple(placed))
            sessions += [_condition(base, c, s) for c in s.conditions]
    if not sessions:
        raise ConfigError(f"no speaker has {s.utterances} utterances for a session; "
                          "lower --utterances")
    return sessions


def held_out_corpus(model_dir: str | Path, speakers: list[str] | None = None,
                    validation: bool = False) -> tuple[Manifest, dict]:
    """The corpus a model directory was trained on, kept to the speakers it neither trained
    nor validated on (or to ``speakers`` among them), and its description for the manifest.
    ``validation``: its validation speakers instead — sessions for choosing stream settings
    (``split: validation`` in the manifest), never for reporting."""
    from emovox.corpora import load_corpus
    from emovox.serving.model_dir import read_meta

    meta = read_meta(Path(model_dir))
    corpus = meta["config"]["corpus"]
    manifest = load_corpus(corpus["format"], corpus["path"], labels=corpus.get("labels"),
                           on_error="skip", **corpus.get("options") or {})
    valid = set(meta.get("valid_speakers", ()))
    seen = set(corpus.get("speakers") or manifest.speakers) | valid
    held = [s for s in manifest.speakers if (s in valid if validation else s not in seen)]
    kind = "validation" if validation else "held out"
    if speakers:
        wrong = sorted(set(speakers) - set(held))
        if wrong:
            raise ConfigError(f"{model_dir}: speaker(s) {wrong} are not {kind} speakers of "
                              f"its training ({kind}: {held})")
        held = list(speakers)
    if not held:
        raise ConfigError(f"{model_dir}: it has no {kind} speakers in its corpus "
                          f"({corpus['path']}); build sessions from another corpus "
                          "(--format/--path)")
    split = {"split": "validation"} if validation else {}
    return manifest.with_speakers(held), {**corpus, "speakers": held, **split}


def _speech_track(session: Session, waves: dict[str, np.ndarray]) -> np.ndarray:
    track = np.zeros(int(round(session.duration * SR)), dtype=np.float32)
    for u in session.utterances:
        wave = waves[u.utterance_id] * np.float32(10 ** (u.gain_db / 20))
        at = int(round(u.placed_at * SR))
        track[at : at + len(wave)] += wave[: len(track) - at]
    return track


def speech_rms(session: Session, track: np.ndarray) -> float:
    """RMS of ``track`` over the session's speech spans."""
    spans = [track[int(u.start * SR) : int(u.end * SR)] for u in session.utterances]
    return rms(np.concatenate(spans))


def render(session: Session, waves: dict[str, np.ndarray], rooms: tuple[np.ndarray, ...]
           ) -> np.ndarray:
    """The session's audio from its record and its utterances' clean waves (by id)."""
    from scipy.signal import oaconvolve

    track = _speech_track(session, waves)
    level = speech_rms(session, track)
    mix = session.mix
    if session.condition == "robot":
        track = ROBOT(track, np.random.default_rng(mix["seed"]))
    elif "snr_db" in mix:
        wet = oaconvolve(track, rooms[mix["room"]])[: len(track)]
        track = wet * np.float32(rms(track) / max(rms(wet), 1e-12))
        background = sounds.noise(mix["noise"], len(track), np.random.default_rng(
            mix["noise_seed"]))
        track = track + background * np.float32(level * 10 ** (-mix["snr_db"] / 20))
    for e in session.events:
        sound = sounds.event(e.kind, e.seed) * np.float32(level * 10 ** (e.level_db / 20))
        at = int(round(e.start * SR))
        track[at : at + len(sound)] += sound[: len(track) - at]
    peak = float(np.max(np.abs(track)))
    return (track * (0.99 / peak) if peak > 0.99 else track).astype(np.float32)


def write_flac(path: Path, wave: np.ndarray) -> None:
    buf = io.BytesIO()
    sf.write(buf, wave, SR, format="FLAC", subtype="PCM_16")
    atomic_write(path, lambda fh: fh.write(buf.getvalue()))


def build_sessions(manifest: Manifest, out: str | Path, settings: BuildSettings,
                   corpus: dict, progress: bool = True) -> SessionSet:
    """Plan and render every session into ``out`` (``sessions.json``, ``audio/<condition>/``).
    ``corpus`` describes where ``manifest`` came from (recorded in the manifest). A rerun with
    the same settings renders only what is missing; other settings are refused."""
    from tqdm import tqdm

    out = Path(out)
    recorded = {"build": asdict(settings), "corpus": corpus}
    stamp = out / "build.json"
    if stamp.exists() and json.loads(stamp.read_text()) != json.loads(json.dumps(recorded)):
        raise ConfigError(f"{out}: holds sessions built with other settings; choose another "
                          "--out or delete it")
    atomic_write_json(stamp, recorded)
    sessions = plan_sessions(manifest, settings, progress)
    rooms = sounds.test_rooms(settings.rooms, settings.seed)
    by_id = {u.id: u for u in manifest}
    layouts: dict[str, list[Session]] = {}
    for session in sessions:
        layouts.setdefault(session.id, []).append(session)
    for group in tqdm(layouts.values(), desc="rendering sessions", unit="session",
                      disable=not progress):
        missing = [s for s in group if not (out / s.audio).exists()]
        if not missing:
            continue
        waves = {u.utterance_id: load_audio(by_id[u.utterance_id].path, SR, u.source_start,
                                            u.source_end) for u in group[0].utterances}
        for session in missing:
            write_flac(out / session.audio, render(session, waves, rooms))
    used = sounds.sources(rooms) | (ROBOT.sources() if "robot" in settings.conditions
                                    else set())
    result = SessionSet(sorted({u.label for u in manifest}), recorded, sorted(used), sessions)
    result.save(out)
    return result
