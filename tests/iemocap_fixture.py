"""Writes a small tree in IEMOCAP_full_release's exact layout, with synthesised speech-like audio
or, given the Emo-DB corpus, its real recordings as wavs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from conftest import speech_like

#: (utterance id, summary code, [val, act, dom], categorical annotator lines)
BLOCKS = {
    "Ses01F_impro01": [
        ("Ses01F_impro01_F000", "neu", (2.5, 2.5, 2.5),
         ["Neutral;", "Neutral; Frustration;", "Neutral;"]),           # kept: neutral (3 agree)
        ("Ses01F_impro01_M000", "ang", (1.5, 4.0, 4.0),
         ["Anger;", "Anger; Frustration;", "Frustration;"]),            # kept: anger (2 agree)
        ("Ses01F_impro01_F001", "xxx", (2.0, 3.0, 3.0),
         ["Neutral;", "Anger;", "Sadness;"]),                           # dropped: three-way
        ("Ses01F_impro01_M001", "exc", (4.0, 4.0, 3.0),
         ["Excited;", "Happiness;", "Excited;"]),                       # kept: happiness (merged)
    ],
    "Ses01M_script01_1": [
        ("Ses01M_script01_1_F000", "sad", (1.5, 1.5, 2.0),
         ["Sadness;", "Sadness;", "Neutral;"]),                         # kept: sadness
        ("Ses01M_script01_1_M000", "fru", (2.0, 3.5, 3.5),
         ["Frustration;", "Frustration;", "Anger;"]),                   # kept: frustration
        ("Ses01M_script01_1_M001", "hap", (4.5, 3.0, 3.0),
         ["Happiness;", "Neutral;", "Surprise;"]),                      # dropped: three-way
    ],
    "Ses02F_impro02": [
        ("Ses02F_impro02_F000", "ang", (1.0, 4.5, 4.0),
         ["Anger;", "Anger;", "Anger;"]),                               # kept: anger
        ("Ses02F_impro02_M000", "neu", (3.0, 2.0, 2.5),
         ["Neutral;", "Neutral;", "Sadness;"]),                         # kept: neutral
        ("Ses02F_impro02_M001", "hap", (4.0, 3.0, 3.0),
         ["Happiness;", "Neutral;", "Neutral; Happiness;"]),            # kept: happiness (2)
    ],
}
ANNOTATORS = ["C-E2", "C-E3", "C-F1"]
TRANSCRIPTS = {"Ses01F_impro01_F000": "Excuse me.", "Ses02F_impro02_M000": "Yeah, I know."}


def write_wdseg(path: Path, text: str, seconds: float) -> None:
    """A forced alignment in IEMOCAP's ``.wdseg`` format: the words share the audio evenly
    after 0.2 s of silence; 10 ms frames."""
    words = text.upper().replace(",", "").replace(".", "").split()
    frames = int(seconds * 100)
    step = (frames - 20) // len(words)
    rows = [f"{0:5d} {19:6d} {-1000:10d} <s>"]
    for i, w in enumerate(words):
        rows.append(f"{20 + i * step:5d} {20 + (i + 1) * step - 1:6d} {-5000:10d} "
                    f"{w}{'(2)' if i == 1 else ''}")
    rows.append(f"{20 + len(words) * step:5d} {frames - 1:6d} {-900:10d} </s>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(" SFrm  EFrm    SegAScr Word\n" + "\n".join(rows)
                    + "\n Total score:  -12345\n")


def _audio(emodb: Path | None, k: int) -> np.ndarray:
    """The k-th utterance at 16 kHz: Emo-DB's k-th file, or 1.5–2.2 s of speech-like audio."""
    if emodb is None:
        return speech_like(1.5 + 0.1 * (k % 8), seed=k)
    audio, rate = sf.read(sorted((emodb / "wav").glob("*.wav"))[k])
    return soxr.resample(audio, rate, 16000)


def write_iemocap(root: Path, emodb: Path | None = None) -> Path:
    """Returns the ``IEMOCAP_full_release`` directory."""
    base = root / "IEMOCAP_full_release"
    k = 0
    for dialog, blocks in BLOCKS.items():
        session = base / f"Session{int(dialog[3:5])}"
        lines, transcript, t = [], [], 0.5
        for utt_id, code, (val, act, dom), cats in blocks:
            audio = _audio(emodb, k)
            k += 1
            end = t + len(audio) / 16000
            wav_path = session / "sentences" / "wav" / dialog / f"{utt_id}.wav"
            wav_path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(wav_path, audio, 16000, subtype="PCM_16")
            if utt_id in TRANSCRIPTS:
                write_wdseg(session / "sentences" / "ForcedAlignment" / dialog
                            / f"{utt_id}.wdseg", TRANSCRIPTS[utt_id], len(audio) / 16000)
            lines.append(f"[{t:.4f} - {end:.4f}]\t{utt_id}\t{code}\t"
                         f"[{val:.4f}, {act:.4f}, {dom:.4f}]")
            lines += [f"{a}:\t{c}\t()" for a, c in zip(ANNOTATORS, cats, strict=True)]
            lines += [f"A-E3:\tval {int(val)}; act {int(act)}; dom  {int(dom)};\t()"]
            lines.append("")
            transcript.append(f"{utt_id} [{t:08.4f}-{end:08.4f}]: "
                              f"{TRANSCRIPTS.get(utt_id, 'Some words here.')}")
            t = end + 0.3
        eval_dir = session / "dialog" / "EmoEvaluation"
        eval_dir.mkdir(parents=True, exist_ok=True)
        header = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
        (eval_dir / f"{dialog}.txt").write_text(header + "\n".join(lines) + "\n")
        tdir = session / "dialog" / "transcriptions"
        tdir.mkdir(parents=True, exist_ok=True)
        (tdir / f"{dialog}.txt").write_text("\n".join(transcript) + "\n")
    return base
