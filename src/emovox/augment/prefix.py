"""What a stream has heard when it decides early: the first part of an utterance.

A head trained on whole utterances decides on prefixes when it streams, and a recogniser's
layers of a prefix are not a prefix of the whole utterance's layers (the encoder attends over its
whole input). Training on prefixes (with ``augment.copies``, the training loader extracts the
features of each kept prefix exactly as the streamer encodes a heard prefix) shows the head what
it will read (issue 15). Same conventions as :mod:`emovox.augment.transforms`.
"""

from __future__ import annotations

import numpy as np

from emovox.audio import SAMPLE_RATE
from emovox.augment.transforms import TRANSFORMS, Transform, _check_range
from emovox.errors import ConfigError


@TRANSFORMS.register
class Prefix(Transform):
    """Keep the first fraction of the utterance, uniform in [min_fraction, max_fraction], and
    at least ``min_s`` seconds (never more than the utterance)."""

    name = "prefix"

    def __init__(self, min_fraction: float = 0.15, max_fraction: float = 1.0,
                 min_s: float = 0.3, p: float = 1.0):
        super().__init__(p)
        _check_range(self.name, min_fraction, max_fraction)
        if not 0.0 < min_fraction <= 1.0 or max_fraction > 1.0:
            raise ConfigError(f"{self.name}: fractions must lie in (0, 1]")
        if min_s < 0:
            raise ConfigError(f"{self.name}: min_s must be >= 0")
        self.min_fraction, self.max_fraction, self.min_s = min_fraction, max_fraction, min_s

    def apply(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        keep = int(round(rng.uniform(self.min_fraction, self.max_fraction) * len(wave)))
        keep = max(keep, int(self.min_s * SAMPLE_RATE), 1)
        return wave[:keep]
