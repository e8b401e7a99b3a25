"""Transcribed speech in LibriSpeech's layout, for training a recogniser (no emotion labels):

    ROOT/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac
    ROOT/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt   # lines "<id> <TRANSCRIPT>"
"""

from __future__ import annotations

from pathlib import Path

from emovox.corpora.manifest import Manifest, Utterance
from emovox.corpora.registry import CORPORA, problem


@CORPORA.register("librispeech")
def load_librispeech(root: Path, on_error: str = "skip") -> Manifest:
    """LibriSpeech layout: ``SPEAKER/CHAPTER/*.flac`` with ``*.trans.txt`` transcripts (no
    emotion labels: for training recognisers)."""
    utterances, problems = [], []
    for trans in sorted(root.rglob("*.trans.txt")):
        for number, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            utt_id, _, text = line.strip().partition(" ")
            audio = next((trans.parent / f"{utt_id}{ext}" for ext in (".flac", ".wav")
                          if (trans.parent / f"{utt_id}{ext}").exists()), None)
            if audio is None or not text:
                problem(f"{trans}:{number}: no audio file or empty transcript for {utt_id}",
                        on_error, problems)
                continue
            utterances.append(Utterance(id=utt_id, path=str(audio), speaker=utt_id.split("-")[0],
                                        session=trans.parent.name, transcript=text,
                                        corpus="librispeech"))
    return Manifest(utterances, problems)
