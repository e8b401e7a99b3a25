"""RAVDESS: labels, statement and actor from the file name."""

from __future__ import annotations

from pathlib import Path

from emovox.corpora.manifest import Manifest, Utterance
from emovox.corpora.registry import CORPORA, problem

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

@CORPORA.register("ravdess")
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
