"""Augmentation throughput on real Emo-DB audio, one process pinned to one core.

Seconds of audio augmented per second of compute (× real time) for each transform applied with
p = 1, for the full chain with p = 1 everywhere (worst case), and for the chain as
configs/paper3_robustness.yaml configures it (each p = 0.5), side by side with eGeMAPS LLD
extraction, the step that consumes the augmented audio. Target: the chain ≥ 50× real time.

    .venv/bin/python benchmarks/augmentation.py [--files 80]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from results import machine, write_section  # noqa: E402

from emovox.audio import load_audio  # noqa: E402
from emovox.augment import build_augmentation  # noqa: E402
from emovox.features import make_extractor  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
NOISE = str(DATA / "noise")
PARAMS = {
    "tempo": {"min_rate": 0.85, "max_rate": 1.20},
    "gain": {"min_gain_db": -6.0, "max_gain_db": 3.0},
    "noise": {"directory": NOISE, "min_nsr": 0.5, "max_nsr": 0.9},
    "reverb": {"rooms": 200, "min_rt60": 0.2, "max_rt60": 0.8},
}


def throughput(fn, waves: list[np.ndarray], seconds: float) -> float:
    rng = np.random.default_rng(0)
    fn(waves[0], rng)  # warm-up: noise clips loaded, room bank simulated or read from cache
    start = time.perf_counter()
    for w in waves:
        fn(w, rng)
    return seconds / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=80)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    paths = sorted((DATA / "emodb" / "wav").glob("*.wav"))[:: max(1, 535 // args.files)]
    waves = [load_audio(p) for p in paths[: args.files]]
    seconds = sum(len(w) for w in waves) / 16000
    rows = []
    for name, params in PARAMS.items():
        rows.append((name, throughput(build_augmentation({name: {**params, "p": 1.0}}), waves,
                                      seconds)))
    rows.append(("full chain, every p = 1", throughput(
        build_augmentation({n: {**p, "p": 1.0} for n, p in PARAMS.items()}), waves, seconds)))
    rows.append(("full chain as in paper3_robustness.yaml (each p = 0.5)", throughput(
        build_augmentation({n: {**p, "p": 0.5} for n, p in PARAMS.items()}), waves, seconds)))
    extractor = make_extractor("egemaps_lld")
    rows.append(("(for comparison) egemaps_lld extraction",
                 throughput(lambda w, _rng: extractor(w), waves, seconds)))
    for label, x in rows:
        print(f"{label:60s} {x:8.0f}x real time")
    chain = rows[4][1]
    lines = [
        "## Augmentation throughput",
        "",
        f"{len(waves)} Emo-DB files ({seconds:.0f} s of audio), one process pinned to one core; "
        f"{machine()}. Target: the chain ≥ 50× real time — "
        f"{'met' if chain >= 50 else 'MISSED'} ({chain:.0f}× with every transform applied).",
        "",
        "```",
        f".venv/bin/python benchmarks/augmentation.py --files {args.files}",
        "```",
        "",
        "| transform | × real time | vs the full chain (p = 1) |",
        "|---|---|---|",
        *[f"| {label} | {x:,.0f} | {x / chain:.2f}× |" for label, x in rows],
    ]
    write_section("augmentation", "\n".join(lines))


if __name__ == "__main__":
    main()
