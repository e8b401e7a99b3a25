"""Feature cache and parallel batch extraction.

Entries are keyed by the audio's content hash (plus segment bounds) and the extractor's
configuration key, and written atomically, so concurrent writers and interrupted runs can never
leave a half-written entry behind: at worst the same entry is computed twice. Extraction
returns where the features are, not the features: they are read back utterance by utterance
when a batch needs them, so memory does not grow with the corpus.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from emovox.audio import load_audio
from emovox.corpora.manifest import Utterance
from emovox.errors import AudioError, CorpusError
from emovox.features.base import Extractor
from emovox.features.normalise import SpeakerStatistics
from emovox.io import atomic_write, cache_dir
from emovox.parallel import imap

if TYPE_CHECKING:
    from emovox.augment import Variant

log = logging.getLogger(__name__)


def audio_hash(utt: Utterance) -> str:
    """SHA-256 of the file's bytes and the segment bounds."""
    digest = hashlib.sha256()
    with open(utt.path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    digest.update(f"{utt.start}:{utt.end}".encode())
    return digest.hexdigest()


class FeatureCache:
    """Features on disk, keyed by extractor settings and audio content, each beside its frame
    statistics (``<entry>.stats``, also a .npy array: [2, D] float64 sum and sum of squares), so
    normalisation and mean-pooled models never need the frames. ``root`` "auto" is
    ``cache_dir("features")``; None computes on the fly."""

    def __init__(self, root: str | Path | None = "auto"):
        self.root = (cache_dir("features") if root == "auto" else
                     Path(root).expanduser() if root else None)

    def path(self, extractor: Extractor, content: str) -> Path:
        assert self.root is not None
        return self.root / extractor.key() / content[:2] / f"{content}.npy"

    def entry(self, extractor: Extractor, utt: Utterance, variant: Variant | None = None
              ) -> tuple[Path, int]:
        """The cache file of one utterance's features (or of its augmented ``variant``) and
        its frame count, computed and written (with its statistics) when missing."""
        content = audio_hash(utt)
        if variant is not None:
            content = hashlib.sha256(f"{content}:{variant.key}".encode()).hexdigest()
        target = self.path(extractor, content)
        feats = _read(target, mmap_mode="r")
        fresh = feats is None
        if feats is None:
            feats = compute(extractor, utt, variant)
            _write(target, feats)
        if fresh or _read(statistics_path(target), mmap_mode="r") is None:
            _write(statistics_path(target), SpeakerStatistics.of([feats]).sums())
        return target, len(feats)

    def get(self, extractor: Extractor, utt: Utterance, variant: Variant | None = None
            ) -> np.ndarray:
        """Features of one utterance (or of its augmented ``variant``), cached."""
        if self.root is None:
            return compute(extractor, utt, variant)
        return np.load(self.entry(extractor, utt, variant)[0])


def statistics_path(entry: Path) -> Path:
    return entry.with_suffix(".stats")


def _read(path: Path, mmap_mode: str | None = None) -> np.ndarray | None:
    """A cache file's array; None when missing or unreadable (it is then recomputed)."""
    if not path.exists():
        return None
    try:
        return np.load(path, mmap_mode=mmap_mode)
    except (ValueError, OSError, EOFError):
        log.warning("recomputing unreadable cache entry %s", path)
        return None


def _write(path: Path, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, array)
    atomic_write(path, lambda fh: fh.write(buf.getvalue()))


class StoredFeatures(Mapping[str, np.ndarray]):
    """Utterances' features by id. Cached ones are read from their file each time they are
    asked for (freed once the caller lets go; a plain read, not a memory map, which would hold
    a file descriptor per utterance for as long as it lives), so a corpus's frames are never
    all in memory and worker processes read the same files; without a cache they are held.
    :meth:`statistics` gives an utterance's frame statistics without reading its frames."""

    def __init__(self, entries: dict[str, Path | np.ndarray], lengths: dict[str, int]):
        self.entries, self.lengths = entries, lengths

    @classmethod
    def held(cls, feats: Mapping[str, np.ndarray]) -> StoredFeatures:
        """Features already in memory (as they stay)."""
        return feats if isinstance(feats, StoredFeatures) else \
            cls(dict(feats), {k: len(v) for k, v in feats.items()})

    def __getitem__(self, utt_id: str) -> np.ndarray:
        entry = self.entries[utt_id]
        return np.load(entry) if isinstance(entry, Path) else entry

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def length(self, utt_id: str) -> int:
        return self.lengths[utt_id]

    def statistics(self, utt_id: str) -> SpeakerStatistics:
        entry = self.entries[utt_id]
        if isinstance(entry, Path):
            return SpeakerStatistics.from_sums(self.lengths[utt_id],
                                               np.load(statistics_path(entry)))
        return SpeakerStatistics.of([entry])


def compute(extractor: Extractor, utt: Utterance, variant: Variant | None = None) -> np.ndarray:
    wave = load_audio(utt.path, extractor.sample_rate, utt.start, utt.end)
    if variant is not None:
        wave = variant(wave, utt.id)
    feats = extractor(wave)
    if not np.all(np.isfinite(feats)):
        raise AudioError(utt.path, f"{extractor.name} produced NaN/inf features")
    return feats


def _work(args: tuple) -> tuple[str, Path | np.ndarray | str, int]:
    """One utterance's cache file (its features themselves without a cache) and frame count,
    or why its audio failed: workers send paths back, never frames."""
    extractor, cache, utt, variant = args
    try:
        if cache.root is None:
            feats = compute(extractor, utt, variant)
            return utt.id, feats, len(feats)
        return (utt.id, *cache.entry(extractor, utt, variant))
    except AudioError as exc:
        return utt.id, str(exc), 0


def extract_all(
    utterances: Iterable[Utterance],
    extractor: Extractor,
    cache: FeatureCache | None = None,
    workers: int = 1,
    on_error: str = "skip",
    progress: bool = True,
    variant: Variant | None = None,
    failures: list[str] | None = None,
) -> StoredFeatures:
    """Features for every utterance ({id: [frames, dim]}, read from the cache when asked for),
    in parallel with a progress bar; of its augmented ``variant`` when one is given.

    Utterances whose audio fails are skipped with a warning (their one-line reasons appended to
    ``failures``) or stop the run (``on_error``).
    """
    cache = cache or FeatureCache(None)
    jobs = [(extractor, cache, u, variant) for u in utterances]
    what = extractor.name if variant is None else f"{extractor.name}, augmented #{variant.index}"
    bar = tqdm(total=len(jobs), desc=f"features {what}", disable=not progress,
               unit="utt", leave=False)
    entries: dict[str, Path | np.ndarray] = {}
    lengths: dict[str, int] = {}
    failures = [] if failures is None else failures

    def take(item: tuple[str, Path | np.ndarray | str, int]) -> None:
        utt_id, value, length = item
        bar.update()
        if isinstance(value, str):
            if on_error == "stop":
                raise CorpusError(value)
            log.warning("skipping: %s", value)
            failures.append(value)
        else:
            entries[utt_id], lengths[utt_id] = value, length

    for item in imap(_work, jobs, workers, chunksize=8, min_jobs=9):
        take(item)
    bar.close()
    if failures:
        log.warning("%d utterance(s) skipped during feature extraction", len(failures))
    return StoredFeatures(entries, lengths)
