"""The ``prefix`` augmentation: the first part of an utterance, as a stream hears it early."""

from __future__ import annotations

import numpy as np
import pytest

from emovox.augment import TRANSFORMS, Prefix, build_augmentation
from emovox.errors import ConfigError


def test_keeps_a_prefix_within_the_bounds():
    wave = np.arange(32_000, dtype=np.float32)  # 2 s
    t = Prefix(min_fraction=0.2, max_fraction=0.6, min_s=0.0)
    lengths = []
    for seed in range(200):
        out = t(wave, np.random.default_rng(seed))
        assert np.array_equal(out, wave[: len(out)])  # the start, untouched
        lengths.append(len(out))
    assert min(lengths) >= 0.2 * 32_000 - 1 and max(lengths) <= 0.6 * 32_000 + 1
    assert max(lengths) - min(lengths) > 0.3 * 32_000  # spread over the range, not fixed


def test_minimum_seconds_and_never_longer_than_the_utterance():
    wave = np.ones(16_000, dtype=np.float32)  # 1 s
    t = Prefix(min_fraction=0.05, max_fraction=0.1, min_s=0.3)
    assert all(len(t(wave, np.random.default_rng(s))) == 4_800 for s in range(20))
    short = np.ones(1_000, dtype=np.float32)
    assert len(t(short, np.random.default_rng(0))) == 1_000


def test_probability_and_seeding():
    wave = np.arange(16_000, dtype=np.float32)
    assert len(Prefix(min_fraction=0.2, max_fraction=0.3, p=0.0)(
        wave, np.random.default_rng(0))) == 16_000
    a = Prefix(min_fraction=0.2, max_fraction=0.9)(wave, np.random.default_rng(5))
    b = Prefix(min_fraction=0.2, max_fraction=0.9)(wave, np.random.default_rng(5))
    assert np.array_equal(a, b)


def test_registered_and_validated():
    assert TRANSFORMS.get("prefix") is Prefix
    chain = build_augmentation({"prefix": {"min_fraction": 0.5, "max_fraction": 0.5,
                                           "min_s": 0.0}})
    assert len(chain(np.zeros(10_000, np.float32), np.random.default_rng(0))) == 5_000
    for bad in ({"min_fraction": 0.8, "max_fraction": 0.5}, {"min_fraction": 0.0},
                {"max_fraction": 1.5}, {"min_s": -1.0}):
        with pytest.raises(ConfigError):
            Prefix(**bad)


def test_augmented_versions_can_take_the_clean_speaker_statistics():
    """``augment.speaker_statistics: clean``: a prefix is normalised with its speaker's
    statistics over whole utterances, as an enrolled stream normalises it."""
    from emovox.features import Normaliser

    rng = np.random.default_rng(0)
    clean = [rng.normal(2.0, 3.0, (50, 4)) for _ in range(3)]
    prefixes = [c[:10] + 5.0 for c in clean]
    norm = Normaliser("speaker").fit(clean)
    got = norm.apply(prefixes, ["a"] * 3, reference=clean)
    stacked = np.concatenate(clean)
    want = (prefixes[0] - stacked.mean(0)) / (stacked.std(0) + 1e-5)
    np.testing.assert_allclose(got[0], want, atol=1e-5)
    own = norm.apply(prefixes, ["a"] * 3)  # default: the versions' own statistics
    assert np.abs(own[0] - got[0]).max() > 0.5
