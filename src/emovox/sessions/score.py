"""Scoring a streamed session against its timeline: pure functions of events and ground truth.

**Detected utterances** are the stream's utterances that got a ``decision`` (from its
``utterance_end`` event: start with pre-roll, end with post-roll; an utterance that ended with
``no_speech`` made no decision and is not one). A detected and a true utterance are a
**candidate pair** when their overlap is at least ``min_overlap`` (0.5) of the shorter of the
two; pairs are matched one to one, largest overlap first. So a detected utterance spanning two
true ones (a pause too short for the gate) is matched to one of them and the other is missed; a
true utterance cut in two is matched once and the other half is an extra decision.

- segmentation **precision** = matched decisions / decisions; **recall** = matched true
  utterances / true utterances; F1 their harmonic mean;
- a decision that matched nothing is **during non-speech** when less than half of its
  utterance overlaps true speech (counted per hour of non-speech audio, and per event kind it
  overlaps), otherwise an **extra decision on speech**;
- **per-utterance UAR**: each true utterance gets its matched decision's label; an undecided
  one (no match) counts as wrong (``uar``); ``uar_decided`` leaves those out;
- **latency**: stream time at which the decision was emitted (``emitted_at``: after the chunk
  that completed it) minus the true speech onset; also as a fraction of the utterance's speech
  duration (above 1: decided after the speech ended);
- **adaptation**: UAR over utterances 1–3 of every session against utterances 10 and later.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from emovox.evaluation.metrics import uar
from emovox.sessions.timeline import NonSpeech, Session, Spoken

#: Overlap of a candidate pair, as a share of the shorter of the two utterances.
MIN_OVERLAP = 0.5
#: Utterances (1-based positions) compared for running adaptation: early ones and late ones.
EARLY_POSITIONS = 3
LATE_FROM = 10


@dataclass(frozen=True)
class Decided:
    """A stream utterance that got a decision."""

    start: float
    end: float
    label: str
    emitted_at: float
    forced: bool


def decided_utterances(events: Sequence[dict]) -> list[Decided]:
    """Detected utterances from a stream's event dicts (``Event.to_dict()``), in order."""
    decisions = {e["start"]: e for e in events if e["type"] == "decision"}
    found = []
    for e in events:
        if e["type"] == "utterance_end" and e["start"] in decisions:
            d = decisions[e["start"]]
            found.append(Decided(e["start"], e["start"] + e["duration"], d["label"],
                                 d["emitted_at"], bool(d.get("forced"))))
    return found


def overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def match(truth: Sequence[Spoken], found: Sequence[Decided],
          min_overlap: float = MIN_OVERLAP) -> dict[int, int]:
    """True utterance index → detected utterance index (see the module docstring)."""
    pairs = []
    for i, t in enumerate(truth):
        for j, d in enumerate(found):
            shared = overlap((t.start, t.end), (d.start, d.end))
            if shared > 0 and shared >= min_overlap * min(t.end - t.start, d.end - d.start):
                pairs.append((-shared, i, j))
    matched: dict[int, int] = {}
    for _, i, j in sorted(pairs):
        if i not in matched and j not in matched.values():
            matched[i] = j
    return matched


@dataclass(frozen=True)
class UtteranceResult:
    position: int  # 1-based within the session
    utterance_id: str
    label: str
    predicted: str | None  # None: undecided
    latency: float | None = None
    fraction: float | None = None
    forced: bool | None = None


@dataclass(frozen=True)
class FalseAlarm:
    start: float
    end: float
    label: str
    emitted_at: float
    non_speech: bool
    #: The kind of the event it overlaps most, if any.
    event: str | None = None


@dataclass
class SessionScore:
    key: str
    speaker: str
    condition: str
    duration: float
    non_speech_seconds: float
    utterances: list[UtteranceResult]
    false_alarms: list[FalseAlarm]
    events: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SessionScore:
        return cls(**{**data,
                      "utterances": [UtteranceResult(**u) for u in data["utterances"]],
                      "false_alarms": [FalseAlarm(**f) for f in data["false_alarms"]]})


def _speech_union(utterances: Sequence[Spoken]) -> float:
    total, reach = 0.0, -np.inf
    for u in sorted(utterances, key=lambda u: u.start):
        total += max(0.0, u.end - max(u.start, reach))
        reach = max(reach, u.end)
    return total


def _busiest_event(span: tuple[float, float], events: Sequence[NonSpeech]) -> str | None:
    shared = [(overlap(span, (e.start, e.end)), e.kind) for e in events]
    best = max(shared, default=(0.0, None))
    return best[1] if best[0] > 0 else None


def score_session(session: Session, found: Sequence[Decided],
                  min_overlap: float = MIN_OVERLAP) -> SessionScore:
    """One session's per-utterance results and false alarms."""
    truth = session.utterances
    matched = match(truth, found, min_overlap)
    results = []
    for i, t in enumerate(truth):
        d = found[matched[i]] if i in matched else None
        if d is None:
            results.append(UtteranceResult(i + 1, t.utterance_id, t.label, None))
            continue
        latency = d.emitted_at - t.start
        results.append(UtteranceResult(i + 1, t.utterance_id, t.label, d.label,
                                       round(latency, 4),
                                       round(latency / max(t.duration, 1e-9), 4), d.forced))
    alarms = []
    for j, d in enumerate(found):
        if j in matched.values():
            continue
        speech = sum(overlap((d.start, d.end), (t.start, t.end)) for t in truth)
        alarms.append(FalseAlarm(d.start, d.end, d.label, d.emitted_at,
                                 speech < 0.5 * (d.end - d.start),
                                 _busiest_event((d.start, d.end), session.events)))
    return SessionScore(session.key, session.speaker, session.condition, session.duration,
                        round(session.duration - _speech_union(truth), 4), results, alarms,
                        dict(Counter(e.kind for e in session.events)))


def _uar(results: Sequence[UtteranceResult], labels: Sequence[str],
         predicted: Sequence[str | None]) -> float | None:
    """UAR over ``results``' true labels; a None prediction counts as wrong."""
    if not results:
        return None
    index = {label: k for k, label in enumerate(labels)}
    y_true = np.array([index[r.label] for r in results])
    y_pred = np.array([index.get(p, len(labels)) if p is not None else len(labels)
                       for p in predicted])
    return uar(y_true, y_pred, len(labels) + 1)


def _percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def summarise(scores: Sequence[SessionScore], labels: Sequence[str],
              offline: dict[str, str] | None = None) -> dict:
    """Every metric of the module docstring over ``scores`` (pooled). ``offline``: each
    utterance's label from the same model on the clean cut utterance."""
    results = [r for s in scores for r in s.utterances]
    alarms = [a for s in scores for a in s.false_alarms]
    decided = [r for r in results if r.predicted is not None]
    decisions = len(decided) + len(alarms)
    precision, recall = _ratio(len(decided), decisions), _ratio(len(decided), len(results))
    f1 = (2 * precision * recall / (precision + recall)) if precision and recall else 0.0
    non_speech = [a for a in alarms if a.non_speech]
    non_speech_hours = sum(s.non_speech_seconds for s in scores) / 3600
    events = Counter()
    for s in scores:
        events.update(s.events)
    early = [r for r in results if r.position <= EARLY_POSITIONS]
    late = [r for r in results if r.position >= LATE_FROM]
    latencies = [r.latency for r in decided]
    fractions = [r.fraction for r in decided]
    summary = {
        "sessions": len(scores),
        "hours": sum(s.duration for s in scores) / 3600,
        "utterances": len(results),
        "decisions": decisions,
        "precision": precision, "recall": recall, "f1": f1 if decisions else None,
        "non_speech_decisions": len(non_speech),
        "non_speech_per_hour": _ratio(len(non_speech), non_speech_hours),
        "extra_decisions_on_speech": len(alarms) - len(non_speech),
        "events": dict(events),
        "event_decisions": dict(Counter(a.event for a in non_speech if a.event)),
        "uar": _uar(results, labels, [r.predicted for r in results]),
        "uar_decided": _uar(decided, labels, [r.predicted for r in decided]),
        "undecided": len(results) - len(decided),
        "undecided_fraction": _ratio(len(results) - len(decided), len(results)),
        "forced": sum(bool(r.forced) for r in decided),
        "latency_median": _percentile(latencies, 50), "latency_p90": _percentile(latencies, 90),
        "fraction_median": _percentile(fractions, 50),
        "fraction_p90": _percentile(fractions, 90),
        "uar_first": _uar(early, labels, [r.predicted for r in early]),
        "uar_late": _uar(late, labels, [r.predicted for r in late]),
        "n_first": len(early), "n_late": len(late),
    }
    if offline is not None:
        summary["offline_uar"] = _uar(results, labels,
                                      [offline[r.utterance_id] for r in results])
        gap = None if summary["uar"] is None else summary["uar"] - summary["offline_uar"]
        summary["uar_minus_offline"] = gap
    return summary
