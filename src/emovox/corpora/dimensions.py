"""Arousal/valence targets: annotated, or derived from the emotion category.

Emo-DB, RAVDESS and CREMA-D have no dimensional annotation. ``derived=True`` maps each category
to a fixed point on the 1–5 self-assessment scale IEMOCAP uses (1 = negative / calm, 5 =
positive / excited). The positions follow Russell's circumplex model of affect (Russell 1980,
"A circumplex model of affect"); splitting them at 3 reproduces the binary arousal and valence
groupings Schuller et al. (2009) used for Emo-DB (high arousal: anger, fear, happiness; positive
valence: happiness; neutral sits at the valence midpoint). Derived targets say *which quadrant a
category lives in*, not how a listener rated the utterance: every report on them says so.
"""

from __future__ import annotations

import numpy as np

from emovox.corpora.manifest import Utterance
from emovox.errors import CorpusError

#: category → (arousal, valence, dominance) on a 1–5 scale.
DERIVED: dict[str, tuple[float, float, float]] = {
    "anger": (4.5, 1.5, 4.0),
    "fear": (4.0, 1.5, 1.5),
    "happiness": (4.0, 4.5, 3.5),
    "excitement": (4.5, 4.0, 3.5),
    "surprise": (4.0, 3.5, 2.5),
    "disgust": (2.5, 1.5, 3.5),
    "frustration": (3.5, 2.0, 3.0),
    "neutral": (2.5, 3.0, 3.0),
    "calm": (1.5, 3.5, 3.0),
    "boredom": (1.5, 2.5, 2.5),
    "sadness": (1.5, 1.5, 2.0),
}
DIMENSIONS = ("arousal", "valence", "dominance")


def dimension_targets(utterances: list[Utterance], dimensions: list[str],
                      derived: bool) -> np.ndarray:
    """[N, len(dimensions)] float32 targets, annotated or derived from the label."""
    unknown = set(dimensions) - set(DIMENSIONS)
    if unknown:
        raise CorpusError(f"unknown dimension(s) {sorted(unknown)}; choose from {DIMENSIONS}")
    out = np.zeros((len(utterances), len(dimensions)), dtype=np.float32)
    for i, utt in enumerate(utterances):
        for j, dim in enumerate(dimensions):
            if derived:
                if utt.label not in DERIVED:
                    raise CorpusError(f"{utt.path}: no derived {dim} for label {utt.label!r}")
                value = DERIVED[utt.label][DIMENSIONS.index(dim)]
            else:
                value = getattr(utt, dim)
                if value is None:
                    raise CorpusError(f"{utt.path}: no {dim} annotation; set task.derived: true "
                                      "to derive it from the category")
            out[i, j] = value
    return out
