"""Feature cache and parallel batch extraction.

Entries are keyed by the audio's content hash (plus segment bounds) and the extractor's
configuration key, and written atomically, so concurrent writers and interrupted runs can never
leave a half-written entry behind: at worst the same entry is computed twice.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from emovox.audio import load_audio
from emovox.corpora.manifest import Utterance
from emovox.errors import AudioError, CorpusError
from emovox.features.base import Extractor
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
    """Features on disk, keyed by extractor settings and audio content. ``root`` "auto" is
    ``cache_dir("features")``; None computes on the fly."""

    def __init__(self, root: str | Path | None = "auto"):
        self.root = (cache_dir("features") if root == "auto" else
                     Path(root).expanduser() if root else None)

    def path(self, extractor: Extractor, content: str) -> Path:
        assert self.root is not None
        return self.root / extractor.key() / content[:2] / f"{content}.npy"

    def get(self, extractor: Extractor, utt: Utterance, variant: Variant | None = None
            ) -> np.ndarray:
        """Features of one utterance (or of its augmented ``variant``), cached."""
        if self.root is None:
            return compute(extractor, utt, variant)
        content = audio_hash(utt)
        if variant is not None:
            content = hashlib.sha256(f"{content}:{variant.key}".encode()).hexdigest()
        target = self.path(extractor, content)
        if target.exists():
            try:
                return np.load(target)
            except (ValueError, OSError, EOFError):
                log.warning("recomputing unreadable cache entry %s", target)
        feats = compute(extractor, utt, variant)
        buf = io.BytesIO()
        np.save(buf, feats)
        atomic_write(target, lambda fh: fh.write(buf.getvalue()))
        return feats


def compute(extractor: Extractor, utt: Utterance, variant: Variant | None = None) -> np.ndarray:
    wave = load_audio(utt.path, extractor.sample_rate, utt.start, utt.end)
    if variant is not None:
        wave = variant(wave, utt.id)
    feats = extractor(wave)
    if not np.all(np.isfinite(feats)):
        raise AudioError(utt.path, f"{extractor.name} produced NaN/inf features")
    return feats


def _work(args: tuple) -> tuple[str, np.ndarray | str]:
    extractor, cache, utt, variant = args
    try:
        return utt.id, cache.get(extractor, utt, variant)
    except AudioError as exc:
        return utt.id, str(exc)


def extract_all(
    utterances: Iterable[Utterance],
    extractor: Extractor,
    cache: FeatureCache | None = None,
    workers: int = 1,
    on_error: str = "skip",
    progress: bool = True,
    variant: Variant | None = None,
    failures: list[str] | None = None,
) -> dict[str, np.ndarray]:
    """Features for every utterance ({id: [frames, dim]}), in parallel with a progress bar;
    of its augmented ``variant`` when one is given.

    Utterances whose audio fails are skipped with a warning (their one-line reasons appended to
    ``failures``) or stop the run (``on_error``).
    """
    cache = cache or FeatureCache(None)
    jobs = [(extractor, cache, u, variant) for u in utterances]
    what = extractor.name if variant is None else f"{extractor.name}, augmented #{variant.index}"
    bar = tqdm(total=len(jobs), desc=f"features {what}", disable=not progress,
               unit="utt", leave=False)
    results: dict[str, np.ndarray] = {}
    failures = [] if failures is None else failures

    def take(item: tuple[str, np.ndarray | str]) -> None:
        utt_id, value = item
        bar.update()
        if isinstance(value, str):
            if on_error == "stop":
                raise CorpusError(value)
            log.warning("skipping: %s", value)
            failures.append(value)
        else:
            results[utt_id] = value

    for item in imap(_work, jobs, workers, chunksize=8, min_jobs=9):
        take(item)
    bar.close()
    if failures:
        log.warning("%d utterance(s) skipped during feature extraction", len(failures))
    return results
