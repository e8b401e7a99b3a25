"""End to end through the command line, on three real Emo-DB speakers."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import write_tone

from emovox.cli import main
from emovox.corpora import load_corpus

pytestmark = pytest.mark.e2e  # trains models on real corpus speakers

SMOKE = {
    "name": "smoke",
    "corpus": {"format": "emodb", "path": None, "speakers": ["03", "08", "09"],
               "labels": ["anger", "neutral", "sadness"]},
    "features": {"name": "mfcc_prosody", "normalise": "speaker", "stack": 3, "cache": None,
                 "workers": 1},
    "protocol": {"name": "loso", "seeds": [0]},
    "model": {"name": "gru_baseline", "params": {"hidden": 16}},
    "training": {"epochs": 4, "batch_size": 16, "lr": 0.005},
    "workers": 1,
}


@pytest.fixture()
def smoke_config(tmp_path, emodb):
    config = {**SMOKE, "corpus": {**SMOKE["corpus"], "path": str(emodb)},
              "features": {**SMOKE["features"], "cache": str(tmp_path / "cache")}}
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``emovox -q ARGS`` in this process (fast; the kill test below needs a real process)."""
    out, err = io.StringIO(), io.StringIO()
    before = os.getcwd()
    try:
        if cwd:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(["-q", *args])
            except SystemExit as exc:  # argparse: --help, usage errors
                code = exc.code
    finally:
        os.chdir(before)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def test_smoke_experiment_outputs(smoke_config, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("experiment", str(smoke_config), "--out", str(out), "training.epochs=3")
    assert proc.returncode == 0, proc.stderr
    line = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "leave-one-speaker-out" in line["protocol"] and 0 <= line["uar"] <= 1
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["protocol"] == "loso" and metrics["n_folds"] == 3 and metrics["n_seeds"] == 1
    for key in ("uar", "wa", "macro_f1"):
        assert set(metrics[key]) == {"mean", "std", "values"} and len(metrics[key]["values"]) == 3
    assert metrics["uar"]["mean"] > 0.5  # three well-separated emotions: far above chance (1/3)
    folds = json.loads((out / "folds.json").read_text())["seeds"]["0"]
    assert {f["test"][0] for f in folds} == {"03", "08", "09"}
    header = (out / "predictions.csv").read_text().splitlines()[0]
    assert header == "id,speaker,seed,fold,true,pred,p_anger,p_neutral,p_sadness"
    assert (out / "confusion.png").stat().st_size > 1000
    report = (out / "report.md").read_text()
    assert "leave-one-speaker-out" in report and "emovox experiment" in report
    assert yaml.safe_load((out / "config.yaml").read_text())["training"]["epochs"] == 3


def test_same_seed_same_metrics_and_resume_after_kill(smoke_config, tmp_path):
    ref = tmp_path / "ref"
    assert run_cli("experiment", str(smoke_config), "--out", str(ref)).returncode == 0
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "emovox.cli", "-q", "experiment",
                             str(smoke_config), "--out", str(killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not list(killed.glob("runs/seed0/fold*/result.json")):
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = list(killed.glob("runs/seed0/fold*/result.json"))
    assert 1 <= len(done) < 3 or (killed / "metrics.json").exists() is False
    assert run_cli("experiment", str(smoke_config), "--out", str(killed)).returncode == 0
    a = json.loads((ref / "metrics.json").read_text())
    b = json.loads((killed / "metrics.json").read_text())
    assert a["uar"]["values"] == b["uar"]["values"]
    assert (ref / "predictions.csv").read_text() == (killed / "predictions.csv").read_text()


def test_train_then_predict(smoke_config, tmp_path, emodb):
    model_dir = tmp_path / "model"
    proc = run_cli("train", str(smoke_config), "--out", str(model_dir))
    assert proc.returncode == 0, proc.stderr
    assert {"model.json", "weights.pt", "normaliser.npz"} <= {p.name for p in model_dir.iterdir()}
    silent = tmp_path / "silent.wav"
    write_tone(silent, amplitude=0.0)
    files = [str(emodb / "wav" / "03a01Wa.wav"), str(emodb / "wav" / "10a01Nb.wav"), str(silent)]
    proc = run_cli("predict", *files, "--model", str(model_dir))
    assert proc.returncode == 2  # one input was bad; the others still got their lines
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    assert lines[0]["label"] in {"anger", "neutral", "sadness"}
    assert sum(lines[0]["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert "silent.wav: silent audio" in lines[2]["error"]
    assert "silent.wav" in proc.stderr and "Traceback" not in proc.stderr


def test_corpus_info(emodb, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative corpus and manifest paths, in different folders
    corpus = os.path.relpath(emodb, tmp_path)
    assert main(["corpus", "info", corpus, "--format", "emodb",
                 "--manifest", "out/m.jsonl"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["utterances"] == 535 and info["speakers"] == 10
    assert 0.28 < info["hours"] < 0.31 and info["labels"]["anger"] == 127
    assert len((tmp_path / "out" / "m.jsonl").read_text().splitlines()) == 535
    monkeypatch.chdir(tmp_path / "out")  # its paths are relative to the manifest's folder
    reread = load_corpus("manifest", "m.jsonl")
    assert len(reread) == 535 and all(Path(u.path).exists() for u in reread)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["experiment", "missing.yaml"], "missing.yaml: config file not found"),
        (["experiment", "{bad}", "model.name=transformer9"], "unknown model 'transformer9'"),
        (["experiment", "{bad}", "training.lr=fast"], "training.lr: expected float"),
        (["experiment", "{bad}", "trainin.lr=1"], "unknown key(s) ['trainin']"),
        (["experiment", "{bad}", "corpus.path=/nonexistent"], "/nonexistent: corpus directory"),
        (["predict", "x.wav", "--model", "/nonexistent"], "not a model directory"),
        (["corpus", "info", "/nonexistent", "--format", "emodb"], "not found"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(args, message, smoke_config, tmp_path):
    args = [a.replace("{bad}", str(smoke_config)) for a in args]
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_help():
    proc = run_cli("--help")
    assert proc.returncode == 0 and "experiment" in proc.stdout
    assert Path(__file__).resolve().parents[2].joinpath("README.md").exists()
