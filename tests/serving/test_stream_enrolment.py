"""A stream that knows its speaker: enrolment statistics (issue 15). A model trained with
per-speaker normalisation streams with statistics from earlier recordings of the speaker and
then decides exactly as offline inference normalised with those statistics; the statistics of
an utterance being decided never include it."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import yaml
from conftest import write_speech

from emovox.audio import load_audio
from emovox.cli import main
from emovox.errors import EmovoxError
from emovox.experiments.recogniser_streams import WindowStreamer
from emovox.experiments.streamers import enrol, speaker_statistics
from emovox.features import Normaliser, SpeakerStatistics
from emovox.features.normalise import leave_one_out
from emovox.serving.model_dir import Recognizer


@pytest.fixture(scope="module")
def speaker_rec(synthetic_corpus, tmp_path_factory) -> Recognizer:
    """An MP head on log-mel frames, per-speaker normalisation, speakers s1–s3."""
    root = tmp_path_factory.mktemp("enrol")
    (root / "c.yaml").write_text(yaml.safe_dump({
        "name": "enrol", "corpus": {"format": "csv", "path": str(synthetic_corpus),
                                    "speakers": ["s1", "s2", "s3"]},
        "features": {"name": "log_mel", "params": {"n_mels": 16}, "normalise": "speaker",
                     "cache": None, "workers": 1},
        "model": {"name": "mp", "params": {"dropout": 0.0}},
        "training": {"epochs": 3, "lr": 0.01, "progress": False}}))
    assert main(["-q", "train", str(root / "c.yaml"), "--out", str(root / "m")]) == 0
    return Recognizer(root / "m")


def s4(corpus) -> list:
    return sorted(corpus.parent.glob("s4_*.wav"))


def test_enrolled_stream_equals_offline_with_the_same_statistics(speaker_rec, synthetic_corpus):
    files = s4(synthetic_corpus)
    decided, earlier = files[0], files[1:]
    stats = speaker_statistics(speaker_rec.trained.extractor,
                               [load_audio(f) for f in earlier])
    streamer = speaker_rec.method.streamer(enrol(speaker_rec.trained, "speaker", stats))
    assert isinstance(streamer, WindowStreamer)
    wave = load_audio(decided)
    stream = streamer.start(10**9)
    steps = stream.push(wave) + stream.finish()
    assert len(steps) >= 2
    # offline: a normaliser fitted (two-pass, independently) on the earlier recordings' frames
    extractor = speaker_rec.trained.extractor
    reference = Normaliser("global").fit([extractor(load_audio(f)) for f in earlier])
    offline = dataclasses.replace(speaker_rec.trained, normaliser=reference)
    for step in steps:
        prefix = wave[: int(round(step.seconds * 16_000))]
        want = speaker_rec.method.classify(offline, extractor(prefix))
        np.testing.assert_allclose(step.proba, want, atol=1e-4)
    # without enrolment the stream normalises with the training speakers': other numbers
    plain = speaker_rec.method.streamer(speaker_rec.trained).start(10**9)
    last = (plain.push(wave) + plain.finish())[-1]
    assert np.abs(last.proba - steps[-1].proba).max() > 1e-3


def test_speaker_statistics_match_per_speaker_normalisation():
    rng = np.random.default_rng(0)
    feats = [rng.normal(3.0, 2.0, (n, 5)) for n in (40, 70, 55)]
    stats = SpeakerStatistics.of(feats).normaliser()
    speaker = Normaliser("speaker").fit(feats).apply(feats, ["a"] * 3)
    for f, s in zip(feats, speaker, strict=True):
        np.testing.assert_allclose(stats.apply([f])[0], s, atol=1e-5)


def test_leave_one_out_never_includes_the_decided_utterance():
    rng = np.random.default_rng(1)
    feats = {f"{s}{k}": rng.normal(k, 1 + k, (30 + 7 * k, 4)) for s in "ab" for k in range(4)}
    speakers = {uid: uid[0] for uid in feats}
    loo = leave_one_out(feats, speakers)
    for uid, stats in loo.items():
        rest = [f for other, f in feats.items() if other != uid and speakers[other] == uid[0]]
        assert stats.count == sum(len(f) for f in rest)
        want = Normaliser("global").fit(rest)
        got = stats.normaliser()
        np.testing.assert_allclose(got.mean, want.mean, atol=1e-9)
        np.testing.assert_allclose(got.std, want.std, atol=1e-9)
        with_it = SpeakerStatistics.of([*rest, feats[uid]]).normaliser()
        assert np.abs(with_it.mean - got.mean).max() > 1e-3  # it would have mattered
    with pytest.raises(EmovoxError):
        SpeakerStatistics.of([feats["a0"]]).without(feats["a0"])


def test_enrolment_needs_a_speaker_normalised_model(speaker_rec):
    stats = SpeakerStatistics.of([np.ones((3, 16))])
    with pytest.raises(EmovoxError, match="per-speaker normalisation"):
        enrol(speaker_rec.trained, "global", stats)


def test_cli_stream_enrol(speaker_rec, tmp_path, capsys):
    """``emovox stream --enrol DIR`` on speech-like audio (the gate refuses the corpus' tones)."""
    enrolment = tmp_path / "earlier"
    enrolment.mkdir()
    for seed in (1, 2):
        write_speech(enrolment / f"earlier{seed}.wav", seconds=3.0, seed=seed)  # ≥ 3 s of speech
    decided = str(write_speech(tmp_path / "decided.wav", seed=3))
    args = ["stream", decided, "--model", str(speaker_rec.model_dir)]
    assert main([*args, "--enrol", str(enrolment)]) == 0
    enrolled = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert main(args) == 0
    plain = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    pick = [[e["probabilities"] for e in events if e["type"] == "decision"]
            for events in (enrolled, plain)]
    assert pick[0] and len(pick[0]) == len(pick[1]) and pick[0] != pick[1]
    assert main([*args, "--enrol", str(tmp_path / "missing.wav")]) == 2
