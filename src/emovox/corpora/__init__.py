"""Corpora: loaders that turn a corpus on disk into a :class:`Manifest` of utterances."""

from emovox.corpora import emodb, filenames, generic, iemocap, librispeech  # noqa: F401
from emovox.corpora.manifest import Manifest, Utterance, Word
from emovox.corpora.registry import LOADERS, check_audio, load_corpus

__all__ = ["LOADERS", "Manifest", "Utterance", "Word", "check_audio", "load_corpus"]
