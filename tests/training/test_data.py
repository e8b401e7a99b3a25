"""Sets of sequences: augmented versions drawn per epoch, pooled sets batched one step each."""

from __future__ import annotations

import numpy as np

from emovox.training import AugmentedSet, SequenceSet


def test_each_epoch_draws_one_version_per_example_with_its_length():
    rng = np.random.default_rng(0)
    targets = np.array([0, 1, 0, 1, 1])
    versions = [SequenceSet([rng.normal(size=(3 + i + 4 * v, 2)).astype(np.float32)
                             for i in range(5)], targets) for v in range(3)]
    augmented = AugmentedSet(versions)
    seen = set()
    for epoch in range(6):
        data = augmented.for_epoch(epoch, seed=1)
        again = augmented.for_epoch(epoch, seed=1)
        for i in range(5):
            assert len(data.feats[i]) == data.lengths[i]
            np.testing.assert_array_equal(data.feats[i], again.feats[i])
            seen.add(next(v for v in range(3) if versions[v].feats[i] is data.feats[i]))
        x, lengths, y = data.batch(np.array([4, 0]))
        assert x.shape == (2, max(data.lengths[[4, 0]]), 2)
        np.testing.assert_array_equal(y.numpy(), targets[[4, 0]])
    assert seen == {0, 1, 2}


def test_a_pooled_set_batches_one_step_each_but_orders_by_frame_count():
    means = np.arange(12, dtype=np.float32).reshape(4, 1, 3)
    data = SequenceSet(means, np.array([0, 1, 1, 0]), lengths=np.array([50, 7, 90, 20]),
                       pooled=True)
    x, lengths, _ = data.batch(np.array([2, 1]))
    assert x.shape == (2, 1, 3) and lengths.tolist() == [1, 1]
    np.testing.assert_array_equal(x[:, 0].numpy(), means[[2, 1], 0])
    assert data.lengths.tolist() == [50, 7, 90, 20]
