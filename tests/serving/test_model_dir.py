"""Model directories: what `emovox train` writes, what `emovox predict` reads, and one-line
errors for damaged, incomplete or old-format directories."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from emovox.cli import main


@pytest.fixture(scope="module")
def model_dir(synthetic_corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("model")
    config = {"name": "tiny", "corpus": {"format": "csv", "path": str(synthetic_corpus)},
              "features": {"name": "mfcc_prosody", "normalise": "global", "stack": 3,
                           "cache": None, "workers": 1},
              "model": {"name": "gru_baseline", "params": {"hidden": 8}},
              "training": {"epochs": 2, "lr": 0.01, "progress": False}}
    (root / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["-q", "train", str(root / "c.yaml"), "--out", str(root / "m")]) == 0
    return root / "m"


def test_train_writes_a_versioned_directory_that_predicts(model_dir, synthetic_corpus, capsys):
    meta = json.loads((model_dir / "model.json").read_text())
    assert meta["format_version"] == 1 and meta["method"] == "supervised"
    assert meta["labels"] == ["high", "low"] and meta["stack"] == 3
    wav = synthetic_corpus.parent / "s1_low_0.wav"
    capsys.readouterr()
    assert main(["predict", str(wav), "--model", str(model_dir)]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["label"] in ("high", "low") and sum(line["probabilities"].values()) == \
        pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "normaliser.npz").unlink(), "normaliser.npz: missing"),
    (lambda d: (d / "model.json").write_text("{not json"), "model.json: not valid JSON"),
    (lambda d: (d / "weights.pt").write_bytes((d / "weights.pt").read_bytes()[:200]),
     "weights.pt: damaged or cut off"),
    (lambda d: (d / "model.json").write_text(json.dumps(
        {k: v for k, v in json.loads((d / "model.json").read_text()).items()
         if k != "format_version"})), "model directory format 0"),
    (lambda d: (d / "model.json").unlink(), "not a model directory (no model.json)"),
])
def test_damaged_model_directory_is_one_line_exit_2(model_dir, synthetic_corpus, tmp_path,
                                                     damage, message, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    damage(broken)
    capsys.readouterr()
    code = main(["predict", str(synthetic_corpus.parent / "s1_low_0.wav"), "--model",
                 str(broken)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and "\n" not in err and "Traceback" not in err
