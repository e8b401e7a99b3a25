"""Several extractors side by side: the progressive net's two branches in one feature."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emovox.errors import ConfigError
from emovox.features.base import EXTRACTORS, Extractor, make_extractor, stack_frames


@EXTRACTORS.register
class Concat(Extractor):
    """Several extractors side by side at the first one's frame rate (the progressive net's
    two branches): each later part is frame-stacked to that rate, then trimmed or padded (by
    repeating its last frame) to the first part's length."""

    name = "concat"
    version = 1

    @dataclass(frozen=True)
    class Params:
        #: ``[{name, params?}, ...]``: the extractors side by side, the first sets the rate.
        parts: list[dict[str, Any]] = field(default_factory=list)

    def __init__(self, **params):
        super().__init__(**params)
        if len(self.params["parts"]) < 2:
            raise ConfigError("concat needs at least two parts")
        self.parts = [make_extractor(p["name"], **p.get("params", {}))
                      for p in self.params["parts"]]
        rates = [p.frame_rate for p in self.parts]
        if None in rates or any(r < rates[0] for r in rates):
            raise ConfigError("concat parts must be frame-level, at frame rates ≥ the first's")
        self.stacks = [round(r / rates[0]) for r in rates]

    @property
    def frame_rate(self) -> float:
        return self.parts[0].frame_rate

    @property
    def part_dims(self) -> list[int]:
        return [p.dim * k for p, k in zip(self.parts, self.stacks, strict=True)]

    @property
    def dim(self) -> int:
        return sum(self.part_dims)

    def compute(self, wave: np.ndarray) -> np.ndarray:
        first = self.parts[0](wave)
        out = [first]
        for part, k in zip(self.parts[1:], self.stacks[1:], strict=True):
            feats = stack_frames(part(wave), k)[: len(first)]
            if len(feats) < len(first):
                feats = np.concatenate([feats, np.repeat(feats[-1:], len(first) - len(feats), 0)])
            out.append(feats)
        return np.concatenate(out, axis=1)
