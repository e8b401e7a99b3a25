"""A Dataset holds no frames: sequences are normalised as they are read from the cache, and a
model that reads only the time mean of its input trains on each utterance's cached mean, with
the same results as on the frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emovox.experiments.config import load_config
from emovox.experiments.dataset import load_dataset
from emovox.experiments.methods.supervised import reads_pool
from emovox.features.base import stack_frames
from emovox.models import build_model
from emovox.training import fit, predict


def _dataset(corpus, tmp_path, *extra: str):
    config = load_config(None, [
        "corpus.format=csv", f"corpus.path={corpus}", f"features.cache={tmp_path / 'cache'}",
        "features.name=mfcc_pitch", "features.normalise=speaker", "features.workers=1",
        "training.epochs=6", "training.batch_size=8", "training.lr=0.01",
        "training.progress=false", *extra])
    return config, load_dataset(config, progress=False)


def test_sequences_are_the_normalised_frames_read_when_asked_for(synthetic_corpus, tmp_path):
    _, dataset = _dataset(synthetic_corpus, tmp_path, "features.stack=2")
    train = dataset.split(("s1", "s2", "s3"))
    normaliser = dataset.fit_normaliser(train, "speaker")
    data = dataset.sequences(train, normaliser)
    speakers = [u.speaker for u in train]
    eager = normaliser.apply([np.asarray(dataset.feats[u.id]) for u in train], speakers)
    assert not data.pooled and len(data) == len(train)
    for i, frames in enumerate(eager):
        np.testing.assert_allclose(data.feats[i], stack_frames(frames, 2), atol=1e-5)
        assert data.lengths[i] == len(stack_frames(frames, 2))


@pytest.mark.parametrize(("model", "params"), [("mp", {}), ("layer_mix", {"n_layers": 3})])
def test_a_mean_reading_model_trains_on_cached_means_as_on_frames(synthetic_corpus, tmp_path,
                                                                  model, params):
    config, dataset = _dataset(synthetic_corpus, tmp_path)
    train, test = dataset.split(("s1", "s2", "s3")), dataset.split(("s4",))
    normaliser = dataset.fit_normaliser(train, "speaker")
    probe = build_model(model, dataset.input_dim, 2, **params)
    assert reads_pool(dataset, probe)
    outputs = {}
    for pooled in (False, True):
        train_set = dataset.training_set(train, normaliser, pooled)
        test_set = dataset.sequences(test, normaliser, pooled)
        assert train_set.pooled == pooled
        np.testing.assert_array_equal(train_set.lengths, [dataset.feats.length(u.id)
                                                          for u in train])
        torch.manual_seed(0)
        net = build_model(model, dataset.input_dim, 2, **params)
        fit(net, train_set, test_set, config.training, seed=0)
        outputs[pooled] = predict(net, test_set)
    np.testing.assert_allclose(outputs[True], outputs[False], atol=1e-4)
    np.testing.assert_array_equal(outputs[True].argmax(1), outputs[False].argmax(1))


def test_frame_reading_models_and_stacked_frames_get_frames(synthetic_corpus, tmp_path):
    _, dataset = _dataset(synthetic_corpus, tmp_path)
    assert not reads_pool(dataset, build_model("bigru", dataset.input_dim, 2, hidden=8))
    assert not reads_pool(dataset, build_model("layer_mix", dataset.input_dim, 2, n_layers=3,
                                               pool="stats"))
    dataset.stack = 2
    assert not reads_pool(dataset, build_model("mp", dataset.input_dim, 2))
