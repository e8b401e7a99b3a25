"""Feature extraction throughput on real Emo-DB audio, one process, one thread.

Seconds of audio processed per second of compute (× real time) for every extractor, beside
openSMILE's eGeMAPS and ComParE functionals in the same run.

    .venv/bin/python benchmarks/feature_throughput.py [--files 80]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from results import machine, write_section  # noqa: E402

from emovox.audio import load_audio  # noqa: E402
from emovox.features import make_extractor  # noqa: E402

EMODB = Path(__file__).resolve().parents[2] / "shared" / "data" / "emodb"
EXTRACTORS = [
    ("mfcc_prosody", {}),
    ("mfcc_pitch", {}),
    ("egemaps_lld", {}),
    ("power_spectrogram", {}),
    ("log_mel", {}),
    ("waveform", {}),
    ("smile_functionals", {"feature_set": "eGeMAPSv02"}),
    ("smile_functionals", {"feature_set": "ComParE_2016"}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=80)
    args = parser.parse_args()
    torch.set_num_threads(1)
    paths = sorted((EMODB / "wav").glob("*.wav"))[:: max(1, 535 // args.files)][: args.files]
    waves = [load_audio(p) for p in paths]
    seconds = sum(len(w) for w in waves) / 16000
    rows = []
    for name, params in EXTRACTORS:
        extractor = make_extractor(name, **params)
        extractor(waves[0])  # warm-up (openSMILE builds its graph once)
        start = time.perf_counter()
        for w in waves:
            extractor(w)
        elapsed = time.perf_counter() - start
        label = name + (f" ({params['feature_set']})" if params else "")
        rows.append((label, extractor.dim, seconds / elapsed))
        print(f"{label:40s} {seconds / elapsed:10.0f}x real time")
    base = next(r[2] for r in rows if "eGeMAPSv02" in r[0])
    lines = [
        "## Feature extraction throughput",
        "",
        f"{len(waves)} Emo-DB files ({seconds:.0f} s of audio), one process, one thread; "
        f"{machine()}.",
        "",
        "```",
        f".venv/bin/python benchmarks/feature_throughput.py --files {args.files}",
        "```",
        "",
        "| extractor | dim | × real time | vs openSMILE eGeMAPS functionals |",
        "|---|---|---|---|",
        *[f"| {n} | {d} | {x:,.0f} | {x / base:.2f}× |" for n, d, x in rows],
    ]
    write_section("features", "\n".join(lines))
    assert np.isfinite(base)


if __name__ == "__main__":
    main()
