"""The pieces an experiment and a trained model share: corpus → features → normalised sets."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emovox.augment import build_augmentation, variants
from emovox.corpora import Manifest, load_corpus
from emovox.corpora.dimensions import dimension_targets
from emovox.errors import ConfigError, CorpusError
from emovox.experiments.config import CorpusConfig, ExperimentConfig, TaskConfig
from emovox.features import Extractor, FeatureCache, Normaliser, extract_all, make_extractor
from emovox.features.base import stack_frames
from emovox.features.normalise import Scaling
from emovox.features.store import StoredFeatures
from emovox.training import AugmentedSet, SequenceSet

log = logging.getLogger(__name__)


class _NormalisedFrames(Sequence[np.ndarray]):
    """Utterances' frames, normalised and stacked as they are read from the store: a set of
    sequences that holds no frames."""

    def __init__(self, store: StoredFeatures, ids: list[str], scaling: Scaling, stack: int):
        self.store, self.ids, self.scaling, self.stack = store, ids, scaling, stack

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> np.ndarray:  # type: ignore[override]
        return stack_frames(self.scaling(i, self.store[self.ids[i]]), self.stack)


@dataclass
class Dataset:
    """A corpus with its features: utterances (those whose features exist) in manifest order.

    ``feats`` (and each of ``augmented``, per augmented version, the features of every
    utterance) are read from the feature cache when a batch needs them; a model that reads only
    the time mean of its input gets each utterance's normalised mean instead (``pooled``),
    computed from the cached frame statistics without reading a frame.
    """

    manifest: Manifest
    #: Read from the cache as needed (a plain mapping, e.g. ``{}``, is held as it is).
    feats: StoredFeatures
    labels: list[str]
    extractor: Extractor
    stack: int = 1
    task: TaskConfig = field(default_factory=TaskConfig)
    augmented: list[StoredFeatures] = field(default_factory=list)
    include_clean: bool = True
    #: Speaker statistics of augmented versions from the clean utterances (AugmentConfig).
    clean_statistics: bool = False

    def __post_init__(self) -> None:
        self.feats = StoredFeatures.held(self.feats)
        self.augmented = [StoredFeatures.held(a) for a in self.augmented]

    @property
    def input_dim(self) -> int:
        return self.extractor.dim * self.stack

    @property
    def dimensional(self) -> bool:
        return self.task.kind == "dimensional"

    @property
    def n_outputs(self) -> int:
        return len(self.task.dimensions) if self.dimensional else len(self.labels)

    def targets(self, manifest: Manifest) -> np.ndarray:
        if self.dimensional:
            return dimension_targets(list(manifest), self.task.dimensions, self.task.derived)
        index = {label: i for i, label in enumerate(self.labels)}
        return np.array([index[u.label] for u in manifest], dtype=np.int64)

    def split(self, speakers: tuple[str, ...]) -> Manifest:
        return self.manifest.with_speakers(speakers)

    def _sequences(self, store: StoredFeatures, manifest: Manifest, normaliser: Normaliser,
                   pooled: bool, reference: StoredFeatures | None = None) -> SequenceSet:
        """``manifest``'s utterances from ``store``, normalised (speaker statistics from
        ``reference``, by default ``store`` itself)."""
        ids = [u.id for u in manifest]
        reference = store if reference is None else reference
        scaling = normaliser.scaling(len(ids), [u.speaker for u in manifest],
                                     lambda i: store.statistics(ids[i]),
                                     lambda i: reference.statistics(ids[i]))
        lengths = np.array([store.length(i) for i in ids], dtype=np.int64)
        targets = self.targets(manifest)
        if pooled:
            if self.stack != 1:
                raise ValueError("pooled sequences need stack 1")
            means = np.zeros((len(ids), 1, self.input_dim), dtype=np.float32)
            for i, utt_id in enumerate(ids):
                means[i] = scaling(i, store.statistics(utt_id).mean_std()[0][None])
            return SequenceSet(means, targets, lengths, pooled=True)
        return SequenceSet(_NormalisedFrames(store, ids, scaling, self.stack), targets,
                           -(-lengths // self.stack))

    def sequences(self, manifest: Manifest, normaliser: Normaliser,
                  pooled: bool = False) -> SequenceSet:
        """``pooled``: each utterance's normalised time mean (for a model with
        ``reads_time_mean``), not its frames."""
        return self._sequences(self.feats, manifest, normaliser, pooled)

    def training_set(self, manifest: Manifest, normaliser: Normaliser, pooled: bool = False
                     ) -> SequenceSet | AugmentedSet:
        """The clean sequences, or every version of each (clean and augmented) to draw from."""
        if not self.augmented:
            return self.sequences(manifest, normaliser, pooled)
        sources = ([self.feats] if self.include_clean else []) + self.augmented
        clean = self.feats if self.clean_statistics else None
        return AugmentedSet([self._sequences(s, manifest, normaliser, pooled, clean)
                             for s in sources])

    def fit_normaliser(self, train: Manifest, mode: str) -> Normaliser:
        """Statistics of everything the model trains on (augmented versions included), summed
        one utterance at a time from the cached statistics."""
        total = None
        for source in [self.feats, *self.augmented]:
            for u in train:
                stats = source.statistics(u.id)
                total = stats if total is None else total.merge(stats)
        if total is None:
            raise ConfigError("no training utterances to fit the normaliser on")
        return Normaliser(mode).fit_statistics(total)


def _features(config: ExperimentConfig, manifest: Manifest, extractor: Extractor,
              progress: bool, variant=None) -> StoredFeatures:
    """Features of every usable utterance; the reasons others were skipped go to
    ``manifest.problems`` (reported as ``skipped_files`` in metrics.json)."""
    cache = FeatureCache(config.features.cache)
    return extract_all(manifest, extractor, cache, workers=config.features.workers,
                       on_error=config.corpus.on_error, progress=progress, variant=variant,
                       failures=manifest.problems)


def check_corpus(corpus: CorpusConfig) -> None:
    """The corpus a config names — its path, parts, labels and speakers — checked without
    reading audio: a run calls it before creating anything in its output directory."""
    _load_manifest(corpus, check_files=False)


def _load_manifest(corpus: CorpusConfig, check_files: bool = True) -> Manifest:
    manifest = load_corpus(corpus.format, corpus.path, labels=corpus.labels,
                           on_error=corpus.on_error, check_files=check_files, **corpus.options)
    if corpus.speakers:
        manifest = manifest.with_speakers(corpus.speakers)
        if len(manifest) == 0:
            raise CorpusError(f"{corpus.path}: none of the speakers {corpus.speakers} found")
    return manifest


def load_dataset(config: ExperimentConfig, progress: bool = True) -> Dataset:
    manifest = _load_manifest(config.corpus)
    extractor = make_extractor(config.features.name, **config.features.params)
    audio = manifest.filter(lambda u: bool(u.path))  # text-only corpora (MELD) have none
    feats = _features(config, audio, extractor, progress) if len(audio) else {}
    manifest = manifest.filter(lambda u: u.id in feats or not u.path)
    labels = list(config.corpus.labels) if config.corpus.labels else manifest.labels
    if len(labels) < 2 and config.task.kind == "categorical":
        raise CorpusError(f"{config.corpus.path}: need at least two labels, found {labels}")
    augmented = []
    for variant in variants(config.augment):
        version = _features(config, manifest, extractor, progress, variant)
        augmented.append(version)
        manifest = manifest.filter(lambda u, v=version: u.id in v)
    dataset = Dataset(manifest, feats, labels, extractor, config.features.stack, config.task,
                      augmented, config.augment.include_clean,
                      config.augment.speaker_statistics == "clean")
    dataset.targets(manifest)  # fail now on missing dimensional annotations
    return dataset


def load_test_sets(config: ExperimentConfig, dataset: Dataset,
                   progress: bool = True) -> dict[str, Dataset]:
    """Every extra test set, created through its channel when missing, as a Dataset sharing the
    main corpus's labels and extractor. Refuses a test set that shares noise or room sources
    with the training augmentation."""
    from emovox.channels import channel_sources, degrade_corpus, make_channel

    training_sources = (build_augmentation(config.augment.transforms).sources()
                        if config.augment.enabled else set())
    out = {}
    for name, test in config.test_sets.items():
        path = Path(test.path).expanduser()
        if test.channel and not (path / "manifest.jsonl").exists():
            log.info("creating test set %s: %s channel → %s", name, test.channel, path)
            degrade_corpus(dataset.manifest, make_channel(test.channel, **test.channel_params),
                           path, workers=config.features.workers, progress=progress)
        shared = training_sources & channel_sources(path / "manifest.jsonl" if path.is_dir()
                                                    else path)
        if shared:
            raise ConfigError(f"test set {name!r} ({path}) shares {len(shared)} noise/room "
                              f"source(s) with the training augmentation, e.g. {min(shared)}")
        corpus = CorpusConfig(format=test.format, path=str(path), labels=config.corpus.labels,
                              speakers=config.corpus.speakers, on_error=config.corpus.on_error,
                              options=test.options)
        manifest = _load_manifest(corpus)
        feats = _features(config, manifest, dataset.extractor, progress)
        manifest = manifest.filter(lambda u, f=feats: u.id in f)
        out[name] = Dataset(manifest, feats, dataset.labels, dataset.extractor, dataset.stack,
                            dataset.task)
    return out
