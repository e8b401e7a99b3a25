"""The two runtimes behind one protocol: PyTorch's Recognizer and onnxruntime's OnnxRecognizer
both implement serving.runtime.Runtime, neither serving module imports the other's in a
cycle, and an ONNX stream steps and stops as the PyTorch streamer does (one Step type, one
stop rule), on the bundled model and real Emo-DB audio."""

from __future__ import annotations

import subprocess
import sys

import grimp
import numpy as np
import pytest

from emovox.audio import load_audio
from emovox.early.decisions import Step, stop_rule
from emovox.serving.model_dir import Recognizer, default_model_dir, open_recognizer
from emovox.serving.onnx_runtime import OnnxRecognizer, OnnxStream
from emovox.serving.runtime import Runtime

FILES = ["03a01Wa", "08a02Na", "16b10Wb"]


def test_both_runtimes_implement_the_protocol_without_subclassing_each_other():
    torch_rec, onnx_rec = (open_recognizer(default_model_dir(), r) for r in ("torch", "onnx"))
    assert isinstance(torch_rec, Recognizer) and isinstance(onnx_rec, OnnxRecognizer)
    assert isinstance(torch_rec, Runtime) and isinstance(onnx_rec, Runtime)
    assert not issubclass(OnnxRecognizer, Recognizer)


def test_serving_modules_import_no_cycle():
    graph = grimp.build_graph("emovox")  # function-level and TYPE_CHECKING imports included
    modules = sorted(m for m in graph.modules if m.startswith("emovox.serving."))
    cycles = [(a, b) for i, a in enumerate(modules) for b in modules[i + 1 :]
              if graph.chain_exists(a, b) and graph.chain_exists(b, a)]
    assert not cycles


def test_onnx_runtime_and_the_stop_rule_import_no_torch():
    code = ("import sys\nimport emovox.serving.onnx_runtime, emovox.early.decisions\n"
            "assert 'torch' not in sys.modules\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("threshold", [0.6, None])
def test_onnx_stream_steps_as_the_torch_streamer(emodb, threshold):
    """The bundled model streamed in 100 ms chunks: the same Steps (probabilities within
    1e-5, seconds read) and the same stops and decision by the one stop rule."""
    torch_rec = Recognizer(default_model_dir())
    onnx_rec = OnnxRecognizer(default_model_dir() / "onnx", threads=1)
    streamer = torch_rec.method.streamer(torch_rec.trained)
    for name in FILES:
        wave = load_audio(emodb / "wav" / f"{name}.wav")
        state, stream = streamer.start(10**9), OnnxStream(onnx_rec, threshold=threshold)
        want: list[Step] = []
        got: list[Step] = []
        for start in range(0, len(wave), 1600):
            want += state.push(wave[start : start + 1600])
            got += stream.push(wave[start : start + 1600])
        want, got = want + state.finish(), got + stream.finish()
        assert len(got) == len(want) > 2, name
        stops = []
        for a, b in zip(want, got, strict=True):
            assert np.abs(a.proba - b.proba).max() < 1e-5, name
            assert a.actions is None and b.actions is None
            stop = bool(stop_rule(a.proba, threshold, a.actions))
            assert bool(stop_rule(b.proba, threshold, b.actions)) == stop
            stops.append(stop)
        # seconds: the torch streamer never claims more than the audio (the last step's
        # padded stacked frame), the ONNX stream counts rows read
        assert [a.seconds for a in want[:-1]] == pytest.approx([b.seconds for b in got[:-1]])
        first = stops.index(True) if any(stops) else len(got) - 1
        assert stream.decided == first and stream.forced == (not any(stops))
