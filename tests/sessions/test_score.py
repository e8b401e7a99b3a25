"""Matching and metrics on hand-made timelines and event lists whose answers are known."""

from __future__ import annotations

import pytest

from emovox.sessions.score import (
    Decided,
    decided_utterances,
    match,
    score_session,
    summarise,
)
from emovox.sessions.timeline import NonSpeech, Session, Spoken

LABELS = ["anger", "neutral"]


def spoken(k: int, label: str, start: float, end: float) -> Spoken:
    return Spoken(f"u{k}", label, f"u{k}.wav", start, end, placed_at=start)


def session(utterances, events=(), duration=20.0) -> Session:
    return Session("s", "spk", "clean", "audio/clean/s.flac", duration, 16000,
                   tuple(utterances), tuple(events))


def stream_events(start: float, end: float, label: str, emitted_at: float,
                  forced: bool = False) -> list[dict]:
    """What StreamingRecognizer says about one utterance that got a decision."""
    return [{"type": "utterance_start", "time": start},
            {"type": "decision", "time": 0.6, "label": label, "start": start,
             "emitted_at": emitted_at, "forced": forced},
            {"type": "utterance_end", "time": end, "start": start, "duration": end - start}]


TRUTH = [spoken(0, "anger", 1.0, 3.0), spoken(1, "neutral", 5.0, 7.0),
         spoken(2, "anger", 10.0, 12.0)]


def test_events_become_decided_utterances_and_no_speech_is_not_one():
    events = (stream_events(0.94, 3.2, "anger", 1.6)
              + [{"type": "utterance_start", "time": 4.0},
                 {"type": "no_speech", "time": 4.0, "speech": 0.1},
                 {"type": "utterance_end", "time": 4.3, "start": 4.0, "duration": 0.3}])
    assert decided_utterances(events) == [Decided(0.94, 3.2, "anger", 1.6, False)]


def test_perfect_session_latency_arithmetic():
    found = [Decided(0.94, 3.15, "anger", 1.6, False), Decided(4.94, 7.15, "neutral", 5.9, False),
             Decided(9.94, 12.15, "neutral", 13.5, True)]
    score = score_session(session(TRUTH), found)
    assert [r.predicted for r in score.utterances] == ["anger", "neutral", "neutral"]
    assert [r.latency for r in score.utterances] == pytest.approx([0.6, 0.9, 3.5])
    assert [r.fraction for r in score.utterances] == pytest.approx([0.3, 0.45, 1.75])
    s = summarise([score], LABELS, offline={"u0": "anger", "u1": "neutral", "u2": "anger"})
    assert (s["precision"], s["recall"], s["f1"]) == (1.0, 1.0, 1.0)
    assert s["latency_median"] == pytest.approx(0.9)
    assert s["forced"] == 1 and s["undecided"] == 0
    assert s["uar"] == pytest.approx((0.5 + 1.0) / 2)  # anger 1/2 right, neutral 1/1
    assert s["offline_uar"] == 1.0
    assert s["uar_minus_offline"] == pytest.approx(-0.25)
    assert score.non_speech_seconds == pytest.approx(20.0 - 6.0)


def test_merged_utterances_match_once_and_the_other_is_undecided():
    found = [Decided(0.9, 7.2, "anger", 8.0, True), Decided(9.9, 12.2, "anger", 10.5, False)]
    assert match(TRUTH, found) == {0: 0, 2: 1}  # equal overlaps: the earlier true utterance
    s = summarise([score_session(session(TRUTH), found)], LABELS)
    assert s["precision"] == 1.0
    assert s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(0.8)
    assert s["undecided"] == 1
    assert s["uar"] == 0.5  # anger 2/2, neutral undecided: 0/1
    assert s["uar_decided"] == 1.0


def test_split_utterance_is_one_match_and_one_extra_decision_on_speech():
    found = [Decided(0.9, 2.2, "anger", 1.5, False), Decided(2.1, 3.2, "neutral", 2.7, False)]
    score = score_session(session(TRUTH[:1]), found)
    assert score.utterances[0].predicted == "anger"  # the larger overlap wins
    assert len(score.false_alarms) == 1 and not score.false_alarms[0].non_speech
    s = summarise([score], LABELS)
    assert s["precision"] == 0.5 and s["recall"] == 1.0
    assert s["extra_decisions_on_speech"] == 1 and s["non_speech_decisions"] == 0


def test_decision_during_an_event_is_non_speech_per_hour():
    door = NonSpeech("door", 3.8, 4.4, level_db=0.0, seed=1)
    found = [Decided(3.7, 4.6, "anger", 5.0, True)]
    score = score_session(session(TRUTH[:2], events=[door], duration=18.0), found)
    s = summarise([score], LABELS)
    assert s["non_speech_decisions"] == 1
    assert s["event_decisions"] == {"door": 1} and s["events"] == {"door": 1}
    assert s["non_speech_per_hour"] == pytest.approx(1 / ((18.0 - 4.0) / 3600))
    assert s["undecided"] == 2 and s["uar"] == 0.0 and s["uar_decided"] is None
    assert s["precision"] == 0.0 and s["recall"] == 0.0 and s["f1"] == 0.0


def test_no_decision_at_all():
    s = summarise([score_session(session(TRUTH), [])], LABELS)
    assert s["decisions"] == 0 and s["precision"] is None and s["f1"] is None
    assert s["undecided"] == 3 and s["latency_median"] is None


def test_small_overlap_is_no_match():
    found = [Decided(2.8, 4.9, "anger", 3.5, False)]  # 0.2 s of a 2 s utterance, of 2.1 s
    assert match(TRUTH, found) == {}


def test_adaptation_compares_first_three_with_tenth_and_later():
    truth = [spoken(k, LABELS[k % 2], 3.0 * k, 3.0 * k + 2) for k in range(12)]
    found = [Decided(u.start, u.end, u.label if k < 3 else LABELS[(k + 1) % 2], u.start + 1,
                     False) for k, u in enumerate(truth)]
    s = summarise([score_session(session(truth, duration=40.0), found)], LABELS)
    assert (s["uar_first"], s["n_first"]) == (1.0, 3)
    assert (s["uar_late"], s["n_late"]) == (0.0, 3)
