"""A real two-utterance Emo-DB session of a speaker the bundled model never heard, built and
scored through the command line with the real StreamingRecognizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emovox.cli import main

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def test_two_utterance_emodb_session_streamed_and_scored(emodb, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # the bundled GRU's corpus path is relative to the repository
    sessions, out = tmp_path / "set", tmp_path / "scored"
    assert main(["-q", "sessions", "build", "--model", "gru", "--out", str(sessions),
                 "--speakers", "emodb_03", "--utterances", "2", "--max-sessions-per-speaker", "1",
                 "--conditions", "clean", "robot"]) == 0
    built = json.loads(capsys.readouterr().out)
    assert built["speakers"] == ["emodb_03"] and built["per_condition"] == 1
    assert main(["-q", "sessions", "build", "--model", "gru", "--out", str(sessions), "--speakers",
                 "emodb_08"]) == 2  # a training speaker of the bundled GRU
    assert main(["-q", "sessions", "build", "--model", "gru", "--out", str(tmp_path / "v"),
                 "--validation", "--speakers", "emodb_03"]) == 2  # held out, not validation
    capsys.readouterr()

    assert main(["-q", "sessions", "score", str(sessions), "--model", "gru", "--out", str(out),
                 "--pause-ms", "150", "--figures", "1"]) == 0  # the chosen gate otherwise
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x.get("condition") for x in lines[:2]] == ["clean", "robot"]
    summary = json.loads((out / "summary.json").read_text())
    clean = summary["conditions"]["clean"]
    assert (clean["utterances"], clean["precision"], clean["recall"]) == (2, 1.0, 1.0)
    assert clean["non_speech_decisions"] == 0 and clean["undecided"] == 0
    session = json.loads((sessions / "sessions.json").read_text())["sessions"][0]
    result = json.loads((out / "results" / "clean" / f"{session['id']}.json").read_text())
    decisions = [e for e in result["events"] if e["type"] == "decision"]
    for truth, scored, decision in zip(session["utterances"], result["score"]["utterances"],
                                       decisions, strict=True):
        # decided after its onset (with the 60 ms pre-roll and 500 ms of speech needed), and
        # no later than the pause that ends it allows (150 ms + a 100 ms chunk + post-roll)
        assert scored["latency"] == pytest.approx(decision["emitted_at"] - truth["start"])
        assert 0.3 < scored["latency"] <= truth["end"] - truth["start"] + 0.6
        assert scored["predicted"] == decision["label"]
    assert 0.0 <= clean["offline_uar"] <= 1.0
    assert (out / "figures" / "clean" / f"{session['id']}.png").exists()
    assert "data:image/png;base64," in (out / "report.html").read_text()
