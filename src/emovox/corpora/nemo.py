"""nEMO (Christop, LREC-COLING 2024): emotional speech in Polish, 9 actors, 6 emotions.

``data.tsv`` (tab-separated, UTF-8) lists every utterance: ``file_id``
(``{speaker}_{emotion}_{sentence}.wav``), ``emotion``, ``raw_text``, ``normalized_text``,
``speaker_id`` (padded with leading spaces), ``gender``, ``age``. The audio may be the original
``.wav`` or a same-stem ``.flac`` under ``samples/``. Labels come from the ``emotion`` column,
renamed to emovox's spellings (``surprised`` → ``surprise``) so corpora share one label set.
"""

from __future__ import annotations

import csv
from pathlib import Path

from emovox.corpora.manifest import Manifest, Utterance
from emovox.corpora.registry import CORPORA, problem
from emovox.errors import CorpusError

EMOTIONS = {
    "anger": "anger",
    "fear": "fear",
    "happiness": "happiness",
    "neutral": "neutral",
    "sadness": "sadness",
    "surprised": "surprise",
}
GENDERS = {"female": "f", "male": "m"}
COLUMNS = ("file_id", "emotion", "speaker_id")


def _audio(samples: Path, file_id: str) -> Path | None:
    for candidate in (samples / file_id, samples / f"{Path(file_id).stem}.flac"):
        if candidate.exists():
            return candidate
    return None


@CORPORA.register("nemo")
def load_nemo(root: Path, on_error: str = "skip") -> Manifest:
    """nEMO (Polish, 9 actors, 6 emotions): ``data.tsv`` and ``samples/*.flac``; transcripts."""
    table = root / "data.tsv"
    if not table.exists():
        raise CorpusError(f"{root}: not an nEMO directory (no data.tsv)")
    with open(table, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise CorpusError(f"{table}: lacks column(s) {missing}")
        rows = list(reader)
    utterances, problems = [], []
    for line, row in enumerate(rows, start=2):
        file_id, emotion = row["file_id"].strip(), row["emotion"].strip()
        speaker = (row["speaker_id"] or "").strip()
        if emotion not in EMOTIONS:
            problem(f"{table}:{line}: unknown emotion {emotion!r}", on_error, problems)
            continue
        if not speaker:
            problem(f"{table}:{line}: empty speaker_id", on_error, problems)
            continue
        path = _audio(root / "samples", file_id)
        if path is None:
            problem(f"{table}:{line}: no audio for {file_id} in {root / 'samples'}", on_error,
                    problems)
            continue
        transcript = (row.get("raw_text") or row.get("normalized_text") or "").strip()
        utterances.append(
            Utterance(
                id=Path(file_id).stem,
                path=str(path),
                speaker=speaker,
                label=EMOTIONS[emotion],
                gender=GENDERS.get((row.get("gender") or "").strip()),
                corpus="nemo",
                transcript=transcript or None,
            )
        )
    return Manifest(utterances, problems)
