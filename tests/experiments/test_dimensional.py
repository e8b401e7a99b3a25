"""Arousal/valence regression: targets, CCC loss, the experiment and its report; studies."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from emovox.corpora import Utterance
from emovox.corpora.dimensions import DERIVED, dimension_targets
from emovox.errors import CorpusError
from emovox.evaluation.metrics import ccc
from emovox.experiments.config import load_config
from emovox.experiments.dataset import load_dataset
from emovox.experiments.runner import run_experiment
from emovox.experiments.study import run_study
from emovox.training import AugmentedSet, SequenceSet
from emovox.training.tasks import ccc_loss


def test_derived_targets_and_missing_annotation():
    utts = [Utterance(id=f"u{k}", path="x", speaker="s1", label=label)
            for k, label in enumerate(sorted(DERIVED) * 2)]
    targets = dimension_targets(utts, ["arousal", "valence"], derived=True)
    for utt, (arousal, valence) in zip(utts, targets, strict=True):
        assert (arousal, valence) == DERIVED[utt.label][:2]
    assert DERIVED["anger"][0] > 3 > DERIVED["sadness"][0]  # high vs low arousal
    assert DERIVED["happiness"][1] > 3 > DERIVED["anger"][1]  # positive vs negative valence
    with pytest.raises(CorpusError, match="no arousal annotation"):
        dimension_targets(utts, ["arousal"], derived=False)
    with pytest.raises(CorpusError, match="unknown dimension"):
        dimension_targets(utts, ["potency"], derived=True)


def test_ccc_loss_agrees_with_metric():
    rng = np.random.default_rng(0)
    t = rng.normal(size=(50, 2))
    p = t * 0.5 + rng.normal(size=(50, 2)) * 0.3 + 0.2
    loss = float(ccc_loss(torch.tensor(p), torch.tensor(t)))
    expected = 1 - np.mean([ccc(t[:, d], p[:, d]) for d in range(2)])
    assert loss == pytest.approx(expected, rel=1e-5)
    assert float(ccc_loss(torch.tensor(t), torch.tensor(t))) == pytest.approx(0.0, abs=1e-6)


SMALL = ["corpus.speakers=['03', '08', '09']", "corpus.labels=[anger, neutral, sadness]",
         "features.name=mfcc_prosody", "features.stack=3", "features.workers=1",
         "model.params={hidden: 16}", "training.epochs=4", "training.batch_size=16",
         "training.lr=0.005", "protocol.folds=[0]"]


def small_config(emodb, tmp_path, *extra: str):
    return load_config(None, [f"corpus.path={emodb}", f"features.cache={tmp_path / 'cache'}",
                              *SMALL, *extra])


@pytest.mark.e2e
def test_dimensional_experiment_writes_ccc_and_violins(emodb, tmp_path):
    config = small_config(emodb, tmp_path, "task.kind=dimensional", "task.derived=true",
                          "task.loss=ccc", "training.select_on=ccc")
    metrics = run_experiment(config, tmp_path / "out", progress=False)
    for key in ("arousal_ccc", "arousal_pearson", "arousal_mae", "valence_ccc", "ccc"):
        assert set(metrics[key]) == {"mean", "std", "values"}
    assert metrics["arousal_mae"]["mean"] < 2.0 and "derived" in metrics["targets"]
    assert (tmp_path / "out" / "violin.png").stat().st_size > 1000
    header = (tmp_path / "out" / "predictions.csv").read_text().splitlines()[0]
    assert header == ("id,speaker,seed,fold,label,true_arousal,true_valence,pred_arousal,"
                      "pred_valence")


@pytest.mark.e2e
def test_augmented_training_set_only(emodb, noise_dir, tmp_path):
    config = small_config(emodb, tmp_path, "augment.copies=2",
                          f"augment.transforms={{gain: {{}}, noise: {{directory: {noise_dir}}}}}")
    dataset = load_dataset(config, progress=False)
    assert len(dataset.augmented) == 2
    train = dataset.split(("03", "08"))
    normaliser = dataset.fit_normaliser(train, "global")
    training = dataset.training_set(train, normaliser)
    assert isinstance(training, AugmentedSet) and len(training.versions) == 3
    assert all(len(v) == len(train) for v in training.versions)
    assert not np.allclose(training.versions[0].feats[0], training.versions[1].feats[0])
    clean = dataset.sequences(train, normaliser)  # validation/test path: never augmented
    assert isinstance(clean, SequenceSet)
    assert all(np.array_equal(c, v) for c, v in zip(clean.feats, training.versions[0].feats,
                                                    strict=True))

    def drawn(epoch: int) -> int:  # which version example 0 is read from in this epoch
        feats = training.for_epoch(epoch, 0).feats[0]
        return next(k for k, v in enumerate(training.versions)
                    if np.array_equal(v.feats[0], feats))

    draws = {drawn(e) for e in range(12)}
    assert len(draws) > 1  # each epoch draws a version afresh


@pytest.mark.e2e
def test_study_runs_variants_with_test_set(emodb, tmp_path):
    study = {
        "name": "tiny",
        "base": {
            "corpus": {"format": "emodb", "path": str(emodb), "speakers": ["03", "08", "09"],
                       "labels": ["anger", "neutral", "sadness"]},
            "features": {"name": "mfcc_prosody", "stack": 3, "workers": 1,
                         "cache": str(tmp_path / "cache")},
            "protocol": {"folds": [0]},
            "model": {"name": "bigru", "params": {"hidden": 8}},
            "training": {"epochs": 2, "batch_size": 16},
            "augment": {"copies": 0, "transforms": {"gain": {}}},
            "test_sets": {"robot": {"path": str(tmp_path / "robot"), "channel": "robot",
                                    "channel_params": {"rooms": 4}}},
        },
        "variants": {"clean": {}, "augmented": {"augment.copies": 1}},
        "tables": {"Table I": ["clean", "augmented"]},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    summary = run_study(path, tmp_path / "out", progress=False)
    assert set(summary["variants"]) == {"clean", "augmented"}
    assert set(summary["variants"]["clean"]) == {"clean", "robot"}
    table = (tmp_path / "out" / "study.md").read_text()
    assert "## Table I" in table and "uar drop (robot)" in table
    robot = json.loads((tmp_path / "out" / "clean" / "test_robot" / "metrics.json").read_text())
    assert robot["test_set"] == "robot" and (tmp_path / "out" / "clean" / "test_robot" /
                                             "confusion.png").exists()
    assert len(list((tmp_path / "robot" / "wav").iterdir())) > 30  # three speakers degraded


def test_resuming_with_another_config_is_refused(synthetic_corpus, tmp_path):
    from emovox.errors import ConfigError

    config = load_config(None, ["corpus.format=csv", f"corpus.path={synthetic_corpus}",
                                "features.name=mfcc_prosody", "features.cache=null",
                                "features.workers=1", "model.params={hidden: 8}",
                                "training.epochs=1", "protocol.folds=[0]"])
    run_experiment(config, tmp_path / "out", progress=False)
    config.training.progress = False  # run settings may differ
    run_experiment(config, tmp_path / "out", progress=False)
    config.training.lr = 0.01
    with pytest.raises(ConfigError, match="differs in training"):
        run_experiment(config, tmp_path / "out", progress=False)
