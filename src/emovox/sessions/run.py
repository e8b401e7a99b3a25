"""Feeding sessions through the streaming path and scoring them.

Each session's audio is read from disk in ``chunk_ms`` blocks and pushed into a fresh stream
from ``streams`` — by default :class:`emovox.serving.streaming.StreamingRecognizer`, the code
``emovox stream`` and the WebSocket service run. Any factory of objects with ``sample_rate``,
``push(samples) -> [Event]`` and ``end() -> [Event]`` plugs in (a stream that adapts to its
speaker as the session goes on, say): the scorer only reads the events.

Results go to ``OUT/results/<condition>/<session>.json`` (the events and the session's score),
one file per session, written atomically; a rerun skips the sessions already scored, and
refuses an ``OUT`` scored with another stream or another set (``run.json``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import soundfile as sf

from emovox.audio import audio_info, load_audio
from emovox.errors import ConfigError
from emovox.io import atomic_write_json
from emovox.schema import bounded
from emovox.serving.model_dir import Recognizer
from emovox.serving.streaming import Event, GateConfig, StreamingRecognizer
from emovox.sessions.score import SessionScore, decided_utterances, score_session, summarise
from emovox.sessions.timeline import Session, SessionSet


class SessionStream(Protocol):
    sample_rate: int

    def push(self, chunk: np.ndarray) -> list[Event]: ...

    def end(self) -> list[Event]: ...


#: Makes a fresh stream for each session.
StreamFactory = Callable[[], SessionStream]


@dataclass(frozen=True)
class StreamSettings:
    """The ``StreamingRecognizer`` settings a run uses (``emovox stream``'s flags)."""

    vad: bool = False
    threshold: float | None = bounded(None, gt=0.0, le=1.0)
    pause_ms: float | None = None
    #: ``GateConfig`` fields (None: the gate's default).
    max_steady_fraction: float | None = bounded(None, ge=0.0, le=1.0)
    aggressiveness: int | None = bounded(None, ge=0, le=3)
    margin_db: float | None = bounded(None, ge=0.0, le=60.0)
    chunk_ms: float = bounded(100.0, gt=0.0, le=60_000.0)

    def gate(self) -> GateConfig:
        fields = {"max_steady_fraction": self.max_steady_fraction,
                  "aggressiveness": self.aggressiveness, "margin_db": self.margin_db}
        return GateConfig(pause_ms=self.pause_ms,
                          **{k: v for k, v in fields.items() if v is not None})


#: The stream setting chosen on the bundled model's validation speaker (nEMO MK0) by
#: benchmarks/sessions.py's rule (docs/sessions.md): ``emovox sessions score``'s default.
CHOSEN = StreamSettings(pause_ms=450.0, max_steady_fraction=0.4, aggressiveness=2,
                        margin_db=10.0)


def recognizer_streams(recognizer: Recognizer, settings: StreamSettings) -> StreamFactory:
    """Streams of ``recognizer`` as ``emovox stream`` runs them (one torch thread)."""

    def make() -> StreamingRecognizer:
        return StreamingRecognizer(recognizer, vad=settings.vad, threshold=settings.threshold,
                                   gate=settings.gate(), threads=1)

    make()  # refuse bad settings before the first session
    return make


def stream_file(path: Path, stream: SessionStream, chunk_ms: float) -> list[dict]:
    """Every event of ``stream`` over the audio file, read from disk block by block."""
    info = audio_info(path)
    if info.samplerate != stream.sample_rate or info.channels != 1:
        raise ConfigError(f"{path}: {info.samplerate} Hz, {info.channels} channel(s); the "
                          f"stream expects mono {stream.sample_rate} Hz")
    block = max(1, int(info.samplerate * chunk_ms / 1000))
    events: list[Event] = []
    for chunk in sf.blocks(str(path), blocksize=block, dtype="float32"):
        events += stream.push(chunk)
    return [e.to_dict() for e in events + stream.end()]


def check_model(recognizer: Recognizer, sessions: SessionSet) -> None:
    """Refuse sessions a model is not independent of: a session speaker among its training or
    validation speakers (a model trained on all of the same corpus: every speaker), test
    material among its training augmentation's sources, or a label it does not know."""
    from emovox.augment import build_augmentation

    config = recognizer.config
    unknown = sorted({u.label for s in sessions.sessions for u in s.utterances}
                     - set(recognizer.labels))
    if unknown:
        raise ConfigError(f"sessions hold labels {unknown} the model does not know "
                          f"({recognizer.labels})")
    speakers = {s.speaker for s in sessions.sessions}
    corpus = sessions.settings.get("corpus", {})
    if config.corpus.speakers is None:
        same = (corpus.get("format"), corpus.get("path")) == (config.corpus.format,
                                                               config.corpus.path)
        seen = speakers if same else set()
    else:
        seen = speakers & {*config.corpus.speakers, *recognizer.meta.get("valid_speakers", ())}
        if corpus.get("split") == "validation":  # for choosing stream settings (build
            # --validation): the model's validation speakers, never its training speakers
            seen -= set(recognizer.meta.get("valid_speakers", ()))
    if seen:
        raise ConfigError(f"session speaker(s) {sorted(seen)} were in the model's training "
                          "or validation; build sessions from its held-out speakers")
    if config.augment.enabled:
        shared = build_augmentation(config.augment.transforms).sources() & set(sessions.sources)
        if shared:
            raise ConfigError(f"sessions share {len(shared)} noise/room source(s) with the "
                              f"model's training augmentation, e.g. {min(shared)}")


def offline_labels(directory: Path, sessions: SessionSet, labels: Sequence[str],
                   proba: Callable[[np.ndarray], np.ndarray], sample_rate: int
                   ) -> dict[str, str]:
    """The model's label for every clean cut utterance of the set (whole utterance, offline),
    cached in ``directory/offline.json``."""
    path = directory / "offline.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    sources = {u.utterance_id: u for s in sessions.sessions for u in s.utterances}
    missing = [u for k, u in sources.items() if k not in known]
    for u in missing:
        wave = load_audio(u.source, sample_rate, u.source_start, u.source_end)
        known[u.utterance_id] = labels[int(np.argmax(proba(wave)))]
    if missing:
        atomic_write_json(path, known)
    return known


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _claim(out: Path, record: dict) -> None:
    stamp = out / "run.json"
    if stamp.exists() and json.loads(stamp.read_text()) != json.loads(json.dumps(record)):
        raise ConfigError(f"{out}: holds a run of another stream or session set; choose "
                          "another --out or delete it")
    atomic_write_json(stamp, record)


def score_sessions(set_dir: str | Path, out: str | Path, streams: StreamFactory, *,
                   labels: Sequence[str], describe: dict[str, Any], chunk_ms: float = 100.0,
                   offline: Callable[[np.ndarray], np.ndarray] | None = None,
                   figures: int = 2, progress: bool = True) -> dict:
    """Stream and score every session of the set in ``set_dir``; write ``summary.json``,
    ``report.html`` and the figures into ``out``; return the summary. ``describe`` says what
    was streamed (recorded in ``run.json``); ``offline`` gives the same model's probabilities
    for a whole clean utterance (the reference UAR)."""
    from tqdm import tqdm

    from emovox.sessions.report import write_report

    if figures < 0:
        raise ConfigError(f"figures={figures}: must be >= 0")
    set_dir, out = Path(set_dir), Path(out)
    sessions = SessionSet.load(set_dir)
    _claim(out, {"sessions": str(set_dir.resolve()),
                 "manifest": _digest(set_dir / SessionSet.NAME),
                 "stream": describe, "chunk_ms": chunk_ms})
    scores: list[SessionScore] = []
    for session in tqdm(sessions.sessions, desc="streaming sessions", unit="session",
                        disable=not progress):
        scores.append(_score_one(set_dir, out, session, streams, chunk_ms))
    known = None
    if offline is not None:
        known = offline_labels(out, sessions, labels, offline, sessions.sessions[0].sample_rate)
    summary = summarise_run(sessions, scores, labels, known)
    atomic_write_json(out / "summary.json", summary)
    write_report(out, set_dir, sessions, scores, summary, figures,
                 lambda s: json.loads(result_path(out, s).read_text())["events"])
    return summary


def result_path(out: Path, session: Session) -> Path:
    return out / "results" / session.condition / f"{session.id}.json"


def _score_one(set_dir: Path, out: Path, session: Session, streams: StreamFactory,
               chunk_ms: float) -> SessionScore:
    path = result_path(out, session)
    if path.exists():
        return SessionScore.from_dict(json.loads(path.read_text())["score"])
    events = stream_file(set_dir / session.audio, streams(), chunk_ms)
    score = score_session(session, decided_utterances(events))
    atomic_write_json(path, {"events": events, "score": score.to_dict()})
    return score


def summarise_run(sessions: SessionSet, scores: list[SessionScore], labels: Sequence[str],
                  offline: dict[str, str] | None) -> dict:
    """Metrics per condition (pooled over speakers), and per condition and speaker, and per
    condition and background noise (the room_noise conditions)."""
    noise = {s.key: s.mix.get("noise") for s in sessions.sessions}
    out: dict[str, Any] = {"labels": list(labels), "conditions": {}, "speakers": {},
                           "noises": {}}
    for condition in sessions.conditions:
        mine = [s for s in scores if s.condition == condition]
        out["conditions"][condition] = summarise(mine, labels, offline)
        for group, of in (("speakers", lambda s: s.speaker), ("noises", lambda s: noise[s.key])):
            kinds = sorted({of(s) for s in mine} - {None})
            if kinds:
                out[group][condition] = {kind: summarise([s for s in mine if of(s) == kind],
                                                         labels, offline) for kind in kinds}
    out["build"] = sessions.settings
    return out


def score_model(set_dir: str | Path, out: str | Path, model: str | Path,
                settings: StreamSettings = StreamSettings(), figures: int = 2,
                progress: bool = True) -> dict:
    """:func:`score_sessions` with a model directory's ``StreamingRecognizer``, after
    :func:`check_model`."""
    recognizer = Recognizer(Path(model))
    check_model(recognizer, SessionSet.load(set_dir))
    describe = {"model": str(Path(model).resolve()), **asdict(settings)}
    return score_sessions(set_dir, out, recognizer_streams(recognizer, settings),
                          labels=recognizer.labels, describe=describe,
                          chunk_ms=settings.chunk_ms, offline=recognizer.proba,
                          figures=figures, progress=progress)
