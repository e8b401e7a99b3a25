"""IEMOCAP from the official ``IEMOCAP_full_release`` layout, with the papers' selection rules.

``SessionN/dialog/EmoEvaluation/<dialog>.txt`` holds, per utterance, a summary line
(``[start - end]  id  code  [val, act, dom]``), categorical annotator lines (``C-E2: Neutral;``)
and dimensional ones (``A-E3: val 3; act 2; dom 2;``). The speaker is the session plus the first
letter of the id's last part (``Ses01F_impro01_M012`` → ``Ses01M``), giving ten speakers.
"""

from __future__ import annotations

import re
from pathlib import Path

from emovox.corpora.manifest import Manifest, Utterance, Word
from emovox.corpora.registry import CORPORA, problem
from emovox.errors import CorpusError

CODES = {
    "neu": "neutral",
    "hap": "happiness",
    "exc": "excited",
    "ang": "anger",
    "sad": "sadness",
    "fru": "frustration",
    "sur": "surprise",
    "fea": "fear",
    "dis": "disgust",
    "oth": "other",
    "xxx": None,
}
#: Annotators' words in the categorical lines.
WORDS = {
    "neutral": "neutral",
    "happiness": "happiness",
    "excited": "excited",
    "anger": "anger",
    "sadness": "sadness",
    "frustration": "frustration",
    "surprise": "surprise",
    "fear": "fear",
    "disgust": "disgust",
    "other": "other",
}
SUMMARY = re.compile(
    r"^\[(?P<start>[\d.]+) - (?P<end>[\d.]+)\]\t(?P<id>\S+)\t(?P<code>\w+)\t"
    r"\[(?P<val>[\d.]+), (?P<act>[\d.]+), (?P<dom>[\d.]+)\]"
)
TRANSCRIPT = re.compile(r"^(?P<id>Ses\d\d[FM]_\S+) \[[\d.]+-[\d.]+\]: ?(?P<text>.*)$")


def speaker_of(utterance_id: str) -> str:
    """``Ses01F_impro01_M012`` → ``Ses01M`` (the letter of the last part is the speaker's)."""
    return utterance_id[:5] + utterance_id.rsplit("_", 1)[1][0]


def _categories(line: str) -> list[str]:
    """``C-E3:\tNeutral; Frustration;\t()`` → ["neutral", "frustration"]."""
    body = line.split(":", 1)[1].split("\t")[1] if "\t" in line else line.split(":", 1)[1]
    found = []
    for part in body.split(";"):
        word = part.strip().lower()
        if not word:
            continue
        found.append(WORDS.get(word, "other"))  # "Other:  sarcastic" etc.
    return found


def parse_evaluation(path: Path) -> list[dict]:
    """All utterance blocks of one EmoEvaluation file, in file order."""
    blocks: list[dict] = []
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = raw.rstrip()
        match = SUMMARY.match(line)
        if match:
            blocks.append(
                {
                    "id": match["id"],
                    "start": float(match["start"]),
                    "end": float(match["end"]),
                    "code": match["code"],
                    "valence": float(match["val"]),
                    "arousal": float(match["act"]),
                    "dominance": float(match["dom"]),
                    "votes": {},
                }
            )
        elif blocks and line.startswith("C-"):
            annotator = line.split(":", 1)[0]
            blocks[-1]["votes"][annotator] = _categories(line)
    return blocks


def read_transcripts(path: Path) -> dict[str, str]:
    texts = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            match = TRANSCRIPT.match(line.strip())
            if match:
                texts[match["id"]] = match["text"].strip()
    return texts


def select(
    block: dict,
    merge_excited: bool,
    min_agreement: int,
    drop_three_way: bool,
) -> tuple[str | None, str]:
    """The utterance's label under the selection rules, or None and the reason it is dropped."""
    label = CODES.get(block["code"], "unknown")
    if label == "unknown":
        return None, f"unknown category code {block['code']!r}"
    merge = {"excited": "happiness"} if merge_excited else {}
    votes = [[merge.get(c, c) for c in cats] for cats in block["votes"].values()]
    if drop_three_way:
        firsts = {cats[0] for cats in votes if cats}
        if len(firsts) >= 3:
            return None, "three different categories"
    if label is None:
        return None, "no majority (xxx)"
    label = merge.get(label, label)
    if min_agreement > 1:
        agree = sum(1 for cats in votes if label in cats)
        if agree < min_agreement:
            return None, f"only {agree} annotators chose {label}"
    return label, ""


def read_wdseg(path: Path) -> list[Word]:
    """Word timings of a forced alignment (``sentences/ForcedAlignment/<dialog>/<id>.wdseg``:
    ``SFrm EFrm SegAScr Word`` rows in 10 ms frames); silences, noises and sentence marks are
    skipped, pronunciation variants (``WORD(2)``) lose their suffix. Missing file: no words."""
    if not path.exists():
        return []
    words = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split()
        if len(parts) != 4 or not parts[0].isdigit() or not parts[1].isdigit():
            continue
        text = re.sub(r"\(\d+\)$", "", parts[3])
        if text.startswith(("<", "++", "+")):
            continue
        words.append(Word(text.lower(), int(parts[0]) / 100, (int(parts[1]) + 1) / 100))
    return words


@CORPORA.register("iemocap")
def load_iemocap(
    root: Path,
    on_error: str = "skip",
    merge_excited: bool = True,
    min_agreement: int = 2,
    drop_three_way: bool = True,
    sessions: list[int] | None = None,
    improvised_only: bool = False,
) -> Manifest:
    """Every utterance that survives the selection rules; use ``labels=`` for 4-class sets."""
    session_dirs = sorted(root.glob("Session[1-5]"))
    if not session_dirs:
        raise CorpusError(f"{root}: not an IEMOCAP_full_release directory (no Session1..5)")
    utterances, problems = [], []
    for session_dir in session_dirs:
        number = int(session_dir.name[-1])
        if sessions and number not in sessions:
            continue
        eval_dir = session_dir / "dialog" / "EmoEvaluation"
        if not eval_dir.is_dir():
            problem(f"{eval_dir}: missing EmoEvaluation directory", on_error, problems)
            continue
        for eval_file in sorted(eval_dir.glob("Ses*.txt")):
            dialog = eval_file.stem
            if improvised_only and "impro" not in dialog:
                continue
            texts = read_transcripts(session_dir / "dialog" / "transcriptions" / f"{dialog}.txt")
            try:
                blocks = parse_evaluation(eval_file)
            except (ValueError, IndexError) as exc:
                problem(f"{eval_file}: cannot parse ({exc})", on_error, problems)
                continue
            for block in blocks:
                label, why = select(block, merge_excited, min_agreement, drop_three_way)
                if label is None:
                    if why.startswith("unknown"):
                        problem(f"{eval_file}: {block['id']}: {why}", on_error, problems)
                    continue
                wav = session_dir / "sentences" / "wav" / dialog / f"{block['id']}.wav"
                speaker = speaker_of(block["id"])
                utterances.append(
                    Utterance(
                        id=block["id"],
                        path=str(wav),
                        speaker=speaker,
                        label=label,
                        gender=speaker[-1].lower(),
                        session=f"Ses0{number}",
                        corpus="iemocap",
                        votes=block["votes"],
                        valence=block["valence"],
                        arousal=block["arousal"],
                        dominance=block["dominance"],
                        transcript=texts.get(block["id"]),
                        words=read_wdseg(session_dir / "sentences" / "ForcedAlignment" / dialog
                                         / f"{block['id']}.wdseg"),
                    )
                )
    return Manifest(utterances, problems)

