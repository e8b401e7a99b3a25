"""Streaming cost and capacity, side by side in one run:

1. per-chunk processing time (p50, p99) of ``StreamingRecognizer.push`` on one core;
2. streaming vs recomputing features and GRU from the start when a chunk arrives at 2, 5, 10 s;
3. how many concurrent real-time WebSocket streams one server process sustains here, with
   loopback clients (bounded: each level streams 8 s of audio per client).

    .venv/bin/python benchmarks/streaming.py --model MODEL_DIR

MODEL_DIR is an ``emorl`` model directory, e.g. from
``emovox train configs/emodb_emorl.yaml --out models/emodb_emorl``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
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


async def _client(url: str, pcm: bytes, results: list) -> None:
    from websockets.asyncio.client import connect

    chunk = 32 * CHUNK_MS
    try:
        async with connect(url, max_queue=None) as ws:
            await ws.send(json.dumps({"sample_rate": 16000, "encoding": "pcm_s16le"}))
            await ws.recv()
            start = time.perf_counter()
            lag = 0.0
            for i, offset in enumerate(range(0, len(pcm), chunk)):
                due = start + i * CHUNK_MS / 1000
                now = time.perf_counter()
                if now < due:
                    await asyncio.sleep(due - now)
                lag = max(lag, time.perf_counter() - due)
                await ws.send(pcm[offset : offset + chunk])
            sent = time.perf_counter()
            await ws.send(json.dumps({"type": "end"}))
            while json.loads(await ws.recv())["type"] != "done":
                pass
            results.append({"ok": True, "drain": time.perf_counter() - sent, "lag": lag})
    except Exception as exc:  # a failed connection counts as a dropped stream
        results.append({"ok": False, "error": repr(exc)})


async def _load(url: str, n: int, pcm: bytes) -> list:
    results: list = []
    await asyncio.gather(*(_client(url, pcm, results) for _ in range(n)))
    return results


def capacity(model: str, levels: list[int], seconds: float) -> list[dict]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "emovox.cli", "serve", "--model", model,
                               "--port", str(port)], stderr=subprocess.DEVNULL,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.3)
        pcm = (long_audio(seconds) * 32767).astype("<i2").tobytes()
        rows = []
        for n in levels:
            results = asyncio.run(_load(f"ws://127.0.0.1:{port}", n, pcm))
            ok = [r for r in results if r["ok"]]
            drain = max((r["drain"] for r in ok), default=float("nan"))
            lag = max((r["lag"] for r in ok), default=float("nan"))
            # Sustained: every stream completed and the server's backlog at the end stayed
            # under one chunk plus a decision step.
            sustained = len(ok) == n and drain < 0.4
            rows.append({"streams": n, "completed": len(ok), "max_drain_s": drain,
                         "max_client_lag_s": lag, "sustained": sustained})
            print(rows[-1], flush=True)
            if not sustained:
                break
        return rows
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--levels", type=int, nargs="*", default=[10, 25, 50, 75, 100, 150])
    parser.add_argument("--seconds", type=float, default=8.0)
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
    cap = capacity(args.model, args.levels, args.seconds)
    best = max((r["streams"] for r in cap if r["sustained"]), default=0)
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
        f"WebSocket capacity: one `emovox serve` process, loopback clients in one other process, "
        f"each streaming {args.seconds:.0f} s in real time ({CHUNK_MS} ms chunks). Sustained = "
        "every stream completed and the backlog when it ended was < 0.4 s. "
        f"**Largest sustained level: {best} concurrent streams** (target ≥ 50).",
        "",
        "| streams | completed | max backlog at end | max client send lag | sustained |",
        "|---|---|---|---|---|",
        *[f"| {r['streams']} | {r['completed']} | {r['max_drain_s']:.3f} s | "
          f"{r['max_client_lag_s']:.3f} s | {'yes' if r['sustained'] else 'no'} |" for r in cap],
    ]
    write_section("streaming", "\n".join(lines))


if __name__ == "__main__":
    main()
