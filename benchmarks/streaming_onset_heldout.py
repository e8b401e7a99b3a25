"""The speech gate on material nobody tuned it on (issue 9): the bundled default model streams
nEMO speaker EB0 — a speaker held out of the default model's training and validation, never
looked at while the gate's settings were chosen (they were chosen on Emo-DB speakers with the
``../shared/data/noise`` clips) — clean, after 1 s of digital silence and after 1 s of faint
room noise, exactly as ``benchmarks/streaming_onset.py`` does on Emo-DB.

    .venv/bin/python benchmarks/streaming_onset_heldout.py [--speaker EB0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from results import machine, write_section
from streaming_onset import DATA, NOISES, SR, at_level, stream

from emovox.audio import load_audio
from emovox.corpora import load_corpus
from emovox.serving.model_dir import Recognizer, bundled_model_dir

CONDITIONS = ("clean", "1 s silence first", "1 s room noise (-45 dBFS) first")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speaker", default="EB0")
    args = parser.parse_args()
    rec = Recognizer(bundled_model_dir("gru"))
    labels = rec.labels
    manifest = load_corpus("nemo", DATA / "nemo", labels=labels).with_speakers([args.speaker])
    rng = np.random.default_rng(0)
    noises = [load_audio(DATA / "noise" / f"{n}.wav") for n in NOISES]
    hits = {c: {label: [0, 0] for label in labels} for c in CONDITIONS}
    undecided = dict.fromkeys(CONDITIONS, 0)
    start = time.time()
    for utt in manifest:
        wave = load_audio(utt.path)
        noise = noises[rng.integers(len(noises))]
        offset = rng.integers(len(noise) - SR)
        waves = {CONDITIONS[0]: wave,
                 CONDITIONS[1]: np.concatenate([np.zeros(SR, np.float32), wave]),
                 CONDITIONS[2]: np.concatenate([at_level(noise[offset : offset + SR], -45.0),
                                                wave])}
        for condition, w in waves.items():
            decisions = [e for e in stream(rec, w) if e["type"] == "decision"]
            hits[condition][utt.label][1] += 1
            if not decisions:
                undecided[condition] += 1
            elif decisions[0]["label"] == utt.label:
                hits[condition][utt.label][0] += 1
    rows = []
    for condition in CONDITIONS:
        recalls = [h / n for h, n in hits[condition].values() if n]
        cells = [f"{h}/{n}" for h, n in hits[condition].values()]
        rows.append(f"| {condition} | " + " | ".join(cells) +
                    f" | {np.mean(recalls):.3f} | {undecided[condition]} |")
    body = "\n".join([
        "## Streaming onset on a held-out speaker (streaming_onset_heldout)", "",
        f"{machine()}; {time.time() - start:.0f} s.", "", "```",
        f".venv/bin/python benchmarks/streaming_onset_heldout.py --speaker {args.speaker}",
        "```", "",
        f"The bundled default model streams every utterance of nEMO speaker {args.speaker} "
        "(held out of its training and validation; never used to choose the speech gate's "
        "settings) in 100 ms chunks. Correct decisions per class, UAR over the five classes, "
        "utterances with no decision.", "",
        "| condition | " + " | ".join(labels) + " | UAR | no decision |",
        "|---" * (len(labels) + 3) + "|", *rows])
    write_section("streaming_onset_heldout", body)
    print(body)


if __name__ == "__main__":
    main()
