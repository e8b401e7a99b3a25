"""One code for bad input (exit 2, one line on stderr) across commands; flag defaults read from
the settings they set (issue 25, items 9–12; issue 24, item 6). Fast: the bundled model and a
synthetic corpus, nothing trained on real speakers."""

from __future__ import annotations

import dataclasses
import io
import json
import sys

import pytest
import yaml
from conftest import write_tone

from emovox.cli import build_parser, main
from emovox.cli.common import EXIT_CODES
from emovox.serving.settings import Settings
from emovox.serving.streaming import GateConfig


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("emovox: error: "), err
    return err[0]


@pytest.fixture(scope="module")
def emorl_model(synthetic_corpus, tmp_path_factory):
    """An EmoRL model (a GRU and its agent) on the synthetic tones, trained in seconds."""
    root = tmp_path_factory.mktemp("emorl")
    config = {
        "name": "cli_emorl",
        "corpus": {"format": "csv", "path": str(synthetic_corpus)},
        "features": {"name": "mfcc_prosody", "normalise": "global", "stack": 3, "cache": None,
                     "workers": 1},
        "model": {"name": "gru_baseline", "params": {"hidden": 8}},
        "training": {"epochs": 2, "lr": 0.01},
        "method": {"name": "emorl", "params": {"episodes": 40, "freeze_episodes": 10,
                                               "eval_every": 20}},
    }
    (root / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["-q", "train", str(root / "c.yaml"), "--out", str(root / "model")]) == 0
    return root / "model"


# ---- item 9: emovox stream ------------------------------------------------------------------
def test_stream_refuses_odd_length_pcm_on_stdin(monkeypatch, capsys):
    pcm = b"\x00\x00" * 1600 + b"\x01"  # 0.1 s of silence and half a sample
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(pcm)))
    assert main(["-q", "stream", "-"]) == 2
    assert "odd number of bytes" in _one_error_line(capsys)


def test_stream_refuses_a_threshold_for_a_model_with_an_agent(emorl_model, synthetic_corpus,
                                                              capsys):
    wav = str(synthetic_corpus.parent / "s1_low_0.wav")
    capsys.readouterr()
    assert main(["-q", "stream", wav, "--model", str(emorl_model), "--threshold", "0.6"]) == 2
    assert "--threshold" in _one_error_line(capsys)
    assert not capsys.readouterr().out
    assert main(["-q", "stream", wav, "--model", str(emorl_model)]) == 0  # its agent decides


# ---- item 10: one code for bad input --------------------------------------------------------
def test_predict_bad_files_exit_2_and_the_good_ones_still_get_their_lines(tmp_path, capsys):
    good = write_tone(tmp_path / "tone.wav", seconds=1.5)
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "notes.wav").write_text("not audio\n")
    (tmp_path / "folder.wav").mkdir()
    bad = [tmp_path / n for n in ("missing.wav", "empty.wav", "notes.wav", "folder.wav")]
    for path in bad:
        assert main(["-q", "predict", str(good), str(path)]) == 2, path
        first, second = (json.loads(x) for x in capsys.readouterr().out.splitlines())
        assert "label" in first and second["path"] == str(path) and "error" in second
    assert main(["-q", "predict", str(good)]) == 0


def test_models_on_a_folder_without_models_exits_2(tmp_path, capsys):
    assert main(["models", str(tmp_path)]) == 2
    assert "no model directory" in capsys.readouterr().out


def test_help_documents_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert out.count(" ".join(EXIT_CODES.split())) == 2


# ---- items 11 and 12: configs ---------------------------------------------------------------
def test_yaml_syntax_error_is_one_line_with_file_line_and_column(tmp_path, capsys):
    config = tmp_path / "broken.yaml"
    config.write_text("name: x\ncorpus: {format: emodb\nmodel: 3\n")
    assert main(["-q", "experiment", str(config)]) == 2
    assert f"{config}:3:6: invalid YAML: expected ',' or '}}'" in _one_error_line(capsys)
    config.write_text("name: x\n")
    assert main(["-q", "experiment", str(config), "protocol.folds=[0,"]) == 2
    assert "override 'protocol.folds=[0,': invalid YAML" in _one_error_line(capsys)


def test_missing_corpus_is_refused_before_the_output_directory_exists(synthetic_corpus,
                                                                     tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"name": "c", "corpus": {
        "format": "csv", "path": str(tmp_path / "nowhere.csv")}}))
    for command in (["experiment", str(config)], ["study", str(_study(tmp_path, config))]):
        out = tmp_path / "out"
        assert main(["-q", *command, "--out", str(out)]) == 2
        assert "nowhere.csv: corpus directory or file not found" in _one_error_line(capsys)
        assert not out.exists()


def _study(tmp_path, config):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({"base": yaml.safe_load(config.read_text()),
                                    "variants": {"a": {}}}))
    return path


# ---- issue 24, item 6: flag defaults come from the settings they set ------------------------
def test_flag_defaults_are_the_settings_defaults():
    serve = vars(build_parser("serve").parse_args(["serve"]))
    for field in dataclasses.fields(Settings):
        if field.name in serve:
            assert serve[field.name] == getattr(Settings(), field.name), field.name
    stream = vars(build_parser("stream").parse_args(["stream", "x.wav"]))
    gate = {f.name for f in dataclasses.fields(GateConfig)} & set(stream)
    assert gate == {"pause_ms", "max_utterance_s", "min_speech_ms", "energy_floor_db"}
    for name in gate:
        assert stream[name] == getattr(GateConfig(), name), name


def test_the_bundled_model_streams_whole_samples_from_stdin(emodb, monkeypatch, capsys):
    """The refusal above is about half a sample, not about stdin."""
    from emovox.audio import load_audio

    wave = load_audio(emodb / "wav" / "03a01Wa.wav")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(
        (wave * 32767).astype("<i2").tobytes())))
    assert main(["-q", "stream", "-"]) == 0
    assert "decision" in [json.loads(x)["type"] for x in capsys.readouterr().out.splitlines()]
