"""Corpus loaders register by format name; ``load_corpus`` is the one entry point."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from emovox.audio import audio_info
from emovox.corpora.manifest import Manifest
from emovox.errors import AudioError, CorpusError
from emovox.registry import Registry

log = logging.getLogger(__name__)

Loader = Callable[..., Manifest]
#: Loaders ``(root, on_error, **options)``: the options (``corpus.options``) are the loader's
#: own typed keyword parameters.
CORPORA: Registry[Loader] = Registry("corpus format", providers=(
    "emovox.corpora.emodb", "emovox.corpora.iemocap", "emovox.corpora.ravdess",
    "emovox.corpora.cremad", "emovox.corpora.csv_corpus", "emovox.corpora.librispeech",
    "emovox.corpora.nemo", "emovox.corpora.combined", "emovox.corpora.meld"),
    supplied=("root", "on_error"))

#: What to do with a bad file: "skip" (warn, record in ``manifest.problems``) or "stop".
POLICIES = ("skip", "stop")


def problem(message: str, policy: str, problems: list[str]) -> None:
    """Apply the bad-data policy to one problem: raise, or warn and remember it."""
    if policy == "stop":
        raise CorpusError(message)
    log.warning("skipping: %s", message)
    problems.append(message)


def check_audio(manifest: Manifest, policy: str = "skip") -> Manifest:
    """Open every file's header; drop (or stop on) missing, corrupt and empty files.
    Text-only utterances (empty ``path``, e.g. MELD) have no audio to check."""
    kept = []
    problems = list(manifest.problems)
    for utt in manifest:
        if not utt.path:
            kept.append(utt)
            continue
        try:
            info = audio_info(utt.path)
            if info.frames == 0:
                raise AudioError(utt.path, "no audio samples")
        except AudioError as exc:
            problem(str(exc), policy, problems)
            continue
        kept.append(utt)
    return Manifest(kept, problems)


def load_corpus(
    format: str,
    path: str | Path,
    *,
    labels: list[str] | None = None,
    on_error: str = "skip",
    check_files: bool = True,
    **options,
) -> Manifest:
    """Load a corpus by format name, keep only ``labels`` (if given), check its audio files."""
    loader = CORPORA.get(format)
    if on_error not in POLICIES:
        raise CorpusError(f"on_error must be one of {POLICIES}, not {on_error!r}")
    root = Path(path)
    if not root.exists():
        raise CorpusError(f"{root}: corpus directory or file not found")
    manifest = loader(root, on_error=on_error,
                      **vars(CORPORA.params(format, options, "corpus.options")))
    if labels:
        unknown = set(labels) - set(manifest.labels)
        if unknown:
            raise CorpusError(
                f"{root}: labels {sorted(unknown)} not in corpus (it has {manifest.labels})"
            )
        manifest = manifest.filter(lambda u: u.label in labels)
    if check_files:
        manifest = check_audio(manifest, on_error)
    if len(manifest) == 0:
        raise CorpusError(f"{root}: no usable utterances found for format {format!r}")
    return manifest
