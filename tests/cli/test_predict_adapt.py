"""``emovox predict`` adapting to the speaker (issue 26): ``--enrol`` (earlier recordings),
``--adapt`` (the files are one speaker, leave-one-out) and ``--speaker-from`` (groups), on both
runtimes. A tiny GRU trained with per-speaker normalisation on synthetic speakers; statistics
checked against offline per-speaker normalisation, probabilities against offline inference with
those statistics (1e-4), ONNX against PyTorch (1e-4)."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
from conftest import write_tone, write_voiced

from emovox.audio import load_audio
from emovox.cli import main
from emovox.features import Normaliser, SpeakerStatistics
from emovox.serving.adaptation import MIN_ENROLMENT_S, enrolment, speech_seconds
from emovox.serving.model_dir import Recognizer

ATOL = 1e-4


def run(capsys, *args: str) -> tuple[int, list[dict], list[str]]:
    """Exit code, JSON lines and stderr lines of ``emovox -q ARGS``."""
    capsys.readouterr()
    code = main(["-q", *args])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err.strip().splitlines()


@pytest.fixture(scope="module")
def rec(speaker_model_dir) -> Recognizer:
    return Recognizer(speaker_model_dir)


@pytest.fixture(scope="module")
def enrol_dir(tmp_path_factory):
    """Two 3 s recordings of a synthetic voice: about 4.7 s of speech."""
    root = tmp_path_factory.mktemp("enrolment")
    for k in range(2):
        write_voiced(root / f"earlier_{k}.wav", f0=150.0 + 20 * k, seed=k)
    return root


def s4(synthetic_corpus) -> list[str]:
    return [str(p) for p in sorted(synthetic_corpus.parent.glob("s4_*.wav"))]


def offline(rec: Recognizer, path: str, reference: list[np.ndarray]) -> np.ndarray:
    """Offline inference on ``path`` normalised with statistics fitted (two-pass,
    independently) on the ``reference`` frames."""
    trained = dataclasses.replace(rec.trained, normaliser=Normaliser("global").fit(reference))
    return rec.method.predict_wave(trained, load_audio(path))


def frames(rec: Recognizer, paths) -> list[np.ndarray]:
    return [rec.extractor.extract_long(load_audio(p)) for p in paths]


def proba(record: dict) -> np.ndarray:
    return np.array(list(record["probabilities"].values()))


def test_enrolment_statistics_are_offline_per_speaker_normalisation(rec, enrol_dir):
    files = sorted(enrol_dir.iterdir())
    stats = enrolment(rec, [str(enrol_dir)])
    feats = frames(rec, files)
    assert stats.count == sum(len(f) for f in feats)
    # the normaliser a speaker's utterances get offline, speaker normalisation
    speaker = Normaliser("speaker").fit(feats).apply(feats, ["x"] * len(feats))
    for f, want in zip(feats, speaker, strict=True):
        np.testing.assert_allclose(stats.normaliser().apply([f])[0], want, atol=1e-5)
    assert sum(speech_seconds(load_audio(f), 16_000) for f in files) >= MIN_ENROLMENT_S


def test_predict_enrol_uses_the_enrolment_statistics(rec, enrol_dir, synthetic_corpus, capsys):
    files = s4(synthetic_corpus)[:3]
    model = ["--model", str(rec.model_dir), "--runtime", "torch"]
    code, records, _ = run(capsys, "predict", *files, *model, "--enrol", str(enrol_dir),
                           "--tau", "0")
    assert code == 0 and [r["path"] for r in records] == files
    reference = frames(rec, sorted(enrol_dir.iterdir()))
    seconds = sum(len(f) for f in reference) / rec.extractor.frame_rate
    for path, record in zip(files, records, strict=True):
        np.testing.assert_allclose(proba(record), offline(rec, path, reference), atol=ATOL)
        assert record["adapted"] is True and record["adaptation"] == "enrolled"
        assert record["speaker"] is None and record["speaker_s"] == pytest.approx(seconds, abs=0.01)
    # unadapted: the training statistics, other numbers, and the record says so
    code, plain, _ = run(capsys, "predict", *files, *model)
    assert code == 0 and all(r["adapted"] is False and r["adaptation"] == "none" and
                             r["speaker_s"] == 0 for r in plain)
    gaps = [np.abs(proba(a) - proba(b)).max() for a, b in zip(records, plain, strict=True)]
    assert max(gaps) > 1e-3


def test_adapt_decides_each_file_with_the_other_files_statistics(rec, synthetic_corpus, capsys):
    files = s4(synthetic_corpus)
    model = ["--model", str(rec.model_dir), "--runtime", "torch"]
    code, records, _ = run(capsys, "predict", *files, *model, "--adapt", "--tau", "0")
    assert code == 0
    feats = frames(rec, files)
    for i, (path, record) in enumerate(zip(files, records, strict=True)):
        others = feats[:i] + feats[i + 1 :]
        np.testing.assert_allclose(proba(record), offline(rec, path, others), atol=ATOL)
        assert record["adapted"] is True and record["adaptation"] == "leave_one_out"
        assert record["speaker_s"] == pytest.approx(
            sum(len(f) for f in others) / rec.extractor.frame_rate, abs=0.01)
    # the order of the files changes nothing
    code, backwards, _ = run(capsys, "predict", *files[::-1], *model, "--adapt", "--tau", "0")
    for a, b in zip(records, backwards[::-1], strict=True):
        np.testing.assert_allclose(proba(a), proba(b), atol=1e-6)
    # shrinkage: a speaker heard for far fewer frames than tau keeps the training statistics
    _, plain, _ = run(capsys, "predict", *files, *model)
    _, shrunk, _ = run(capsys, "predict", *files, *model, "--adapt", "--tau", "1e9")
    for a, b in zip(plain, shrunk, strict=True):
        np.testing.assert_allclose(proba(a), proba(b), atol=ATOL)
    # one file alone has no other files: nothing heard, not adapted
    _, (alone,), _ = run(capsys, "predict", files[0], *model, "--adapt")
    assert alone["adapted"] is False and alone["speaker_s"] == 0
    np.testing.assert_allclose(proba(alone), proba(plain[0]), atol=ATOL)


def test_speaker_from_adapts_within_each_group(rec, synthetic_corpus, tmp_path, capsys):
    corpus = synthetic_corpus.parent
    files = [str(p) for s in ("s3", "s4") for p in sorted(corpus.glob(f"{s}_*.wav"))]
    model = ["--model", str(rec.model_dir), "--runtime", "torch"]
    code, grouped, _ = run(capsys, "predict", *files, *model, "--speaker-from", r"^(s\d)_")
    assert code == 0 and [r["speaker"] for r in grouped] == ["s3"] * 8 + ["s4"] * 8
    for block in (grouped[:8], grouped[8:]):
        _, alone, _ = run(capsys, "predict", *[r["path"] for r in block], *model, "--adapt")
        for a, b in zip(block, alone, strict=True):
            np.testing.assert_allclose(proba(a), proba(b), atol=1e-6)
    # the same groups by folder
    for path in files:
        folder = tmp_path / path.split("/")[-1][:2]
        folder.mkdir(exist_ok=True)
        shutil.copy(path, folder)
    copies = [str(tmp_path / p.split("/")[-1][:2] / p.split("/")[-1]) for p in files]
    _, by_dir, _ = run(capsys, "predict", *copies, *model, "--speaker-from", "parent-dir")
    assert [r["speaker"] for r in by_dir] == [r["speaker"] for r in grouped]
    for a, b in zip(grouped, by_dir, strict=True):
        np.testing.assert_allclose(proba(a), proba(b), atol=1e-6)
    # a file the expression does not match: its error line, the others still labelled
    stray = write_tone(tmp_path / "stray.wav", seconds=0.6)
    code, records, err = run(capsys, "predict", *files[:3], str(stray), *model,
                             "--speaker-from", r"^(s\d)_")
    assert code == 2 and len(err) == 1 and str(stray) in err[0] and "--speaker-from" in err[0]
    assert [("error" in r) for r in records] == [False, False, False, True]


def test_onnx_runtime_adapts_as_torch(rec, enrol_dir, synthetic_corpus, capsys):
    """The export's ``normaliser.json`` (training statistics) is the prior the speaker's
    statistics shrink toward: the same records from onnxruntime, probabilities within 1e-4."""
    files = s4(synthetic_corpus)
    for flags in (["--adapt"], ["--speaker-from", "parent-dir"], ["--enrol", str(enrol_dir)],
                  ["--adapt", "--enrol", str(enrol_dir), "--tau", "50"], []):
        got = {}
        for runtime in ("torch", "onnx"):
            code, got[runtime], _ = run(capsys, "predict", *files, "--model", str(rec.model_dir),
                                        "--runtime", runtime, *flags)
            assert code == 0, flags
        for a, b in zip(got["torch"], got["onnx"], strict=True):
            np.testing.assert_allclose(proba(a), proba(b), atol=ATOL)
            assert {k: v for k, v in a.items() if k not in ("probabilities", "confidence")} == \
                {k: v for k, v in b.items() if k not in ("probabilities", "confidence")}
    assert got["onnx"][0]["adaptation"] == "none"


def one_error(code: int, err: list[str], *words: str) -> None:
    assert code == 2 and len(err) == 1 and err[0].startswith("emovox: error: "), err
    assert all(w in err[0] for w in words), (err, words)


def test_enrolment_without_enough_speech_exits_2_naming_it(rec, enrol_dir, tmp_path,
                                                          synthetic_corpus, capsys):
    wav = s4(synthetic_corpus)[0]
    model = ["--model", str(rec.model_dir)]
    tone = write_tone(tmp_path / "tone.wav", seconds=4.0)  # the gate hears no speech in it
    silent = tmp_path / "silent.wav"
    write_tone(silent, amplitude=0.0)
    short = write_voiced(tmp_path / "short.wav", seconds=1.5)
    for enrol, words in (([str(tone)], [str(tone), "no speech"]),
                         ([str(silent)], [str(silent), "silent"]),
                         ([str(enrol_dir), str(tone)], [str(tone), "no speech"]),
                         ([str(short)], [str(short), "s of speech", "at least 3 s"]),
                         ([str(tmp_path / "missing.wav")], ["missing.wav"])):
        for command in (["predict", wav], ["stream", wav]):
            code, out, err = run(capsys, *command, *model, "--enrol", *enrol)
            one_error(code, err, *words)
            assert not out


def test_adaptation_of_a_model_without_speaker_normalisation_exits_2(synthetic_corpus,
                                                                     enrol_dir, capsys):
    """The bundled GRU normalises globally: the flags are refused, as ``stream --enrol``."""
    wav = s4(synthetic_corpus)[0]
    for flags in (["--adapt"], ["--speaker-from", "parent-dir"], ["--enrol", str(enrol_dir)]):
        for runtime in ("torch", "onnx"):
            code, out, err = run(capsys, "predict", wav, "--model", "gru", "--runtime", runtime,
                                 *flags)
            one_error(code, err, "per-speaker normalisation", "'global'")
            assert not out
    code, (record,), _ = run(capsys, "predict", wav, "--model", "gru")
    assert code == 0 and record["adapted"] is False and record["adaptation"] == "none"


def test_bad_adaptation_flags_exit_2(rec, enrol_dir, synthetic_corpus, capsys):
    wav = s4(synthetic_corpus)[0]
    model = ["--model", str(rec.model_dir)]
    for flags, words in ((["--speaker-from", "(s"], ["--speaker-from", "not a regular"]),
                         (["--speaker-from", "s4"], ["--speaker-from", "capture group"]),
                         (["--speaker-from", "parent-dir", "--enrol", str(enrol_dir)],
                          ["--enrol", "--speaker-from"])):
        code, out, err = run(capsys, "predict", wav, *model, *flags)
        one_error(code, err, *words)
    with pytest.raises(SystemExit) as exc:
        main(["-q", "predict", wav, *model, "--adapt", "--speaker-from", "parent-dir"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main(["-q", "predict", wav, *model, "--adapt", "--tau", "-1"])


def test_statistics_arithmetic_matches_gathering_the_frames_again():
    rng = np.random.default_rng(0)
    a, b, c = (rng.normal(k, 1 + k, (20 + 5 * k, 4)) for k in range(3))
    total = SpeakerStatistics.of([a, b]) + SpeakerStatistics.of([c])
    for got, want in ((total - SpeakerStatistics.of([b]), SpeakerStatistics.of([a, c])),
                      (total, SpeakerStatistics.of([a, b, c]))):
        assert got.count == want.count
        np.testing.assert_allclose(got.normaliser().mean, want.normaliser().mean, atol=1e-9)
        np.testing.assert_allclose(got.normaliser().std, want.normaliser().std, atol=1e-9)
    assert (total - total).count == 0
    with pytest.raises(Exception, match="more frames"):
        SpeakerStatistics.of([a]) - total
