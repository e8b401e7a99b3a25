"""The bundled model's ONNX export (``default_model/onnx``): it is current, its encoder's graph
is built once into the cache, ``emovox predict`` runs it by default without importing PyTorch,
and it answers as PyTorch does on real Emo-DB files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import write_speech

from emovox.audio import load_audio
from emovox.cli import main
from emovox.serving.model_dir import (
    ONNX_SUBDIR,
    Recognizer,
    bundled_export,
    default_model_dir,
    open_recognizer,
)
from emovox.serving.onnx_runtime import OnnxRecognizer

#: Both sexes, every one of the five emotions, and two 7-class-only ones (boredom, disgust).
FILES = ["03a01Wa", "03a02Ta", "08a02Na", "09b03Fd", "11b03Nb", "13a01Ec", "16b10Wb",
         "15a01La", "08a01Ab"]


def test_bundled_export_is_current_and_chosen_by_default():
    path = default_model_dir()
    export, why = bundled_export(path)
    assert export == path / ONNX_SUBDIR, why
    assert isinstance(open_recognizer(path), OnnxRecognizer)
    assert isinstance(open_recognizer(path, "onnx"), OnnxRecognizer)
    rec = open_recognizer(path, "torch")
    assert type(rec) is Recognizer


def test_onnx_matches_torch_on_emodb(emodb):
    torch_rec = open_recognizer(default_model_dir(), "torch")
    onnx_rec = open_recognizer(default_model_dir(), "onnx")
    for name in FILES:
        wave = load_audio(emodb / "wav" / f"{name}.wav", 16_000)
        a, b = torch_rec.proba(wave), onnx_rec.proba(wave)
        assert a.argmax() == b.argmax(), name
        assert np.abs(a - b).max() < 1e-5, name
        assert onnx_rec.describe(b)["label"] == torch_rec.describe(a)["label"]


def test_stale_export_is_never_run(tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(default_model_dir(), model)
    wav = str(write_speech(tmp_path / "speech.wav"))
    meta = json.loads((model / "model.json").read_text())
    meta["retrained"] = True  # any change to the directory's files
    (model / "model.json").write_text(json.dumps(meta))
    assert bundled_export(model)[0] is None
    assert type(open_recognizer(model)) is Recognizer  # auto: PyTorch
    assert main(["-q", "predict", wav, "--model", str(model), "--runtime", "onnx"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "emovox export" in err[0] and "not of its current files" in err[0]


def test_bundled_default_builds_its_encoder_graph_once(tmp_path, monkeypatch):
    """The package leaves out ``features.onnx`` (44 MB): it is built from the installed Whisper
    weights into the cache on first use, then reused."""
    assert not (default_model_dir() / ONNX_SUBDIR / "features.onnx").exists()
    monkeypatch.setenv("EMOVOX_CACHE", str(tmp_path / "cache"))
    first = open_recognizer(default_model_dir(), "onnx")
    assert first.features_path.is_relative_to(tmp_path / "cache" / "onnx")
    built = first.features_path.stat().st_mtime_ns
    again = open_recognizer(default_model_dir(), "onnx")
    assert again.features_path == first.features_path
    assert again.features_path.stat().st_mtime_ns == built


@pytest.mark.parametrize("flags", [[], ["--adapt"]])
def test_predict_does_not_import_torch(emodb, flags):
    """Nor when it adapts: the speaker's frames come from onnxruntime too."""
    open_recognizer(default_model_dir(), "onnx")  # the encoder's graph, built once if missing
    files = [str(emodb / "wav" / f"{name}.wav") for name in ("03a01Wa", "03a02Ta", "03a02Nc")]
    code = ("import sys\nfrom emovox.cli import main\n"
            f"assert main(['-q', 'predict', *{files[: 3 if flags else 1]!r}, *{flags!r}]) == 0\n"
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'sklearn', "
            "'pandas', 'matplotlib', 'fastapi'})\n"
            "assert not heavy, heavy\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert records[0]["label"] == "anger"
    assert all(r["adapted"] is bool(flags) for r in records)


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_predict_runtimes_agree_through_the_cli(tmp_path, capsys, runtime):
    wavs = [str(write_speech(tmp_path / f"{seed}.wav", seed=seed)) for seed in range(3)]
    assert main(["-q", "predict", *wavs, "--runtime", runtime]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert main(["-q", "predict", *wavs]) == 0
    default = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    for a, b in zip(lines, default, strict=True):
        assert a["label"] == b["label"]
        assert max(abs(a["probabilities"][k] - b["probabilities"][k])
                   for k in a["probabilities"]) <= 1e-5 + 1e-6  # runtimes; 6 decimals
