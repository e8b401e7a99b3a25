"""Features: named extractors, a content-addressed cache, normalisation."""

from emovox.features.base import EXTRACTORS, Extractor, make_extractor
from emovox.features.normalise import Normaliser, SpeakerStatistics
from emovox.features.store import FeatureCache, extract_all

__all__ = [
    "EXTRACTORS",
    "Extractor",
    "FeatureCache",
    "Normaliser",
    "SpeakerStatistics",
    "extract_all",
    "make_extractor",
]
