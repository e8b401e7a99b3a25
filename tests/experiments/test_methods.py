"""The Method interface: a new method is one class plus its registration, and runs through
``emovox experiment`` without the runner knowing its name; configs are checked at load time."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from emovox.cli import main
from emovox.errors import ConfigError
from emovox.experiments.config import build_config
from emovox.experiments.methods.base import METHODS, Method


@METHODS.register
class NearestMean(Method):
    """Toy method: the class whose mean feature vector is nearest (for the interface test)."""

    name = "toy_nearest_mean"

    @dataclass
    class Params:
        scale: float = 1.0

    def fit(self, dataset, split, run):
        vectors = {u.id: dataset.feats[u.id].mean(0) for u in dataset.manifest}
        targets = dataset.targets(split.train)
        means = np.stack([np.mean([vectors[u.id] for u, t in zip(split.train, targets,
                                                                 strict=True) if t == c], 0)
                          for c in range(len(dataset.labels))])
        return (means, vectors), {"classes": len(means)}

    def outputs(self, trained, dataset, manifest):
        means, vectors = trained
        x = np.stack([vectors[u.id] for u in manifest])
        d = -self.params.scale * ((x[:, None] - means[None]) ** 2).sum(-1)
        e = np.exp(d - d.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    def extra(self, trained, dataset, split):
        return {"n_train": len(split.train)}

    def report(self, results, out):
        n = [r.extra["n_train"] for r in results]
        return {"toy": {"train_sizes": n}}, "## Toy\n\nTrained on " + str(n) + " utterances."


def _config(corpus: Path, tmp_path: Path, **extra) -> Path:
    data = {"name": "toy", "corpus": {"format": "csv", "path": str(corpus)},
            "features": {"name": "mfcc_pitch", "normalise": "global",
                         "cache": str(tmp_path / "cache"), "workers": 1},
            "method": {"name": "toy_nearest_mean", "params": {"scale": 0.1}}, **extra}
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_registered_toy_method_runs_through_emovox_experiment(synthetic_corpus, tmp_path,
                                                                capsys):
    out = tmp_path / "out"
    assert main(["-q", "experiment", str(_config(synthetic_corpus, tmp_path)), "--out",
                 str(out)]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["uar"] > 0.9  # tones of 220 vs 880 Hz: trivially separable
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "toy_nearest_mean" and metrics["n_folds"] == 4
    assert metrics["toy"]["train_sizes"] == [16, 16, 16, 16]
    assert "## Toy" in (out / "report.md").read_text()
    result = json.loads((out / "runs" / "seed0" / "fold0" / "result.json").read_text())
    assert result["extra"] == {"n_train": 16} and len(result["test"]["predictions"]) == 8


@pytest.mark.parametrize("override, message", [
    ({"model": {"name": "bigru", "params": {"hiden": 8}}},
     "model.params: unknown key(s) ['hiden'] for model 'bigru'"),
    ({"features": {"name": "mfcc_pitch", "params": {"n_mfc": 3}}},
     "features.params: unknown key(s) ['n_mfc'] for feature extractor 'mfcc_pitch'"),
    ({"features": {"name": "mfcc_pitch", "params": {"hop_ms": 0}}},
     "features.params.hop_ms: 0.0 out of range: must be > 0"),
    ({"features": {"name": "smile_functionals", "params": {"feature_set": "GeMAPS"}}},
     "features.params.feature_set: 'GeMAPS' is not one of ['eGeMAPSv02', 'ComParE_2016']"),
    ({"model": {"name": "bigru", "params": {"pool": "median"}}},
     "model.params.pool: 'median' is not one of ['mean', 'stats', 'max']"),
    ({"model": {"name": "bigru", "params": {"hidden": "wide"}}},
     "model.params.hidden: expected int, got 'wide'"),
    ({"model": {"name": "progressive"}}, "model.params: missing key(s) ['recogniser_dim']"),
    ({"augment": {"transforms": {"gain": {"p": "often"}}}}, "augment.transforms.gain.p"),
    ({"task": {"kind": "ordinal"}}, "task.kind: 'ordinal' is not one of"),
    ({"test_sets": {"robot": {"path": "x", "channel": "robot",
                              "channel_params": {"rooms": "many"}}}},
     "test_sets.robot.channel_params.rooms: expected int"),
    ({"method": {"name": "toy_nearest_mean", "params": {"scal": 1}}},
     "method.params: unknown key(s) ['scal']"),
    ({"method": {"name": "emorl", "params": {"episodes": "many"}}}, "method.params.episodes"),
    ({"augment": {"transforms": {"gain": {"min_db": 1}}}},
     "augment.transforms.gain: unknown key(s) ['min_db']"),
    ({"training": {"epochs": 0}}, "training.epochs: 0 out of range: must be >= 1"),
    ({"training": {"epochs": -5}}, "training.epochs: -5 out of range"),
    ({"training": {"batch_size": 0}}, "training.batch_size: 0 out of range"),
    ({"training": {"lr": -0.001}}, "training.lr: -0.001 out of range: must be > 0"),
    ({"protocol": {"seeds": []}}, "protocol.seeds: must name at least one seed"),
    ({"features": {"name": "mfcc_pitch", "stack": -1}}, "features.stack: -1 out of range"),
    ({"model": {"name": "bigru", "params": {"hidden": -4}}}, "model.params for model 'bigru'"),
    ({"method": {"name": "no_such_method"}}, "unknown method 'no_such_method'"),
    ({"corpus": {"format": "csv", "path": "x", "options": {"merge": 1}}},
     "corpus.options: unknown key(s) ['merge']"),
])
def test_bad_component_settings_fail_at_load_in_under_a_second(override, message):
    data = {"method": {"name": "toy_nearest_mean"}, **override}
    start = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        build_config(data)
    assert time.perf_counter() - start < 1.0
    assert message in str(info.value) and "\n" not in str(info.value)


def test_cli_reports_bad_config_in_one_line_exit_2(synthetic_corpus, tmp_path, capsys):
    config = _config(synthetic_corpus, tmp_path)
    assert main(["-q", "experiment", str(config), "training.epochs=-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "training.epochs" in err
    assert main(["-q", "experiment", str(config), "--out", str(tmp_path / "o"),
                 "protocol.folds=[99]"]) == 2
    assert "protocol.folds: [99] out of range" in capsys.readouterr().err


def test_emovox_list_prints_every_registry(capsys):
    assert main(["list"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    kinds = {r["kind"] for r in rows}
    assert kinds == {"methods", "models", "features", "corpora", "protocols", "augmentations",
                     "channels"}
    assert {"supervised", "svm", "emorl"} <= {r["name"] for r in rows if r["kind"] == "methods"}
    assert all(r["description"] for r in rows)


def _tiny_emorl(corpus: Path, tmp_path: Path) -> dict:
    """EmoRL on the synthetic corpus in seconds: a GRU of 8 units, 2 epochs, 40 episodes."""
    return {"corpus": {"format": "csv", "path": str(corpus)},
            "features": {"name": "mfcc_pitch", "normalise": "global", "workers": 1,
                         "cache": str(tmp_path / "cache")},
            "protocol": {"name": "loso", "seeds": [0], "folds": [0, 1]},
            "model": {"name": "gru_baseline", "params": {"hidden": 8}},
            "training": {"epochs": 2, "batch_size": 8, "progress": False},
            "method": {"name": "emorl", "params": {"episodes": 40, "freeze_episodes": 10,
                                                   "step_ms": 300}},
            "workers": 1}


def test_emovox_train_writes_an_emorl_model_into_a_shallow_out(synthetic_corpus, tmp_path,
                                                               capsys, monkeypatch):
    """The README's ``emovox train configs/emodb_emorl.yaml --out DIR`` with a DIR one level
    deep: the method is told where it runs, nothing is derived from how deep DIR is."""
    path = tmp_path / "emorl.yaml"
    path.write_text(yaml.safe_dump(_tiny_emorl(synthetic_corpus, tmp_path)))
    monkeypatch.chdir(tmp_path)
    assert main(["-q", "train", str(path), "--out", "m"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["model_dir"] == "m"
    out = tmp_path / "m"
    assert json.loads((out / "model.json").read_text())["method"] == "emorl"
    assert not list(out.rglob("*checkpoint*.pt"))  # the baseline's checkpoint went too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "emorl.yaml", "m"]


def test_study_variants_that_change_only_the_reward_share_one_baseline(synthetic_corpus,
                                                                        tmp_path):
    """EmoRL variants differing only in the agent's reward train one GRU per fold, not one
    each; a variant that changes the GRU's training gets its own."""
    base = _tiny_emorl(synthetic_corpus, tmp_path)
    study = {"name": "share", "base": base, "variants": {
        "a": {}, "b": {"method.params.latency_weight": 0.2},
        "c": {"training.epochs": 3}}}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    out = tmp_path / "out"
    assert main(["-q", "study", str(path), "--out", str(out)]) == 0
    assert len(list((out / "shared" / "baselines").iterdir())) == 2 * 2  # folds × {a=b, c}
    results = {v: [json.loads((out / v / "runs" / "seed0" / f"fold{k}" / "result.json")
                           .read_text()) for k in (0, 1)] for v in "abc"}
    baseline = {v: [(r["training"]["baseline"], r["extra"]["early"]["gru_full"])
                    for r in rs] for v, rs in results.items()}
    assert baseline["a"] == baseline["b"] != baseline["c"]


def test_a_run_written_before_a_setting_existed_resumes(synthetic_corpus, tmp_path):
    """A finished run whose config.yaml lacks a setting added since (here protocol.train_only)
    resumes when the setting keeps its default, and is still refused when a real one differs."""
    config, out = _config(synthetic_corpus, tmp_path), tmp_path / "out"
    assert main(["-q", "experiment", str(config), "--out", str(out)]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    del saved["protocol"]["train_only"]
    (out / "config.yaml").write_text(yaml.safe_dump(saved))
    assert main(["-q", "experiment", str(config), "--out", str(out)]) == 0
    assert main(["-q", "experiment", str(config), "--out", str(out),
                 "method.params.scale=0.5"]) == 2
