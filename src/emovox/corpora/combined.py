"""Several corpora as one manifest, for multi-corpus training and per-corpus reports.

Every part is loaded by its own loader; its ids and speakers are prefixed with the part's name
(``emodb_03``, ``nemo_EB0``) so that two corpora never share an utterance or a speaker (a
speaker-independent protocol then holds out whole speakers of either corpus), and
``Utterance.corpus`` keeps the part's name for reports split by corpus. Labels are harmonised by
name: loaders use one spelling per emotion, and ``corpus.labels`` keeps the emotions the parts
share (e.g. ``[anger, fear, happiness, neutral, sadness]`` for Emo-DB + nEMO).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from emovox.corpora.manifest import Manifest
from emovox.corpora.registry import CORPORA, load_corpus
from emovox.errors import CorpusError

SEPARATOR = "_"


def part_of(utterance_id: str) -> str:
    """The part (corpus) name of a combined utterance id."""
    return utterance_id.split(SEPARATOR, 1)[0]


@CORPORA.register("combined")
def load_combined(root: Path, on_error: str = "skip",
                  parts: list[dict[str, Any]] | None = None) -> Manifest:
    """``parts: [{format, path, name?, options?}]``; a relative part path is resolved against
    the combined corpus's ``path``; ``name`` defaults to the format."""
    if not parts:
        raise CorpusError(f"{root}: the combined format needs options.parts "
                          "([{format, path}, ...])")
    utterances, problems, names = [], [], set()
    for i, part in enumerate(parts):
        if not isinstance(part, dict) or "format" not in part or "path" not in part:
            raise CorpusError(f"{root}: parts[{i}] needs format and path, got {part!r}")
        name = str(part.get("name") or part["format"])
        if SEPARATOR in name or name in names:
            raise CorpusError(f"{root}: part name {name!r} is repeated or contains "
                              f"{SEPARATOR!r}; give each part a distinct name")
        names.add(name)
        path = Path(part["path"]).expanduser()
        manifest = load_corpus(part["format"], path if path.is_absolute() else root / path,
                               on_error=on_error, check_files=False,
                               **(part.get("options") or {}))
        problems += [f"{name}: {p}" for p in manifest.problems]
        utterances += [replace(u, id=f"{name}{SEPARATOR}{u.id}",
                               speaker=f"{name}{SEPARATOR}{u.speaker}", corpus=name)
                       for u in manifest]
    return Manifest(utterances, problems)
