"""The pieces an experiment and a trained model share: corpus → features → normalised sets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emovox.config import ExperimentConfig
from emovox.corpora import Manifest, load_corpus
from emovox.errors import CorpusError
from emovox.features import Extractor, FeatureCache, Normaliser, extract_all, make_extractor
from emovox.training import SequenceSet


@dataclass
class Dataset:
    """A corpus with its features: utterances (those whose features exist) in manifest order."""

    manifest: Manifest
    feats: dict[str, np.ndarray]
    labels: list[str]
    extractor: Extractor
    stack: int = 1

    @property
    def input_dim(self) -> int:
        return self.extractor.dim * self.stack

    def targets(self, manifest: Manifest) -> np.ndarray:
        index = {label: i for i, label in enumerate(self.labels)}
        return np.array([index[u.label] for u in manifest], dtype=np.int64)

    def split(self, speakers: tuple[str, ...]) -> Manifest:
        return self.manifest.with_speakers(speakers)

    def sequences(self, manifest: Manifest, normaliser: Normaliser) -> SequenceSet:
        feats = normaliser.apply([self.feats[u.id] for u in manifest],
                                 [u.speaker for u in manifest])
        return SequenceSet([stack_frames(f, self.stack) for f in feats], self.targets(manifest))


def load_dataset(config: ExperimentConfig, progress: bool = True) -> Dataset:
    corpus = config.corpus
    manifest = load_corpus(corpus.format, corpus.path, labels=corpus.labels,
                           on_error=corpus.on_error, **corpus.options)
    if corpus.speakers:
        manifest = manifest.with_speakers(corpus.speakers)
        if len(manifest) == 0:
            raise CorpusError(f"{corpus.path}: none of the speakers {corpus.speakers} found")
    extractor = make_extractor(config.features.name, **config.features.params)
    cache = FeatureCache(Path(config.features.cache).expanduser() if config.features.cache
                         else None)
    feats = extract_all(manifest, extractor, cache, workers=config.features.workers,
                        on_error=corpus.on_error, progress=progress)
    manifest = manifest.filter(lambda u: u.id in feats)
    labels = list(corpus.labels) if corpus.labels else manifest.labels
    if len(labels) < 2:
        raise CorpusError(f"{corpus.path}: need at least two labels, found {labels}")
    return Dataset(manifest, feats, labels, extractor, config.features.stack)


def stack_frames(feats: np.ndarray, k: int) -> np.ndarray:
    """[T, D] → [ceil(T/k), k·D]: each row holds k consecutive frames (the last repeated to
    fill the tail)."""
    if k <= 1:
        return feats
    rows = -(-len(feats) // k)
    padded = np.concatenate([feats, np.repeat(feats[-1:], rows * k - len(feats), axis=0)])
    return padded.reshape(rows, k * feats.shape[1])


def fit_normaliser(dataset: Dataset, train: Manifest, mode: str) -> Normaliser:
    return Normaliser(mode).fit([dataset.feats[u.id] for u in train])
