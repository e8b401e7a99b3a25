"""The ground truth of a session: where each utterance's speech is, its label, and what else was
mixed in — a small JSON manifest (``sessions.json``) beside the session audio.

Times are seconds of session audio. An utterance's ``start``/``end`` are its **speech** onset
and offset (the source file's leading and trailing silence is not counted), so a pause is the
silence between two utterances' speech. Everything random that went into a session (order,
pauses, gains, events, the noise, the room) is stored here: a session is rebuilt from its record
alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from emovox.errors import ConfigError
from emovox.io import atomic_write_json

#: Version of the manifest's layout; a reader refuses others.
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Spoken:
    """One corpus utterance placed in a session."""

    utterance_id: str
    label: str
    #: The clean cut utterance (the corpus file) and its segment within that file, if any.
    source: str
    #: Speech onset and offset in the session (s).
    start: float
    end: float
    #: Where the source file begins in the session (s) and its speech within it.
    placed_at: float
    source_start: float | None = None
    source_end: float | None = None
    #: Level change applied to this utterance (dB; the ``levels`` condition).
    gain_db: float = 0.0

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class NonSpeech:
    """A non-speech event mixed into a pause (door, music, tone)."""

    kind: str
    start: float
    end: float
    #: Its level relative to the session's speech (dB of RMS).
    level_db: float
    #: Seed of its synthesis.
    seed: int


@dataclass(frozen=True)
class Session:
    """One session in one condition: its audio file (relative to the manifest) and timeline."""

    id: str
    speaker: str
    condition: str
    audio: str
    duration: float
    sample_rate: int
    utterances: tuple[Spoken, ...]
    events: tuple[NonSpeech, ...] = ()
    #: What the condition mixed in: noise kind, SNR, room index, channel seed (see build).
    mix: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Unique within a set: ``condition/id``."""
        return f"{self.condition}/{self.id}"

    @property
    def speech_seconds(self) -> float:
        return sum(u.duration for u in self.utterances)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Session:
        return cls(**{**data, "utterances": tuple(Spoken(**u) for u in data["utterances"]),
                      "events": tuple(NonSpeech(**e) for e in data.get("events", ()))})


@dataclass
class SessionSet:
    """Every session of a build: ``sessions.json`` in the set's directory."""

    labels: list[str]
    #: The build settings (``build.BuildSettings`` as a mapping) and the corpus they came from.
    settings: dict[str, Any]
    #: Ids of the test material mixed in (rooms, synthesised noises and events, the robot
    #: channel's): a model's training augmentation must share none of them.
    sources: list[str]
    sessions: list[Session]

    NAME = "sessions.json"

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / self.NAME
        atomic_write_json(path, {"format_version": FORMAT_VERSION, "labels": self.labels,
                                 "settings": self.settings, "sources": self.sources,
                                 "sessions": [s.to_dict() for s in self.sessions]})
        return path

    @classmethod
    def load(cls, directory: str | Path) -> SessionSet:
        import json

        path = Path(directory) / cls.NAME
        if not path.is_file():
            raise ConfigError(f"{path}: not found; build sessions first "
                              "(emovox sessions build)")
        try:
            data = json.loads(path.read_text())
            if data.get("format_version") != FORMAT_VERSION:
                raise ConfigError(f"{path}: format_version {data.get('format_version')!r}; "
                                  f"this emovox reads {FORMAT_VERSION}")
            return cls(data["labels"], data["settings"], data["sources"],
                       [Session.from_dict(s) for s in data["sessions"]])
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}: unreadable session manifest ({exc!r})") from None

    @property
    def conditions(self) -> list[str]:
        return list(dict.fromkeys(s.condition for s in self.sessions))
