"""Seeded augmented versions of every training utterance, for the training loader.

Each utterance gets ``copies`` augmented versions, version ``k`` drawn with the RNG seeded by
(seed, k, utterance id): reproducible, independent of fold and worker, and cached like clean
features (so all folds of a study share them). Every epoch the loader picks one version per
utterance afresh (:class:`emovox.training.AugmentedSet`); with ``copies`` ≥ the number of epochs
this is exactly on-the-fly augmentation, with fewer it recycles versions at a fraction of the
extraction cost. Validation and test data are never augmented.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np

from emovox.augment.transforms import Compose, build_augmentation
from emovox.schema import bounded


@dataclass
class AugmentConfig:
    #: Transform name → parameters (see emovox.augment.transforms); null switches one off.
    transforms: dict[str, Any] = field(default_factory=dict)
    #: Augmented versions per training utterance.
    copies: int = bounded(8, ge=0)
    #: Also offer the clean utterance among the versions each epoch draws from.
    include_clean: bool = True
    seed: int = 0
    #: Per-speaker normalisation of the augmented versions: each version with its own
    #: speaker statistics (``version``: noise at test time brings its own) or with the clean
    #: utterances' (``clean``: a stream deciding on a prefix knows its speaker from whole
    #: recordings, the ``prefix`` transform's case).
    speaker_statistics: Literal["version", "clean"] = "version"

    @property
    def enabled(self) -> bool:
        return any(v is not None for v in self.transforms.values()) and self.copies > 0


@dataclass
class Variant:
    """Version ``index`` of every utterance under one augmentation chain."""

    transforms: dict[str, Any]
    index: int
    seed: int = 0

    @cached_property
    def chain(self) -> Compose:
        return build_augmentation(self.transforms)

    @property
    def key(self) -> str:
        """Part of the feature-cache key: the chain's settings, the seed and the version."""
        spec = json.dumps([self.transforms, self.seed, self.index], sort_keys=True)
        return hashlib.sha256(spec.encode()).hexdigest()[:16]

    def __call__(self, wave: np.ndarray, utterance_id: str) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.index, zlib.crc32(utterance_id.encode())])
        return self.chain(wave, rng)

    def __getstate__(self) -> dict:  # the chain is rebuilt in worker processes
        return {k: v for k, v in self.__dict__.items() if k != "chain"}


def variants(config: AugmentConfig) -> list[Variant]:
    if not config.enabled:
        return []
    return [Variant(config.transforms, k, config.seed) for k in range(config.copies)]
