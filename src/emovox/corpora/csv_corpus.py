"""Any corpus described by a CSV: ``path,label,speaker[,session,transcript,valence,arousal]``."""

from __future__ import annotations

import csv
from pathlib import Path

from emovox.corpora.manifest import Manifest, Utterance
from emovox.corpora.registry import CORPORA, problem
from emovox.errors import CorpusError

REQUIRED = ("path", "label", "speaker")
OPTIONAL_FLOATS = ("valence", "arousal", "dominance", "start", "end")


@CORPORA.register("csv")
def load_csv(root: Path, on_error: str = "skip") -> Manifest:
    """Relative audio paths are resolved against the CSV's folder."""
    if root.is_dir():
        raise CorpusError(f"{root}: the csv format expects a CSV file, not a directory")
    with open(root, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise CorpusError(f"{root}: CSV lacks required column(s) {missing}")
        rows = list(reader)
    utterances, problems = [], []
    for line, row in enumerate(rows, start=2):
        audio = Path(row["path"])
        if not audio.is_absolute():
            audio = root.parent / audio
        if not row["label"] or not row["speaker"]:
            problem(f"{root}:{line}: empty label or speaker for {audio}", on_error, problems)
            continue
        try:
            numbers = {k: float(row[k]) for k in OPTIONAL_FLOATS if row.get(k) not in (None, "")}
        except ValueError as exc:
            problem(f"{root}:{line}: {exc}", on_error, problems)
            continue
        utt_id = row.get("id") or audio.stem
        utterances.append(
            Utterance(
                id=utt_id,
                path=str(audio),
                speaker=row["speaker"],
                label=row["label"],
                session=row.get("session") or None,
                transcript=row.get("transcript") or None,
                gender=row.get("gender") or None,
                corpus="csv",
                **numbers,
            )
        )
    return Manifest(utterances, problems)


@CORPORA.register("manifest")
def load_manifest(root: Path, on_error: str = "skip") -> Manifest:
    """emovox's own JSONL manifest (e.g. a degraded copy); a directory means its
    ``manifest.jsonl``. Relative audio paths are resolved against the manifest's folder."""
    path = root / "manifest.jsonl" if root.is_dir() else root
    if not path.exists():
        raise CorpusError(f"{path}: manifest not found")
    try:
        manifest = Manifest.from_jsonl(path)
    except (ValueError, TypeError, KeyError) as exc:
        raise CorpusError(f"{path}: not an emovox manifest ({exc})") from None
    for utt in manifest:
        if not Path(utt.path).is_absolute():
            utt.path = str(path.parent / utt.path)
    return manifest
