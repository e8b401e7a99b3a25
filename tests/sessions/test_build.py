"""Sessions built from the synthetic corpus: layout, conditions, manifest, resumption."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf

from emovox.augment.transforms import rms
from emovox.corpora import load_corpus
from emovox.errors import ConfigError
from emovox.schema import build
from emovox.sessions import sounds
from emovox.sessions.build import (
    BuildSettings,
    alternate,
    build_sessions,
    render,
    speech_rms,
    speech_span,
)
from emovox.sessions.timeline import SessionSet

SR = 16000
CONDITIONS = ["clean", "room_noise_10db", "events", "levels"]


def settings(**changes) -> BuildSettings:
    return build(BuildSettings, {"utterances": 4, "conditions": CONDITIONS, "rooms": 2,
                                 **changes}, "sessions")


@pytest.fixture(scope="module")
def manifest(synthetic_corpus):
    return load_corpus("csv", synthetic_corpus)


@pytest.fixture(scope="module")
def built(manifest, tmp_path_factory):
    out = tmp_path_factory.mktemp("sessions")
    return out, build_sessions(manifest, out, settings(), {"format": "csv"}, progress=False)


def test_speech_span_finds_the_tone():
    t = np.arange(SR) / SR
    wave = np.concatenate([np.zeros(SR // 2), 0.3 * np.sin(2 * np.pi * 300 * t),
                           np.zeros(3 * SR // 10)]).astype(np.float32)
    assert speech_span(wave) == pytest.approx((0.5, 1.5), abs=0.011)


@pytest.mark.parametrize("seed", range(5))
def test_alternate_never_repeats_a_label_when_it_can_avoid_it(manifest, seed):
    utts = [u for u in manifest if u.speaker == "s1"]  # 4 low, 4 high
    skewed = utts[:4] + utts[4:6] + [replace(utts[6], label="mid")]  # 4 : 2 : 1
    for pool in (utts, skewed):
        order = alternate(pool, np.random.default_rng(seed))
        assert sorted(u.id for u in order) == sorted(u.id for u in pool)
        assert all(a.label != b.label for a, b in zip(order, order[1:], strict=False))


def test_layout_pauses_and_manifest(built):
    out, sessions = built
    s = settings()
    assert len(sessions.sessions) == 4 * 2 * len(CONDITIONS)  # 4 speakers × 2 sessions
    assert sessions.conditions == CONDITIONS
    for session in sessions.sessions:
        utts = session.utterances
        assert len(utts) == 4 and utts[0].start == pytest.approx(s.lead_in_s)
        assert all(a.label != b.label for a, b in zip(utts, utts[1:], strict=False))
        pauses = [b.start - a.end for a, b in zip(utts, utts[1:], strict=False)]
        assert all(s.min_pause_s - 1e-3 <= p <= s.max_pause_s + 1e-3 for p in pauses)
        assert session.duration == pytest.approx(utts[-1].end + s.tail_s, abs=1e-3)
        info = sf.info(str(out / session.audio))
        assert info.samplerate == SR and abs(info.duration - session.duration) < 1e-3
    assert SessionSet.load(out).sessions == sessions.sessions
    assert any(x.startswith("rir:") for x in sessions.sources)
    assert "synth:session-babble" in sessions.sources


def test_clean_audio_is_speech_in_the_spans_and_silence_between(built):
    out, sessions = built
    session = next(s for s in sessions.sessions if s.condition == "clean")
    wave, _ = sf.read(str(out / session.audio), dtype="float32")
    for u in session.utterances:
        assert rms(wave[int(u.start * SR) : int(u.end * SR)]) > 0.1
    for a, b in zip(session.utterances, session.utterances[1:], strict=False):
        assert np.max(np.abs(wave[int(a.end * SR) + 2 : int(b.start * SR) - 2])) == 0.0


def test_levels_change_each_utterance_by_its_gain(built):
    out, sessions = built
    clean = next(s for s in sessions.sessions if s.condition == "clean")
    levels = next(s for s in sessions.sessions if s.condition == "levels" and s.id == clean.id)
    a, _ = sf.read(str(out / clean.audio), dtype="float32")
    b, _ = sf.read(str(out / levels.audio), dtype="float32")
    peak = max(np.max(np.abs(b)) / 0.99, 1.0)  # a session that would clip is scaled down
    for u in levels.utterances:
        span = slice(int(u.start * SR), int(u.end * SR))
        gain = 20 * np.log10(rms(b[span]) * peak / rms(a[span]))
        assert gain == pytest.approx(u.gain_db, abs=0.1)


def test_events_sit_in_pauses_with_margins(manifest, tmp_path):
    s = settings(conditions=["events"], min_pause_s=2.5, max_pause_s=3.0)
    sessions = build_sessions(manifest, tmp_path, s, {}, progress=False).sessions
    events = [e for session in sessions for e in session.events]
    assert {e.kind for e in events} >= {"door", "tone"}
    for session in sessions:
        for e in session.events:
            before = max(u.end for u in session.utterances if u.end <= e.start)
            after = min(u.start for u in session.utterances if u.start >= e.end)
            assert e.start - before >= s.event_margin_s - 1e-3
            assert after - e.end >= s.event_margin_s - 1e-3
        wave, _ = sf.read(str(tmp_path / session.audio), dtype="float32")
        for e in session.events:
            assert rms(wave[int(e.start * SR) : int(e.end * SR)]) > 0.01


def test_room_noise_is_at_its_snr(built):
    out, sessions = built
    session = next(s for s in sessions.sessions if s.condition == "room_noise_10db")
    session = replace(session, mix={**session.mix, "noise": "pink"})
    waves = {u.utterance_id: sf.read(u.source, dtype="float32")[0] for u in session.utterances}
    clean = render(replace(session, condition="clean", mix={}), waves, ())
    noisy = render(session, waves, sounds.test_rooms(2, 0))
    lead_in = noisy[: int(0.9 * SR)]  # noise only: nothing precedes the first speech
    snr = 20 * np.log10(speech_rms(session, clean) / rms(lead_in))
    assert snr == pytest.approx(10.0, abs=1.0)


def test_rebuild_resumes_and_other_settings_are_refused(manifest, built):
    out, sessions = built
    first = out / sessions.sessions[0].audio
    stamp = first.stat().st_mtime_ns
    data = first.read_bytes()
    other = out / sessions.sessions[1].audio
    other.unlink()
    again = build_sessions(manifest, out, settings(), {"format": "csv"}, progress=False)
    assert again.sessions == sessions.sessions
    assert first.stat().st_mtime_ns == stamp and first.read_bytes() == data
    assert other.exists()
    with pytest.raises(ConfigError, match="other settings"):
        build_sessions(manifest, out, settings(seed=1), {"format": "csv"}, progress=False)


def test_bad_settings_fail_with_the_key():
    with pytest.raises(ConfigError, match="min_pause_s"):
        settings(min_pause_s=4.0)
    with pytest.raises(ConfigError, match="conditions"):
        settings(conditions=["rain"])
    with pytest.raises(ConfigError, match="utterances"):
        settings(utterances=1)
