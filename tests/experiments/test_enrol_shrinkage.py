"""``enrol`` with shrinkage: a stream that has heard nothing of its speaker normalises exactly as
without enrolment, and the more it has heard, the more it uses the speaker's own statistics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emovox.experiments.streamers import enrol
from emovox.features import Normaliser, SpeakerStatistics
from emovox.features.normalise import SHRINKAGE_FRAMES


@dataclass
class Trained:
    normaliser: Normaliser


def test_enrol_shrinks_toward_the_training_statistics():
    rng = np.random.default_rng(0)
    training = Normaliser("global").fit([rng.normal(0.0, 1.0, (400, 4))])
    trained = Trained(training)
    empty = enrol(trained, "speaker", SpeakerStatistics(4), tau=SHRINKAGE_FRAMES)
    np.testing.assert_array_equal(empty.normaliser.mean, training.mean)
    np.testing.assert_array_equal(empty.normaliser.std, training.std)
    heard = SpeakerStatistics.of([rng.normal(5.0, 2.0, (int(SHRINKAGE_FRAMES), 4))])
    shrunk = enrol(trained, "speaker", heard, tau=SHRINKAGE_FRAMES).normaliser
    own = enrol(trained, "speaker", heard).normaliser  # tau 0: the speaker's own
    np.testing.assert_allclose(shrunk.mean, (own.mean + training.mean) / 2, atol=1e-9)
    assert trained.normaliser is training  # the trained model itself is left as it was
