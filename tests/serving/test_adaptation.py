"""Running speaker adaptation in streams (issue 26): a model trained with per-speaker
normalisation adds each utterance's frames to its speaker's statistics (seeded by an enrolment)
and normalises the next utterances with them, shrunk toward the training statistics; with
nothing heard yet it decides exactly as without adaptation. A tiny GRU on synthetic speakers,
streamed over synthetic speech-like audio (the gate refuses pure tones)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from conftest import write_voiced

from emovox.audio import load_audio
from emovox.cli import main
from emovox.errors import EmovoxError
from emovox.features import SpeakerStatistics
from emovox.serving.model_dir import Recognizer, bundled_model_dir, default_model_dir
from emovox.serving.streaming import GateConfig, StreamingRecognizer

SR = 16_000
TAU = 300.0


@pytest.fixture(scope="module")
def rec(speaker_model_dir) -> Recognizer:
    return Recognizer(speaker_model_dir)


@pytest.fixture(scope="module")
def conversation(tmp_path_factory):
    """Three utterances of one synthetic voice, 2 s of silence between them."""
    root = tmp_path_factory.mktemp("conversation")
    parts = []
    for k in range(3):
        parts.append(load_audio(write_voiced(root / f"u{k}.wav", seconds=1.5, f0=140 + 15 * k,
                                             seed=k)))
        parts.append(np.zeros(2 * SR, dtype=np.float32))
    path = root / "conversation.wav"
    sf.write(path, np.concatenate(parts), SR)
    return path


def stream(rec, path, **kwargs) -> list[dict]:
    recognizer = StreamingRecognizer(rec, gate=GateConfig(pause_ms=600), **kwargs)
    wave = load_audio(path)
    events = []
    for start in range(0, len(wave), 1600):
        events += recognizer.push(wave[start : start + 1600])
    return [e.to_dict() for e in events + recognizer.end()]


def of_type(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e["type"] == kind]


def test_nothing_heard_decides_as_without_adaptation(rec, conversation):
    adapted, fixed = stream(rec, conversation, tau=TAU), stream(rec, conversation, adapt=False)
    first, plain = of_type(adapted, "decision"), of_type(fixed, "decision")
    assert len(first) == len(plain) == 3
    np.testing.assert_allclose(list(first[0]["probabilities"].values()),
                               list(plain[0]["probabilities"].values()), atol=1e-6)
    assert first[0]["adapted"] is False and first[0]["speaker_s"] == 0
    assert first[0]["adaptation"] == "running" and plain[0]["adaptation"] == "none"
    # later utterances: normalised with what was heard, so other numbers
    assert first[2]["adapted"] is True
    assert np.abs(np.subtract(list(first[2]["probabilities"].values()),
                              list(plain[2]["probabilities"].values()))).max() > 1e-4


def test_each_utterance_joins_the_statistics_of_the_next(rec, conversation):
    """The second utterance of an adapting stream is decided as by a stream enrolled with the
    first utterance's audio (its frames, as offline extraction makes them) and not adapting."""
    events = stream(rec, conversation, tau=TAU)
    ends, decisions = of_type(events, "utterance_end"), of_type(events, "decision")
    wave = load_audio(conversation)
    first = wave[int(round(ends[0]["start"] * SR)) : int(round(ends[0]["time"] * SR))]
    heard = SpeakerStatistics.of([rec.extractor.extract_long(first)])
    enrolled = of_type(stream(rec, conversation, speaker=heard, adapt=False, tau=TAU),
                       "decision")
    np.testing.assert_allclose(list(decisions[1]["probabilities"].values()),
                               list(enrolled[1]["probabilities"].values()), atol=1e-5)
    assert decisions[1]["speaker_s"] == pytest.approx(heard.count / rec.extractor.frame_rate,
                                                      abs=0.01)
    assert decisions[1]["speaker_s"] < decisions[2]["speaker_s"]
    assert enrolled[1]["adaptation"] == "enrolled" and enrolled[1]["adapted"] is True


def test_enrolment_seeds_the_running_statistics_and_reset_returns_to_it(rec, conversation):
    wave = load_audio(conversation)
    enrolment = SpeakerStatistics.of([rec.extractor.extract_long(wave[: 3 * SR])])
    recognizer = StreamingRecognizer(rec, speaker=enrolment, tau=TAU)
    events = [e.to_dict() for e in recognizer.push(wave) + recognizer.end()]
    decisions = of_type(events, "decision")
    assert [d["adaptation"] for d in decisions] == ["enrolled+running"] * 3
    seconds = enrolment.count / rec.extractor.frame_rate
    assert decisions[0]["speaker_s"] == pytest.approx(seconds, abs=0.01)
    assert decisions[2]["speaker_s"] > decisions[1]["speaker_s"] > seconds
    # the stream is over: back to the enrolment (never the caller's object, never modified)
    assert recognizer.heard.count == enrolment.count and recognizer.heard is not enrolment
    assert enrolment.count == len(rec.extractor.extract_long(wave[: 3 * SR]))


def test_a_model_without_speaker_normalisation_does_not_adapt(conversation):
    """The bundled GRU normalises globally: no running adaptation, enrolment refused."""
    gru = bundled_model_dir("gru")
    events = stream(gru, conversation)
    assert all(d["adaptation"] == "none" and d["adapted"] is False
               for d in of_type(events, "decision"))
    with pytest.raises(EmovoxError, match="per-speaker normalisation"):
        StreamingRecognizer(gru, speaker=SpeakerStatistics.of([np.ones((3, 4))]))


def test_the_bundled_default_adapts_as_it_listens(conversation):
    decisions = of_type(stream(default_model_dir(), conversation), "decision")
    assert [d["adaptation"] for d in decisions] == ["running"] * 3
    assert decisions[0]["adapted"] is False and decisions[2]["adapted"] is True


def test_cli_stream_adapts_unless_told_not_to(rec, conversation, tmp_path, capsys):
    enrol = write_voiced(tmp_path / "earlier.wav", seconds=5.0, f0=130)
    args = ["-q", "stream", str(conversation), "--model", str(rec.model_dir), "--pause-ms", "600"]
    want = {(): "running", ("--no-adapt",): "none", ("--enrol", str(enrol)): "enrolled+running",
            ("--no-adapt", "--enrol", str(enrol)): "enrolled"}
    for flags, mode in want.items():
        capsys.readouterr()
        assert main([*args, *flags]) == 0
        events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [d["adaptation"] for d in of_type(events, "decision")] == [mode] * 3, flags
    with pytest.raises(SystemExit) as exc:
        main([*args, "--tau", "-5"])
    assert exc.value.code == 2


def test_adaptation_on_the_onnx_path_imports_no_torch():
    code = ("import sys\nimport emovox.serving.adaptation, emovox.serving.onnx_runtime\n"
            "assert 'torch' not in sys.modules\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
