from __future__ import annotations

import numpy as np
import pytest
import torch

from emovox.models import build_model
from emovox.models.base import masked_mean
from emovox.training import SequenceSet, TrainConfig, fit, predict
from emovox.training.data import epoch_order


def toy_data(seed=0, n=48):
    """Two classes whose frames differ in mean, with variable lengths."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    feats = [rng.normal(loc=0.8 * c, size=(int(rng.integers(5, 30)), 6)).astype(np.float32)
             for c in y]
    return SequenceSet(feats, y)


CFG = dict(epochs=6, batch_size=8, lr=0.01, progress=False, patience=100)


@pytest.mark.parametrize("name", ["gru_baseline", "bigru", "cnn1d"])
def test_models_learn_and_ignore_padding(name):
    torch.manual_seed(0)
    model = build_model(name, 6, 2, **({"hidden": 16} if "gru" in name else {"channels": 16}))
    train, valid = toy_data(0), toy_data(1)
    fit(model, train, valid, TrainConfig(**CFG), seed=0)
    acc = np.mean(predict(model, valid).argmax(1) == valid.targets)
    assert acc > 0.8
    # Padding must not change a sequence's output.
    model.eval()
    x = torch.from_numpy(valid.feats[0])[None]
    alone = model(x, torch.tensor([len(x[0])]))
    padded = torch.cat([x, torch.full((1, 7, 6), 9.0)], dim=1)
    np.testing.assert_allclose(alone.detach(), model(padded, torch.tensor([len(x[0])])).detach(),
                               atol=1e-5)


def test_masked_mean_ignores_padding():
    h = torch.tensor([[[1.0], [3.0], [100.0]]])
    assert masked_mean(h, torch.tensor([2])).item() == pytest.approx(2.0)


def test_same_seed_same_weights_and_resume_after_kill(tmp_path):
    train, valid = toy_data(0), toy_data(1)

    def run(epochs, checkpoint=None):
        torch.manual_seed(3)
        model = build_model("bigru", 6, 2, hidden=8)
        fit(model, train, valid, TrainConfig(**{**CFG, "epochs": epochs}), 3, checkpoint)
        return [p.detach().clone() for p in model.parameters()]

    full = run(6)
    again = run(6)
    assert all(torch.equal(a, b) for a, b in zip(full, again, strict=True))
    # An interrupted run (stopped after 3 epochs, checkpoint left behind) resumes to the same end.
    ckpt = tmp_path / "ckpt.pt"
    run(3, ckpt)
    assert ckpt.exists()
    resumed = run(6, ckpt)
    assert all(torch.equal(a, b) for a, b in zip(full, resumed, strict=True))


def test_sortagrad_and_balanced_order():
    data = toy_data(0)
    first = epoch_order(data, 0, seed=1, sortagrad=True, balanced=False)
    assert list(data.lengths[first]) == sorted(data.lengths)
    later = epoch_order(data, 1, seed=1, sortagrad=True, balanced=False)
    assert sorted(later) == list(range(len(data)))
    skewed = SequenceSet(data.feats, np.array([0] * 44 + [1] * 4))
    drawn = np.concatenate([epoch_order(skewed, e, 0, False, True) for e in range(20)])
    assert 0.35 < np.mean(skewed.targets[drawn]) < 0.65
