"""Corpora whose file names carry the labels: RAVDESS and CREMA-D."""

from __future__ import annotations

import csv
from pathlib import Path

from emovox.corpora.manifest import Manifest, Utterance
from emovox.corpora.registry import problem, register_corpus

RAVDESS_EMOTIONS = {
    "01": "neutral",
    "02": "calm",
    "03": "happiness",
    "04": "sadness",
    "05": "anger",
    "06": "fear",
    "07": "disgust",
    "08": "surprise",
}
RAVDESS_STATEMENTS = {"01": "Kids are talking by the door.", "02": "Dogs are sitting by the door."}

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


@register_corpus("ravdess")
def load_ravdess(root: Path, on_error: str = "skip", include_song: bool = False) -> Manifest:
    """``Actor_XX/MM-VV-EE-II-SS-RR-AA.wav``: modality, vocal channel (01 speech, 02 song),
    emotion, intensity, statement, repetition, actor (odd = male)."""
    utterances, problems = [], []
    for path in sorted(root.glob("**/*.wav")):
        parts = path.stem.split("-")
        if len(parts) != 7 or not all(p.isdigit() for p in parts):
            problem(f"{path}: file name does not follow RAVDESS's scheme", on_error, problems)
            continue
        _modality, channel, emotion, intensity, statement, _rep, actor = parts
        if channel == "02" and not include_song:
            continue
        if emotion not in RAVDESS_EMOTIONS:
            problem(f"{path}: unknown emotion code {emotion!r}", on_error, problems)
            continue
        utterances.append(
            Utterance(
                id=path.stem,
                path=str(path),
                speaker=f"Actor_{actor}",
                label=RAVDESS_EMOTIONS[emotion],
                gender="m" if int(actor) % 2 else "f",
                session=f"intensity{intensity}",
                corpus="ravdess",
                transcript=RAVDESS_STATEMENTS.get(statement),
            )
        )
    return Manifest(utterances, problems)


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


@register_corpus("cremad")
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
