"""The model bundled in the package: works with no --model, streams, is listed by
``emovox models``; the configs that reproduce it and the cross-corpus table parse."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import ROOT, write_speech

from emovox.cli import main
from emovox.experiments.config import load_config
from emovox.serving.model_dir import Recognizer, default_model_dir
from emovox.serving.streaming import StreamingRecognizer

COMMON = ["anger", "fear", "happiness", "neutral", "sadness"]


def _lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_bundled_model_is_small_streams_and_matches_its_config():
    path = default_model_dir()
    size = sum(f.stat().st_size for f in path.iterdir())
    assert size < 2_000_000
    assert (path / "MODEL_CARD.md").read_text().count("CC BY-NC-SA 4.0") >= 1
    rec = Recognizer(path)
    assert rec.labels == COMMON
    assert rec.config.corpus.format == "combined"
    assert rec.config.augment.copies > 0
    assert load_config(ROOT / "configs" / "default_model.yaml").corpus.labels == COMMON
    assert StreamingRecognizer(path).labels == COMMON


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
    bundled, mine = _lines(capsys)
    assert bundled["bundled"] and bundled["streams"] and bundled["labels"] == COMMON
    assert bundled["trained_on"] == ["emodb", "nemo"]
    assert mine["path"] == str(user) and not mine["bundled"]
    assert mine["size_bytes"] == bundled["size_bytes"]
    (tmp_path / "empty").mkdir()
    assert main(["models", str(tmp_path / "empty")]) == 2  # a folder without models is bad input
    assert "no model directory" in _lines(capsys)[1]["error"]


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
