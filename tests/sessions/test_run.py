"""Streaming a built set from disk and scoring it, with a stand-in stream whose decisions are
known (the real StreamingRecognizer: test_sessions_e2e.py)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
from conftest import write_voiced

from emovox.audio import load_audio
from emovox.augment.rooms import fingerprint
from emovox.corpora import load_corpus
from emovox.errors import ConfigError
from emovox.schema import build
from emovox.serving.model_dir import Recognizer
from emovox.serving.streaming import Event
from emovox.sessions.build import BuildSettings, build_sessions
from emovox.sessions.run import (
    StreamSettings,
    check_model,
    recognizer_streams,
    result_path,
    score_sessions,
)
from emovox.sessions.timeline import SessionSet

SR = 16000
HOP = SR // 100
#: The stand-in stream decides this long after each onset it finds.
DELAY = 0.3


class OracleStream:
    """Finds loud 10 ms frames in what it was pushed and, at the end, reports each run of them
    as an utterance decided ``DELAY`` s after its onset (label ``high``)."""

    sample_rate = SR

    def __init__(self, pushes: list[list[int]]):
        self.chunks: list[np.ndarray] = []
        self.pushes: list[int] = []
        pushes.append(self.pushes)

    def push(self, chunk: np.ndarray) -> list[Event]:
        self.pushes.append(len(chunk))
        self.chunks.append(chunk)
        return []

    def end(self) -> list[Event]:
        wave = np.concatenate(self.chunks)
        frames = wave[: len(wave) // HOP * HOP].reshape(-1, HOP)
        loud = np.sqrt(np.mean(frames**2, axis=1)) > 0.05
        edges = np.flatnonzero(np.diff(np.concatenate([[0], loud.astype(int), [0]])))
        events = []
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            start, end = a / 100, b / 100
            events += [Event("utterance_start", start),
                       Event("decision", DELAY, {"label": "high", "start": start,
                                                 "emitted_at": start + DELAY, "forced": False}),
                       Event("utterance_end", end, {"start": start, "duration": end - start})]
        return events


@pytest.fixture(scope="module")
def clean_set(synthetic_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("set")
    settings = build(BuildSettings, {"utterances": 4, "conditions": ["clean"],
                                     "max_sessions_per_speaker": 1}, "sessions")
    build_sessions(load_corpus("csv", synthetic_corpus), out, settings,
                   {"format": "csv", "path": str(synthetic_corpus)}, progress=False)
    return out


def run(set_dir, out, pushes, **kw):
    return score_sessions(set_dir, out, lambda: OracleStream(pushes), labels=["high", "low"],
                          describe={"stream": "oracle"}, progress=False, **kw)


def test_sessions_stream_from_disk_and_score(clean_set, tmp_path):
    pushes: list[list[int]] = []
    summary = run(clean_set, tmp_path, pushes, chunk_ms=100.0, figures=1,
                  offline=lambda wave: np.array([0.2, 0.8]))
    clean = summary["conditions"]["clean"]
    assert clean["sessions"] == 4 and clean["utterances"] == 16
    assert (clean["precision"], clean["recall"]) == (1.0, 1.0)
    assert clean["non_speech_decisions"] == 0
    assert clean["latency_median"] == pytest.approx(DELAY, abs=0.011)
    assert clean["uar"] == pytest.approx(0.5)  # always "high": half of two classes
    assert clean["offline_uar"] == pytest.approx(0.5)  # the offline stand-in says "low"
    assert len(pushes) == 4  # a fresh stream per session, fed 100 ms blocks from disk
    assert all(set(p[:-1]) == {1600} and 0 < p[-1] <= 1600 for p in pushes)
    assert len(list((tmp_path / "results" / "clean").glob("*.json"))) == 4
    page = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in page and "seg. F1" in page
    assert len(list((tmp_path / "figures" / "clean").glob("*.png"))) == 1


def test_a_rerun_skips_scored_sessions_and_refuses_another_stream(clean_set, tmp_path):
    run(clean_set, tmp_path, [])
    (tmp_path / "results" / "clean" / "s1_s000.json").unlink()
    pushes: list[list[int]] = []
    run(clean_set, tmp_path, pushes)
    assert len(pushes) == 1  # only the session whose result was removed
    duration = SessionSet.load(clean_set).sessions[0].duration
    assert sum(pushes[0]) == pytest.approx(duration * SR, abs=1)
    with pytest.raises(ConfigError, match="another stream"):
        score_sessions(clean_set, tmp_path, lambda: OracleStream([]), labels=["high", "low"],
                       describe={"stream": "other"}, progress=False)


def model_stub(speakers, valid=(), labels=("high", "low"), augment=None):
    corpus = SimpleNamespace(speakers=speakers, format="csv", path="x.csv")
    transforms = augment or {}
    return SimpleNamespace(
        labels=list(labels), meta={"valid_speakers": list(valid)},
        config=SimpleNamespace(corpus=corpus, augment=SimpleNamespace(
            enabled=bool(transforms), transforms=transforms)))


def test_models_that_heard_the_speakers_or_the_material_are_refused(clean_set, tmp_path):
    sessions = SessionSet.load(clean_set)
    check_model(model_stub(["other"]), sessions)  # independent: passes
    with pytest.raises(ConfigError, match=r"s1"):
        check_model(model_stub(["s1", "x"]), sessions)
    with pytest.raises(ConfigError, match=r"s2"):
        check_model(model_stub(["x"], valid=["s2"]), sessions)
    with pytest.raises(ConfigError, match="labels"):
        check_model(model_stub(["x"], labels=["high"]), sessions)
    clip = np.random.default_rng(0).standard_normal(SR).astype(np.float32) * 0.1
    (tmp_path / "noise").mkdir()
    sf.write(tmp_path / "noise" / "hum.wav", clip, SR)
    noise = {"noise": {"directory": str(tmp_path / "noise")}}
    check_model(model_stub(["x"], augment=noise), sessions)  # disjoint material: passes
    used = f"noise:{fingerprint(load_audio(tmp_path / 'noise' / 'hum.wav'))}"
    leaky = SessionSet(sessions.labels, sessions.settings, [used], sessions.sessions)
    with pytest.raises(ConfigError, match="noise/room"):
        check_model(model_stub(["x"], augment=noise), leaky)


@pytest.fixture(scope="module")
def voiced_set(tmp_path_factory):
    """One session of four synthetic voiced utterances (the gate takes them for speech)."""
    root = tmp_path_factory.mktemp("voiced")
    rows = ["path,label,speaker"]
    for k, label in enumerate(["low", "high", "low", "high"]):
        write_voiced(root / f"u{k}.wav", seconds=1.5, f0=140.0 + 15 * k, seed=k)
        rows.append(f"u{k}.wav,{label},v1")
    (root / "corpus.csv").write_text("\n".join(rows) + "\n")
    settings = build(BuildSettings, {"utterances": 4, "conditions": ["clean"]}, "sessions")
    build_sessions(load_corpus("csv", root / "corpus.csv"), root / "set", settings,
                   {"format": "csv", "path": str(root / "corpus.csv")}, progress=False)
    return root / "set"


def test_a_speaker_normalised_model_adapts_through_each_session(voiced_set, speaker_model_dir,
                                                                tmp_path):
    """Sessions stream a model trained with per-speaker normalisation with running adaptation
    (``StreamingRecognizer``'s default): a fresh stream per session knows nothing of its
    speaker at the first decision and has heard it by the later ones."""
    rec = Recognizer(speaker_model_dir)
    score_sessions(voiced_set, tmp_path, recognizer_streams(rec, StreamSettings(pause_ms=300.0)),
                   labels=rec.labels, describe={"stream": "adapting"}, figures=0,
                   progress=False)
    (session,) = SessionSet.load(voiced_set).sessions
    events = json.loads(result_path(tmp_path, session).read_text())["events"]
    decisions = [e for e in events if e["type"] == "decision"]
    assert len(decisions) == 4
    assert {e["adaptation"] for e in decisions} == {"running"}
    assert decisions[0]["adapted"] is False
    assert all(e["adapted"] and e["speaker_s"] > 0 for e in decisions[1:])


def test_validation_sessions_may_hold_validation_speakers_only(clean_set):
    """Sessions built to choose stream settings (``build --validation``) are of the model's
    validation speakers; its training speakers are still refused."""
    sessions = SessionSet.load(clean_set)
    speakers = sorted({s.speaker for s in sessions.sessions})
    corpus = {**sessions.settings["corpus"], "split": "validation"}
    validation = SessionSet(sessions.labels, {**sessions.settings, "corpus": corpus},
                            sessions.sources, sessions.sessions)
    check_model(model_stub(["x", *speakers], valid=speakers), validation)
    with pytest.raises(ConfigError, match=speakers[0]):
        check_model(model_stub(["x", *speakers], valid=speakers[1:]), validation)
    with pytest.raises(ConfigError, match=speakers[-1]):  # not so when built as a test set
        check_model(model_stub(["x", *speakers], valid=speakers), sessions)


def test_room_noise_is_also_summarised_per_background_noise(synthetic_corpus, tmp_path):
    settings = build(BuildSettings, {"utterances": 4, "conditions": ["room_noise_20db"],
                                     "max_sessions_per_speaker": 1, "rooms": 2}, "sessions")
    sessions = build_sessions(load_corpus("csv", synthetic_corpus), tmp_path / "set", settings,
                              {}, progress=False)
    summary = run(tmp_path / "set", tmp_path / "out", [], figures=0)
    kinds = [s.mix["noise"] for s in sessions.sessions]
    by_noise = summary["noises"]["room_noise_20db"]
    assert sorted(by_noise) == sorted(set(kinds))
    assert {k: v["sessions"] for k, v in by_noise.items()} == {k: kinds.count(k) for k in kinds}
