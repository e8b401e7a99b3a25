"""ONNX export: parity with PyTorch on real Emo-DB utterances (whole utterances and stream
steps), the CLI, and bad inputs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import assert_features_close

from emovox.audio import load_audio
from emovox.early.decisions import TERMINATE, stop_rule
from emovox.early.reinforce import greedy_decisions, step_frames
from emovox.errors import EmovoxError
from emovox.experiments.config import build_config
from emovox.serving.model_dir import Recognizer, train_and_save
from emovox.serving.onnx_export import export_onnx
from emovox.serving.onnx_runtime import OnnxRecognizer, OnnxStream
from emovox.training import SequenceSet

pytestmark = pytest.mark.e2e  # trains models on real corpus speakers

FILES = ["03a01Wa", "08a02Na", "16b10Wb", "11b03Nb", "03a05Tc", "08a02Tb"]
TOL = 1e-5

MODELS = {
    "gru_baseline": {"model": {"name": "gru_baseline", "params": {"hidden": 24}}},
    "bigru": {"model": {"name": "bigru", "params": {"hidden": 16, "layers": 2, "pool": "stats"},
                        "ensemble": 2}},
    "cnn1d": {"model": {"name": "cnn1d", "params": {"channels": 16, "layers": 2}}},
    "mp": {"model": {"name": "mp"}},
    "progressive": {"model": {"name": "progressive",
                              "params": {"recogniser_dim": 20, "hidden": 8, "layers": 1}}},
    "emorl": {"model": {"name": "gru_baseline", "params": {"hidden": 24}},
              # a negative latency weight keeps the agent listening: decisions mid-utterance
              "method": {"name": "emorl", "params": {
                  "episodes": 400, "freeze_episodes": 100, "eval_every": 200,
                  "latency_weight": -0.5, "lr": 0.003}}},
    "svm": {"model": {"name": "svm_functionals"}, "method": {"name": "svm"}},
}


def _config(emodb, cache, extra: dict):
    return build_config({
        "name": "onnx_test",
        "corpus": {"format": "emodb", "path": str(emodb), "labels": ["anger", "neutral",
                                                                      "sadness"],
                   "speakers": ["03", "08", "16"]},
        "features": {"name": "mfcc_prosody", "normalise": "global", "stack": 3,
                     "cache": str(cache), "workers": 1},
        "training": {"epochs": 2, "lr": 0.005, "progress": False},
        **extra,
    })


@pytest.fixture(scope="module")
def trained(tmp_path_factory, emodb):
    """Tiny models of every kind, trained on three real Emo-DB speakers (one validates)."""
    root = tmp_path_factory.mktemp("onnx")
    dirs = {}
    for name, extra in MODELS.items():
        if name == "emorl":
            extra = {**extra, "corpus": {"format": "emodb", "path": str(emodb),
                                         "labels": ["anger", "neutral"],
                                         "speakers": ["03", "08", "16"]}}
        dirs[name] = root / name
        train_and_save(_config(emodb, root / "cache", extra), dirs[name], progress=False)
    return dirs


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    root = tmp_path_factory.mktemp("exported")
    return {name: (export_onnx(d, root / name), root / name) for name, d in trained.items()
            if name != "svm"}


@pytest.mark.parametrize("name", ["gru_baseline", "bigru", "cnn1d", "mp", "progressive", "emorl"])
def test_whole_utterance_parity(name, trained, exported, emodb):
    torch.set_num_threads(1)
    rec, onnx = Recognizer(trained[name]), OnnxRecognizer(exported[name][1], threads=1)
    assert exported[name][0]["export_check_max_abs_diff"]["model.onnx"] < TOL
    for file in FILES:
        wave = load_audio(emodb / "wav" / f"{file}.wav")
        assert_features_close(onnx.features(wave), _features(rec, wave))
        want, got = rec.proba(wave), onnx.proba(wave)
        assert np.abs(want - got).max() < TOL, file
        assert want.argmax() == got.argmax()
        mine, theirs = (r.predict_file(emodb / "wav" / f"{file}.wav") for r in (onnx, rec))
        assert mine["label"] == theirs["label"] and mine.keys() == theirs.keys()


def _features(rec: Recognizer, wave: np.ndarray) -> np.ndarray:
    return rec.trained.sequences([rec.trained.extractor(wave)])[0]


def test_ensemble_is_averaged_in_the_graph(exported):
    frontend = exported["bigru"][0]
    assert frontend["ensemble"] == 2 and "step.onnx" not in frontend["graphs"]


def _stream(stream, wave, chunk):
    steps = []
    for start in range(0, len(wave), chunk):
        steps += stream.push(wave[start : start + chunk])
    return steps + stream.finish()


def test_emorl_steps_and_decisions_match_torch(trained, exported, emodb):
    """Audio streamed in chunks through step.onnx: every step's probabilities, action logits and
    stop equal the PyTorch agent's on the same frames, and the decision equals its offline
    greedy one."""
    rec = Recognizer(trained["emorl"])
    onnx = OnnxRecognizer(exported["emorl"][1], threads=1)
    agent = rec.trained.members[0]
    params = rec.config.method.params
    frame_rate = rec.trained.extractor.frame_rate / rec.trained.stack
    step = step_frames(params, frame_rate)
    decided_early = 0
    for file in FILES:
        wave = load_audio(emodb / "wav" / f"{file}.wav")
        feats = _features(rec, wave)
        with torch.no_grad():
            out = agent.steps(torch.from_numpy(feats[None]), torch.tensor([len(feats)]), step)
        proba = torch.softmax(out["class_logits"][0], -1).numpy()
        actions = out["action_logits"][0].numpy()
        stop = actions.argmax(-1) == TERMINATE
        read, exists = out["read"][0].numpy(), out["exists"][0].numpy()
        offline = greedy_decisions(agent, SequenceSet([feats], np.zeros(1, int)), step,
                                   frame_rate, params.max_steps)
        for chunk in (480, 1600, 7000):
            stream = OnnxStream(onnx)
            steps = _stream(stream, wave, chunk)
            assert len(steps) == int(exists.sum()) > 1
            for k, s in enumerate(steps):
                assert np.abs(s.proba - proba[k]).max() < TOL
                assert np.abs(s.actions - actions[k]).max() < TOL
                assert stop_rule(s.proba, None, s.actions) == stop[k]
                assert s.seconds == pytest.approx(read[k] / frame_rate, abs=1e-6)
            decision = stream.decision
            assert stream.decided == int(offline.step[0])
            assert stream.forced == bool(offline.forced[0])
            assert decision.seconds == pytest.approx(float(offline.seconds[0]), abs=1e-6)
            assert np.abs(decision.proba - offline.proba[0]).max() < TOL
        decided_early += not stream.forced
    assert decided_early  # the agent's action, not only the forced end, is exercised


def test_gru_baseline_steps_match_prefixes(trained, exported, emodb):
    """Every step's probabilities equal PyTorch on the prefix read so far; a confidence
    threshold decides at the first step that reaches it."""
    rec = Recognizer(trained["gru_baseline"])
    onnx = OnnxRecognizer(exported["gru_baseline"][1], threads=1)
    net = rec.trained.members[0]
    for file in FILES[:3]:
        rows = _features(rec, load_audio(emodb / "wav" / f"{file}.wav"))
        stream = OnnxStream(onnx, threshold=0.6)
        steps = stream.push_rows(rows, final=True)
        read = [min((k + 1) * stream.step_frames, len(rows)) for k in range(len(steps))]
        assert read[-1] == len(rows)
        wants = []
        with torch.no_grad():
            for step, n in zip(steps, read, strict=True):
                wants.append(torch.softmax(net(torch.from_numpy(rows[None, :n]),
                                               torch.tensor([n])), -1)[0].numpy())
                assert np.abs(step.proba - wants[-1]).max() < TOL
                assert step.actions is None  # no agent: the threshold decides
        first = next((k for k, w in enumerate(wants) if w.max() >= 0.6), len(wants) - 1)
        assert stream.decided == first
        assert stream.forced == (wants[first].max() < 0.6)


def test_wrong_shapes_are_one_line_errors(exported):
    onnx = OnnxRecognizer(exported["emorl"][1])
    dim = exported["emorl"][0]["input_dim"]
    with pytest.raises(EmovoxError, match=r"model.onnx: input 'features' must have shape "
                       rf"\[batch, frames, {dim}\], got \[1, 10, {dim + 1}\]"):
        onnx.run(np.zeros((10, dim + 1), np.float32))
    with pytest.raises(EmovoxError, match="empty"):
        onnx.run(np.zeros((0, dim), np.float32))
    stream = OnnxStream(onnx)
    with pytest.raises(EmovoxError, match="step.onnx: input 'frames'"):
        stream.push_rows(np.zeros((40, dim - 3), np.float32))


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "emovox.cli", "-q", *args],
                          capture_output=True, text=True, timeout=300)


def test_cli_export_and_predict(trained, tmp_path, emodb):
    out = tmp_path / "exp"
    proc = _cli("export", str(trained["emorl"]), "--format", "onnx", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    line = json.loads(proc.stdout)
    assert line["graphs"] == ["model.onnx", "step.onnx"] and line["streaming"]
    assert max(line["max_abs_diff"].values()) < TOL
    wavs = [str(emodb / "wav" / f"{f}.wav") for f in FILES[:2]]
    onnx = _cli("predict", *wavs, "--model", str(out), "--runtime", "onnx")
    torch_ = _cli("predict", *wavs, "--model", str(trained["emorl"]))
    assert onnx.returncode == torch_.returncode == 0, onnx.stderr
    for a, b in zip(onnx.stdout.splitlines(), torch_.stdout.splitlines(), strict=True):
        a, b = json.loads(a), json.loads(b)
        assert a["label"] == b["label"]
        assert max(abs(a["probabilities"][k] - b["probabilities"][k]) for k in a["probabilities"]) \
            <= TOL + 1e-6  # onnxruntime vs PyTorch, both rounded to 6 decimals
    # a model directory where an export is expected
    proc = _cli("predict", wavs[0], "--model", str(trained["emorl"]), "--runtime", "onnx")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "emovox export" in proc.stderr


def test_cli_bad_exports(trained, tmp_path, emodb):
    proc = _cli("export", str(trained["svm"]), "--out", str(tmp_path / "svm"))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "svm_functionals" in proc.stderr and "cannot be exported" in proc.stderr
    corrupt = tmp_path / "corrupt"
    shutil.copytree(trained["gru_baseline"], corrupt)
    (corrupt / "weights.pt").write_bytes(b"not a checkpoint")
    proc = _cli("export", str(corrupt), "--out", str(tmp_path / "c"))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "weights.pt: damaged" in proc.stderr
    for change, says in (({"format_version": 0}, "format 0"), ({"input_dim": None}, "input_dim")):
        older = tmp_path / f"older{len(says)}"
        shutil.copytree(trained["gru_baseline"], older)
        meta = json.loads((older / "model.json").read_text())
        meta.update(change)
        if change.get("input_dim", 0) is None:
            del meta["input_dim"]
        (older / "model.json").write_text(json.dumps(meta))
        proc = _cli("export", str(older), "--out", str(tmp_path / "o"))
        assert proc.returncode == 2 and says in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    # an export whose front end no longer matches its graph: caught before any audio
    bent = tmp_path / "bent"
    export_onnx(trained["gru_baseline"], bent)
    frontend = json.loads((bent / "frontend.json").read_text())
    frontend["stack"] = 1
    (bent / "frontend.json").write_text(json.dumps(frontend))
    proc = _cli("predict", str(emodb / "wav" / "03a01Wa.wav"), "--model", str(bent),
                "--runtime", "onnx")
    assert proc.returncode == 2 and "features per frame" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
