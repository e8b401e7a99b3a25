"""Streaming decisions with silence or faint room noise before the speech (issue 9).

Every anger/neutral utterance of the held-out speakers is streamed (100 ms chunks) by
``StreamingRecognizer`` three ways: clean; after 1 s of digital silence; after 1 s of a recorded
room-noise clip (``../shared/data/noise``: dishes, tap, exercise bike, cat; a seeded random
stretch) at a faint -45 dBFS RMS. Reported per class: recall of the stream's decision, plus
utterances with no decision and the mean audio heard at the decision. Silence, -60 dBFS white
noise and a 1 kHz tone (4 s each) are streamed too; any decision on them is a failure.

Protocol: speaker-independent, two folds over Emo-DB's speakers (A = 03 08 09 10 11,
B = 12 13 14 15 16): ``emovox train CONFIG corpus.speakers=A`` (one of A chooses the checkpoint)
is tested on B, and vice versa; the noise clips never appear in training (the config's
``noise_floor`` augmentation is synthetic).

    .venv/bin/python benchmarks/streaming_onset.py [--config configs/emodb_emorl.yaml]
        [--work runs/streaming_onset] [key=value ...]    # overrides for `emovox train`

Trained models are kept in --work and reused by a rerun.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from results import machine, write_section

from emovox.audio import load_audio
from emovox.corpora import load_corpus
from emovox.serving.model_dir import Recognizer
from emovox.serving.streaming import StreamingRecognizer

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
FOLDS = {"A": ["03", "08", "09", "10", "11"], "B": ["12", "13", "14", "15", "16"]}
NOISES = ["doing_the_dishes", "running_tap", "exercise_bike", "dude_miaowing"]
CHUNK = 1600
SR = 16000


def at_level(x: np.ndarray, dbfs: float) -> np.ndarray:
    return (x * (10 ** (dbfs / 20) / np.sqrt(np.mean(np.square(x, dtype=np.float64))))
            ).astype(np.float32)


def stream(rec: Recognizer, wave: np.ndarray) -> list[dict]:
    s = StreamingRecognizer(rec)
    events = []
    for start in range(0, len(wave), CHUNK):
        events += s.push(wave[start : start + CHUNK])
    return [e.to_dict() for e in events + s.end()]


def train(config: str, fold: str, work: Path, overrides: list[str]) -> Path:
    out = work / f"train_{fold}"
    if not (out / "model.json").exists():
        speakers = "[" + ",".join(f"'{s}'" for s in FOLDS[fold]) + "]"
        cmd = [sys.executable, "-m", "emovox.cli", "-q", "train", config,
               f"corpus.speakers={speakers}", *overrides, "--out", str(out)]
        print("running", " ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, check=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/emodb_emorl.yaml")
    parser.add_argument("--work", default="runs/streaming_onset")
    parser.add_argument("--noise-db", type=float, default=-45.0)
    parser.add_argument("--name", default="streaming_onset",
                        help="RESULTS.md section (one per config compared)")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    work = Path(args.work)
    manifest = load_corpus("emodb", DATA / "emodb", labels=["anger", "neutral"])
    noises = [load_audio(DATA / "noise" / f"{n}.wav") for n in NOISES]
    rng = np.random.default_rng(0)
    counts: dict[str, dict[str, list[int]]] = {}
    heard: dict[str, list[float]] = {}
    started = time.time()
    for fold, test_fold in (("A", "B"), ("B", "A")):
        rec = Recognizer(train(args.config, fold, work, args.overrides))
        for utt in manifest.with_speakers(FOLDS[test_fold]):
            wave = load_audio(utt.path)
            clip = noises[rng.integers(len(noises))]
            offset = rng.integers(len(clip) - SR)
            leads = {"clean": np.zeros(0, np.float32), "silence 1 s": np.zeros(SR, np.float32),
                     f"noise 1 s, {args.noise_db:g} dBFS": at_level(clip[offset:offset + SR],
                                                                  args.noise_db)}
            for name, lead in leads.items():
                decisions = [e for e in stream(rec, np.concatenate([lead, wave]))
                             if e["type"] == "decision"]
                hit = [0, 0, 0]  # correct, total, undecided
                hit[1] = 1
                if decisions:
                    hit[0] = int(decisions[0]["label"] == utt.label)
                    heard.setdefault(name, []).append(decisions[0]["time"])
                else:
                    hit[2] = 1
                c = counts.setdefault(name, {}).setdefault(utt.label, [0, 0, 0])
                for i in range(3):
                    c[i] += hit[i]
    t = np.arange(4 * SR) / SR
    probes = {"silence": np.zeros(4 * SR, np.float32),
              "white noise -60 dBFS": at_level(rng.standard_normal(4 * SR), -60.0),
              "1 kHz tone": (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)}
    false = {name: sum(e["type"] == "decision" for e in stream(rec, w))
             for name, w in probes.items()}
    labels = ["anger", "neutral"]
    rows = ["| condition | anger recall | neutral recall | UAR | no decision | mean heard at "
            "decision (s) |", "|---|---|---|---|---|---|"]
    summary = {}
    for name, per in counts.items():
        recalls = {k: per[k][0] / per[k][1] for k in labels}
        summary[name] = recalls
        rows.append(f"| {name} | {per['anger'][0]}/{per['anger'][1]} ({recalls['anger']:.3f}) | "
                    f"{per['neutral'][0]}/{per['neutral'][1]} ({recalls['neutral']:.3f}) | "
                    f"{np.mean(list(recalls.values())):.3f} | "
                    f"{sum(per[k][2] for k in labels)} | {np.mean(heard.get(name, [0])):.2f} |")
    extra = " ".join(args.overrides)
    body = (f"## Streaming onset: decisions with leading silence or noise ({args.name})\n\n"
            f"`{args.config}`{' ' + extra if extra else ''}; speaker-independent, 2 folds "
            f"(train speakers {' '.join(FOLDS['A'])} → test {' '.join(FOLDS['B'])}, and back), "
            f"seed 0; 100 ms chunks, default gate. Command: `.venv/bin/python "
            f"benchmarks/streaming_onset.py --config {args.config} --name {args.name}"
            f"{' ' + extra if extra else ''}`. {machine()}; {time.time() - started:.0f} s.\n\n"
            + "\n".join(rows)
            + "\n\nDecisions on 4 s of non-speech (must be 0): "
            + ", ".join(f"{k} {v}" for k, v in false.items()) + ".\n")
    print(body)
    print(json.dumps({"summary": summary, "false_decisions": false}))
    write_section(args.name, body)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
