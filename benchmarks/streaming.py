"""Streaming cost and capacity, side by side in one run:

1. per-chunk processing time (p50, p99) of ``StreamingRecognizer.push`` on one core;
2. streaming vs recomputing features and GRU from the start when a chunk arrives at 2, 5, 10 s;
(the service's capacity, with event latency per concurrency level: benchmarks/service_load.py).

    .venv/bin/python benchmarks/streaming.py --model MODEL_DIR

MODEL_DIR is an ``emorl`` model directory, e.g. from
``emovox train configs/emodb_emorl.yaml --out models/emodb_emorl``.
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
from emovox.serving.model_dir import Recognizer  # noqa: E402
from emovox.serving.streaming import StreamingRecognizer  # noqa: E402

EMODB = Path(__file__).resolve().parents[2] / "shared" / "data" / "emodb"
CHUNK_MS = 100


def long_audio(seconds: float) -> np.ndarray:
    waves, total = [], 0
    for path in sorted((EMODB / "wav").glob("*.wav")):
        waves.append(load_audio(path))
        total += len(waves[-1])
        if total >= seconds * 16000:
            break
    return np.concatenate(waves)[: int(seconds * 16000)]


def chunk_times(rec: Recognizer, wave: np.ndarray) -> np.ndarray:
    stream = StreamingRecognizer(rec)
    chunk = 16 * CHUNK_MS
    times = []
    for start in range(0, len(wave), chunk):
        piece = wave[start : start + chunk]
        t = time.perf_counter()
        stream.push(piece)
        times.append(time.perf_counter() - t)
    return np.array(times)


def recompute_time(rec: Recognizer, wave: np.ndarray, repeats: int = 5) -> float:
    """Cost of answering at the end of ``wave`` by recomputing everything from the start."""
    net = rec.trained.members[0]
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        feats = torch.from_numpy(rec.features(wave))[None]
        with torch.no_grad():
            net.states(feats, torch.tensor([feats.shape[1]]))
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rec = Recognizer(args.model)
    wave = long_audio(30.0)
    chunk_times(rec, wave[:32000])  # warm-up
    times = chunk_times(rec, wave) * 1000
    p50, p99 = np.percentile(times, 50), np.percentile(times, 99)
    print(f"chunk p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    rows = []
    for at in (2, 5, 10):
        stream = StreamingRecognizer(rec)
        chunk = 16 * CHUNK_MS
        for start in range(0, at * 16000 - chunk, chunk):
            stream.push(wave[start : start + chunk])
        t = time.perf_counter()
        stream.push(wave[at * 16000 - chunk : at * 16000])
        streaming = time.perf_counter() - t
        recompute = recompute_time(rec, wave[: at * 16000])
        rows.append((at, streaming * 1000, recompute * 1000))
        print(f"at {at} s: streaming {streaming * 1000:.2f} ms, "
              f"recompute {recompute * 1000:.2f} ms")
    lines = [
        "## Streaming",
        "",
        f"EmoRL model `{args.model}`, {CHUNK_MS} ms chunks of real Emo-DB speech, one thread; "
        f"{machine()}.",
        "",
        "```",
        f".venv/bin/python benchmarks/streaming.py --model {args.model}",
        "```",
        "",
        f"Per-chunk `push` time over {len(times)} chunks (30 s of audio): **p50 {p50:.2f} ms, "
        f"p99 {p99:.2f} ms** (target p99 < 5 ms).",
        "",
        "| chunk arriving at | streaming (state carried) | recompute from start | ratio |",
        "|---|---|---|---|",
        *[f"| {at} s | {s:.2f} ms | {r:.2f} ms | {r / s:.1f}× |" for at, s, r in rows],
        "",
        "Service capacity (concurrent streams, event latency): `benchmarks/service_load.py`.",
    ]
    write_section("streaming", "\n".join(lines))


if __name__ == "__main__":
    main()
