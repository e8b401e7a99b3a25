"""CREMA-D: labels, sentence and actor from the file name; gender from the demographics CSV."""

from __future__ import annotations

import csv
from pathlib import Path

from emovox.corpora.manifest import Manifest, Utterance
from emovox.corpora.registry import CORPORA, problem

CREMAD_EMOTIONS = {
    "ANG": "anger",
    "DIS": "disgust",
    "FEA": "fear",
    "HAP": "happiness",
    "NEU": "neutral",
    "SAD": "sadness",
}
CREMAD_SENTENCES = {
    "IEO": "It's eleven o'clock.",
    "TIE": "That is exactly what happened.",
    "IOM": "I'm on my way to the meeting.",
    "IWW": "I wonder what this is about.",
    "TAI": "The airplane is almost full.",
    "MTI": "Maybe tomorrow it will be cold.",
    "IWL": "I would like a new alarm clock.",
    "ITH": "I think I have a doctor's appointment.",
    "DFA": "Don't forget a jacket.",
    "ITS": "I think I've seen this before.",
    "TSI": "The surface is slick.",
    "WSI": "We'll stop in a couple of minutes.",
}


def _cremad_genders(root: Path) -> dict[str, str]:
    """Actor genders from ``VideoDemographics.csv`` when the release includes it."""
    for candidate in (root / "VideoDemographics.csv", root.parent / "VideoDemographics.csv"):
        if candidate.exists():
            with open(candidate, newline="", encoding="utf-8") as fh:
                return {
                    row["ActorID"]: row["Sex"][0].lower()
                    for row in csv.DictReader(fh)
                    if row.get("Sex")
                }
    return {}


@CORPORA.register("cremad")
def load_cremad(root: Path, on_error: str = "skip") -> Manifest:
    """``AudioWAV/1001_DFA_ANG_XX.wav``: actor, sentence, emotion, intensity (LO/MD/HI/XX)."""
    genders = _cremad_genders(root)
    utterances, problems = [], []
    for path in sorted(root.glob("**/*.wav")):
        parts = path.stem.split("_")
        if len(parts) != 4 or not parts[0].isdigit():
            problem(f"{path}: file name does not follow CREMA-D's scheme", on_error, problems)
            continue
        actor, sentence, emotion, level = parts
        if emotion not in CREMAD_EMOTIONS:
            problem(f"{path}: unknown emotion code {emotion!r}", on_error, problems)
            continue
        utterances.append(
            Utterance(
                id=path.stem,
                path=str(path),
                speaker=actor,
                label=CREMAD_EMOTIONS[emotion],
                gender=genders.get(actor),
                session=level,
                corpus="cremad",
                transcript=CREMAD_SENTENCES.get(sentence),
            )
        )
    return Manifest(utterances, problems)
