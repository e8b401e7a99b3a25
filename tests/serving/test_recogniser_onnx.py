"""A recogniser-layer model (Whisper tiny.en layers, ``mp`` and ``layer_mix`` heads) exported
whole: ``features.onnx`` (log-mel front end, encoder layers) and ``model.onnx`` (the head).
Parity with PyTorch on real Emo-DB files — whole utterances and stream steps — and no PyTorch
in the process that runs the export."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from emovox.audio import load_audio
from emovox.experiments.config import build_config
from emovox.experiments.methods import supervised
from emovox.serving.model_dir import Recognizer, train_and_save
from emovox.serving.onnx_export import export_onnx
from emovox.serving.onnx_runtime import OnnxRecognizer, OnnxStream

pytestmark = pytest.mark.e2e  # trains models on real corpus speakers

FILES = ["03a01Wa", "08a02Na", "16b10Wb", "11b03Nb", "03a05Tc"]
TOL = 1e-4
HEADS = {
    "mp": ({"layers": 2}, {"name": "mp"}),
    "layer_mix": ({"layers": [1, 2]}, {"name": "layer_mix", "params": {"n_layers": 2}}),
}


@pytest.fixture(scope="module", params=sorted(HEADS))
def exported(request, tmp_path_factory, emodb):
    """A small model of each head on Whisper tiny.en's layers, trained on three real Emo-DB
    speakers (one validates), and its ONNX export."""
    layers, model = HEADS[request.param]
    root = tmp_path_factory.mktemp(request.param)
    config = build_config({
        "name": "recogniser_onnx_test",
        "corpus": {"format": "emodb", "path": str(emodb),
                   "labels": ["anger", "neutral", "sadness"], "speakers": ["03", "08", "16"]},
        "features": {"name": "whisper_layers", "params": {"model": "tiny.en", **layers},
                     "normalise": "speaker", "workers": 1},
        "model": model,
        "training": {"epochs": 3, "lr": 0.005, "progress": False},
    })
    train_and_save(config, root / "model", progress=False)
    frontend = export_onnx(root / "model", root / "onnx")
    return root / "model", root / "onnx", frontend


def test_export_holds_the_front_end_and_the_head(exported):
    _, out, frontend = exported
    assert frontend["features_graph"] == "features.onnx"
    assert {"features.onnx", "model.onnx"} <= {p.name for p in out.iterdir()}
    assert frontend["recogniser_streaming"]["step_ms"] == 300
    assert max(frontend["export_check_max_abs_diff"].values()) < 1e-4
    assert json.loads((out / "frontend.json").read_text())["graphs"]["features.onnx"]


def test_whole_files_as_pytorch(exported, emodb):
    model_dir, out, _ = exported
    torch_rec, onnx_rec = Recognizer(model_dir), OnnxRecognizer(out, threads=1)
    for name in FILES:
        wave = load_audio(emodb / "wav" / f"{name}.wav")
        want, got = torch_rec.proba(wave), onnx_rec.proba(wave)
        assert np.abs(want - got).max() < TOL, name
        assert want.argmax() == got.argmax(), name


@pytest.mark.parametrize("kind", ["window", "blocks"])
def test_stream_steps_as_pytorch(exported, emodb, kind, monkeypatch):
    """100 ms chunks, either way of streaming: the same steps (seconds, probabilities within
    1e-4, labels) as the PyTorch streamer, and the decision at the last step."""
    model_dir, out, _ = exported
    monkeypatch.setattr(supervised, "RECOGNISER_STREAMING", kind)
    torch_rec = Recognizer(model_dir)
    streamer = torch_rec.method.streamer(torch_rec.trained)
    onnx_rec = OnnxRecognizer(out, threads=1)
    onnx_rec.meta["recogniser_streaming"]["kind"] = kind  # as an export made with it says
    stream = OnnxStream(onnx_rec)
    assert type(stream.blocks) is type(streamer)
    for name in FILES[:3]:
        wave = load_audio(emodb / "wav" / f"{name}.wav")
        state = streamer.start(10**9)
        stream.reset()
        want, got = [], []
        for start in range(0, len(wave), 1600):
            want += state.push(wave[start : start + 1600])
            got += stream.push(wave[start : start + 1600])
        want, got = want + state.finish(), got + stream.finish()
        assert len(got) == len(want) > 3, name
        for a, b in zip(want, got, strict=True):
            assert a.seconds == pytest.approx(b.seconds)
            assert np.abs(a.proba - b.proba).max() < TOL, name
            assert a.proba.argmax() == b.proba.argmax()
        assert stream.decided == len(got) - 1 and stream.forced


def test_predict_on_the_export_imports_no_torch(exported, emodb):
    _, out, _ = exported
    files = [str(emodb / "wav" / f"{n}.wav") for n in FILES[:2]]
    code = ("import sys\nfrom emovox.serving.onnx_runtime import OnnxRecognizer\n"
            f"rec = OnnxRecognizer({str(out)!r})\n"
            f"labels = [rec.predict_file(f)['label'] for f in {files!r}]\n"
            "assert 'torch' not in sys.modules, 'torch imported'\nprint(labels)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    want = [Recognizer(exported[0]).predict_file(f)["label"] for f in files]
    assert proc.stdout.strip() == str(want)
