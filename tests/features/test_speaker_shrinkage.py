"""Running speaker adaptation (issue 26): a speaker's statistics shrunk toward the training
statistics while little of the speaker has been heard."""

from __future__ import annotations

import numpy as np
import pytest

from emovox.errors import EmovoxError
from emovox.features import Normaliser, SpeakerStatistics

TAU = 200.0


@pytest.fixture
def training() -> Normaliser:
    rng = np.random.default_rng(0)
    return Normaliser("global").fit([rng.normal(0.0, 1.0, (500, 6)) for _ in range(4)])


@pytest.fixture
def speaker_frames() -> np.ndarray:
    """A speaker far from the training statistics: mean 4, standard deviation 3."""
    return np.random.default_rng(1).normal(4.0, 3.0, (20_000, 6))


def test_nothing_heard_gives_the_training_normaliser(training):
    for tau in (0.0, TAU):
        norm = SpeakerStatistics(6).normaliser(training, tau)
        np.testing.assert_array_equal(norm.mean, training.mean)
        np.testing.assert_array_equal(norm.std, training.std)
        assert norm.mode == "global"
    with pytest.raises(EmovoxError, match="no frames"):
        SpeakerStatistics(6).normaliser()


def test_a_speaker_heard_at_length_gets_their_own_statistics(training, speaker_frames):
    stats = SpeakerStatistics.of([speaker_frames])
    own = stats.normaliser()
    shrunk = stats.normaliser(training, TAU)  # 20,000 frames heard against tau = 200
    np.testing.assert_allclose(shrunk.mean, own.mean, atol=0.05)
    np.testing.assert_allclose(shrunk.std, own.std, atol=0.05)
    np.testing.assert_allclose(own.mean, speaker_frames.mean(0), atol=1e-9)
    # tau 0: no shrinkage at all, whatever the prior
    np.testing.assert_allclose(stats.normaliser(training, 0.0).std, own.std, atol=1e-12)


def test_shrinkage_moves_monotonically_from_the_prior_to_the_speaker(training):
    """The more frames heard, the closer the mean and the second moment to the speaker's (a
    speaker whose every 10-frame block has the same statistics, so no sampling noise)."""
    block = np.random.default_rng(3).normal(4.0, 3.0, (10, 6))
    own = SpeakerStatistics.of([block]).normaliser()
    own_second = own.mean ** 2 + (own.std - 1e-5) ** 2
    mean_gap, second_gap = [], []
    for blocks in (0, 1, 5, 20, 100, 1000, 100_000):
        norm = SpeakerStatistics(6).add(np.tile(block, (blocks, 1))).normaliser(training, TAU)
        second = norm.mean ** 2 + (norm.std - 1e-5) ** 2
        mean_gap.append(np.abs(norm.mean - own.mean).max())
        second_gap.append(np.abs(second - own_second).max())
    assert all(np.diff(mean_gap) < 0) and all(np.diff(second_gap) < 0), (mean_gap, second_gap)
    assert mean_gap[-1] < 1e-2 < mean_gap[0]
    # at count == tau: halfway between the prior's mean and the speaker's
    half = SpeakerStatistics(6).add(np.tile(block, (20, 1))).normaliser(training, TAU)
    np.testing.assert_allclose(half.mean, (own.mean + training.mean) / 2, atol=1e-9)


def test_shrunk_variance_is_the_pooled_second_moment(training):
    """Mean and second moment shrink together: the result is the statistics of the heard frames
    pooled with tau frames that have the prior's mean and variance."""
    rng = np.random.default_rng(2)
    heard = rng.normal(2.0, 0.5, (50, 6))
    norm = SpeakerStatistics.of([heard]).normaliser(training, 50.0)
    mean = (heard.mean(0) + training.mean) / 2
    var_prior = (training.std - 1e-5) ** 2
    second = (np.square(heard).mean(0) + var_prior + training.mean ** 2) / 2
    np.testing.assert_allclose(norm.mean, mean, atol=1e-9)
    np.testing.assert_allclose(norm.std, np.sqrt(second - mean ** 2) + 1e-5, atol=1e-9)


def test_negative_tau_is_refused(training):
    with pytest.raises(EmovoxError, match="tau"):
        SpeakerStatistics.of([np.ones((3, 6))]).normaliser(training, -1.0)
