"""Emo-DB (Burkhardt et al., 2005) from its original layout: ``wav/``, ``silb/``, ``lablaut/``.

Labels come from the file name (``03a01Fa.wav`` = speaker 03, sentence a01, emotion F, version a),
never from third-party label files, some of which map the codes wrongly.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from emovox.corpora.manifest import Manifest, Utterance, Word
from emovox.corpora.registry import CORPORA, problem
from emovox.errors import CorpusError

EMOTIONS = {
    "W": "anger",
    "L": "boredom",
    "E": "disgust",
    "A": "fear",
    "F": "happiness",
    "T": "sadness",
    "N": "neutral",
}
GENDERS = {
    "03": "m", "08": "f", "09": "f", "10": "m", "11": "m",
    "12": "m", "13": "f", "14": "f", "15": "m", "16": "f",
}  # fmt: skip
SENTENCES = {
    "a01": "Der Lappen liegt auf dem Eisschrank.",
    "a02": "Das will sie am Mittwoch abgeben.",
    "a04": "Heute abend könnte ich es ihm sagen.",
    "a05": "Das schwarze Blatt Papier befindet sich da oben neben dem Holzstück.",
    "a07": "In sieben Stunden wird es soweit sein.",
    "b01": "Was sind denn das für Tüten, die da unter dem Tisch stehen?",
    "b02": "Sie haben es gerade hochgetragen und jetzt gehen sie wieder runter.",
    "b03": "An den Wochenenden bin ich jetzt immer nach Hause gefahren und habe Agnes besucht.",
    "b09": "Ich will das eben wegbringen und dann mit Karl was trinken gehen.",
    "b10": "Die wird auf dem Platz sein, wo wir sie immer hinlegen.",
}
NAME = re.compile(r"^(\d\d)([ab]\d\d)([A-Z])([a-z])$")


def read_silb(path: Path) -> list[tuple[float, str]]:
    """Syllable marks of a ``.silb`` file as (time, syllable) pairs.

    The times are syllable *onsets* (the first mark sits at the first phone's start in
    ``lablaut/``, and the closing ``.`` at the end of speech), despite the corpus notes.
    """
    marks = []
    for line in path.read_text(encoding="latin-1").splitlines():
        parts = line.strip().split(None, 1)  # tab-separated, in a few files spaces
        if len(parts) == 2:
            marks.append((float(parts[0]), parts[1].strip()))
    return marks


def _letters(text: str) -> str:
    return re.sub(r"[^a-zäöüß]", "", text.lower())


def align_words(transcript: str, marks: list[tuple[float, str]]) -> list[Word]:
    """Word timings from syllable marks: align the transcript's letters with the syllables'.

    Syllables are spelled phonetically ("la", "pen" for "Lappen"), so the alignment is by
    character similarity (difflib), and each word spans from its first syllable's onset to the
    next syllable's onset.
    """
    if len(marks) < 2:
        return []
    onsets = [t for t, _ in marks]
    syllables = [_letters(s) for _, s in marks[:-1]]
    syl_text, syl_of_char = "", []
    for i, s in enumerate(syllables):
        syl_text += s
        syl_of_char += [i] * len(s)
    words = [w for w in transcript.split() if _letters(w)]
    word_text, word_of_char = "", []
    for i, w in enumerate(words):
        word_text += _letters(w)
        word_of_char += [i] * len(_letters(w))
    first_syl: dict[int, int] = {}
    last_syl: dict[int, int] = {}
    matcher = difflib.SequenceMatcher(None, word_text, syl_text, autojunk=False)
    for a, b, size in matcher.get_matching_blocks():
        for k in range(size):
            w, s = word_of_char[a + k], syl_of_char[b + k]
            first_syl.setdefault(w, s)
            last_syl[w] = max(last_syl.get(w, s), s)
    result = []
    prev_end = 0
    for i, w in enumerate(words):
        lo = max(first_syl.get(i, prev_end), prev_end)
        hi = max(last_syl.get(i, lo), lo)
        hi = min(hi, len(syllables) - 1)
        result.append(Word(w.strip(".,?!"), onsets[lo], onsets[hi + 1]))
        prev_end = hi + 1 if hi + 1 < len(syllables) else hi
    return result


@CORPORA.register("emodb")
def load_emodb(root: Path, on_error: str = "skip") -> Manifest:
    """Emo-DB: ``wav/03a01Fa.wav`` (speaker, sentence, emotion, version); word timings from
    ``silb/``; trailing digital silence trimmed."""
    wav_dir = root / "wav"
    if not wav_dir.is_dir():
        raise CorpusError(f"{root}: not an Emo-DB directory (no wav/ folder)")
    utterances, problems = [], []
    for path in sorted(wav_dir.glob("*.wav")):
        match = NAME.match(path.stem)
        if not match:
            problem(f"{path}: file name does not follow Emo-DB's scheme", on_error, problems)
            continue
        speaker, sentence, code, _version = match.groups()
        if code not in EMOTIONS:
            problem(f"{path}: unknown emotion code {code!r}", on_error, problems)
            continue
        transcript = SENTENCES.get(sentence)
        silb = root / "silb" / f"{path.stem}.silb"
        words = align_words(transcript, read_silb(silb)) if transcript and silb.exists() else []
        utterances.append(
            Utterance(
                id=path.stem,
                path=str(path),
                speaker=speaker,
                label=EMOTIONS[code],
                gender=GENDERS.get(speaker),
                corpus="emodb",
                transcript=transcript,
                words=words,
            )
        )
    return Manifest(utterances, problems)
