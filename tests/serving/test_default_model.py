"""The models bundled in the package: the default (Whisper base block 3, adapting to its
speaker) works with no --model, streams, adapts; the GRU it replaced answers to ``--model gru``;
``emovox models`` lists both; the configs that reproduce them and the cross-corpus table
parse."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import ROOT, write_speech

from emovox.cli import main
from emovox.experiments.config import load_config
from emovox.serving.model_dir import (
    Recognizer,
    bundled_model_dir,
    default_model_dir,
    resolve_model,
)
from emovox.serving.streaming import StreamingRecognizer

COMMON = ["anger", "fear", "happiness", "neutral", "sadness"]


def _lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_bundled_default_is_small_adapts_streams_and_matches_its_config():
    path = default_model_dir()
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    assert size < 200_000  # the encoder's weights come from the whisper-base packages
    card = (path / "MODEL_CARD.md").read_text()
    assert "CC BY-NC-SA 4.0" in card and "adaptation_curve.py card" in card
    rec = Recognizer(path)
    assert rec.labels == COMMON
    assert rec.config.corpus.format == "combined"
    assert rec.normalise == "speaker"  # adapts to its speaker
    settings = rec.extractor.settings()
    assert settings["name"] == "whisper_layers" and settings["params"]["model"] == "base"
    assert settings["params"]["layers"] == 3 and not settings["params"]["block_ms"]  # exact
    recipe = load_config(ROOT / "configs" / "default_model_v2.yaml")
    assert recipe.corpus.labels == COMMON and recipe.model.name == rec.config.model.name
    assert StreamingRecognizer(path).labels == COMMON


def test_bundled_gru_answers_to_its_name():
    path = resolve_model("gru")
    assert path == bundled_model_dir("gru") and resolve_model(None) == default_model_dir()
    rec = Recognizer(path)
    assert rec.labels == COMMON and rec.normalise == "global"
    assert rec.config.augment.copies > 0
    assert load_config(ROOT / "configs" / "default_model.yaml").corpus.labels == COMMON
    assert "CC BY-NC-SA 4.0" in (path / "MODEL_CARD.md").read_text()


def test_a_directory_named_like_a_bundled_model_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gru").mkdir()
    assert resolve_model("gru") == tmp_path.joinpath("gru").relative_to(tmp_path)


def test_predict_and_stream_without_model(tmp_path, capsys):
    wav = write_speech(tmp_path / "speech.wav")
    assert main(["-q", "predict", str(wav)]) == 0
    (line,) = _lines(capsys)
    assert line["label"] in COMMON
    assert sum(line["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert main(["-q", "stream", str(wav)]) == 0
    events = _lines(capsys)
    decisions = [e for e in events if e["type"] == "decision"]
    assert len(decisions) == 1 and decisions[0]["label"] in COMMON


def test_models_lists_bundled_and_user_directories(tmp_path, capsys):
    user = tmp_path / "models" / "mine"
    shutil.copytree(default_model_dir(), user)
    assert main(["models", str(tmp_path / "models")]) == 0
    default, gru, mine = _lines(capsys)
    assert [default["bundled_as"], gru["bundled_as"]] == ["default", "gru"]
    for bundled in (default, gru):
        assert bundled["bundled"] and bundled["streams"] and bundled["labels"] == COMMON
        assert bundled["trained_on"] == ["emodb", "nemo"]
    assert default["features"] == "whisper_layers" and gru["model"] == "gru_baseline"
    assert mine["path"] == str(user) and not mine["bundled"] and "bundled_as" not in mine
    assert mine["size_bytes"] == default["size_bytes"]
    (tmp_path / "empty").mkdir()
    assert main(["models", str(tmp_path / "empty")]) == 2  # a folder without models is bad input
    assert "no model directory" in _lines(capsys)[2]["error"]


def test_cross_corpus_config_builds_every_model():
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from cross_corpus import model_config

    from emovox.experiments.config import build_config, read_yaml

    spec = read_yaml(ROOT / "benchmarks" / "cross_corpus.yaml")
    for name, model in spec["models"].items():
        config = build_config(model_config(model, spec["base"], name))
        assert config.corpus.labels == COMMON and config.corpus.format == "combined"
    augmented = build_config(model_config(spec["models"]["gru_augmented"], spec["base"], "x"))
    default = load_config(ROOT / "configs" / "default_model.yaml")
    assert augmented.augment.copies == default.augment.copies
