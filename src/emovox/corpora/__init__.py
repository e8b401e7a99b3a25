"""Corpora: loaders that turn a corpus on disk into a :class:`Manifest` of utterances."""

from emovox.corpora.manifest import Manifest, Utterance, Word
from emovox.corpora.registry import CORPORA, check_audio, load_corpus

__all__ = ["CORPORA", "Manifest", "Utterance", "Word", "check_audio", "load_corpus"]
