"""MELD's utterance tables (``train_sent_emo.csv``, ``dev_sent_emo.csv``, ``test_sent_emo.csv``):
text only, no audio.

MELD's protocol is its own train/dev/test split, not speaker-independent (the *Friends*
characters speak in every split). To express that split with emovox's speaker-based folds,
each utterance's speaker is ``<split>:<character>`` and its session is the split name; the
``split`` protocol (experiments/protocols.py) turns sessions train/dev/test into one fold.
Utterances have no audio (``path`` is empty).
"""

from __future__ import annotations

import csv
from pathlib import Path

from emovox.corpora.manifest import Manifest, Utterance
from emovox.corpora.registry import CORPORA, problem
from emovox.errors import CorpusError

SPLITS = {"train": "train_sent_emo.csv", "dev": "dev_sent_emo.csv", "test": "test_sent_emo.csv"}
COLUMNS = ("Utterance", "Speaker", "Emotion", "Dialogue_ID", "Utterance_ID")


@CORPORA.register("meld")
def load_meld(root: Path, on_error: str = "skip", splits: list[str] | None = None) -> Manifest:
    """``root`` holds MELD's CSVs; ``splits`` picks some of train/dev/test (default all)."""
    chosen = splits or list(SPLITS)
    unknown = set(chosen) - set(SPLITS)
    if unknown:
        raise CorpusError(f"MELD splits {sorted(unknown)} unknown; choose from {list(SPLITS)}")
    utterances, problems = [], []
    for split in chosen:
        path = root / SPLITS[split]
        if not path.exists():
            raise CorpusError(f"{path}: MELD table not found")
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise CorpusError(f"{path}: lacks column(s) {missing}")
            for line, row in enumerate(reader, start=2):
                utt_id = f"{split}_dia{row['Dialogue_ID']}_utt{row['Utterance_ID']}"
                if not row["Emotion"] or not row["Speaker"]:
                    problem(f"{path}:{line}: empty emotion or speaker for {utt_id}", on_error,
                            problems)
                    continue
                utterances.append(Utterance(
                    id=utt_id, path="", speaker=f"{split}:{row['Speaker']}",
                    label=row["Emotion"], session=split, corpus="meld",
                    transcript=row["Utterance"]))
    return Manifest(utterances, problems)
