"""What a stream costs a service worker when many share it: CPU per second of audio with N
streams in one process, their encoder steps batched across streams (``StepBatcher``), side by
side for several model directories in one run (issue 26: the recogniser-layer default against
the GRU).

One process stands for one ``emovox serve`` worker (1 torch thread): N ``StreamingRecognizer``s
of one model, each fed different Emo-DB speech (files back to back) in 100 ms chunks through
``push_async``, one chunk of every stream per tick, as fast as the process goes; stream k starts
k mod 3 chunks late, so a third of the streams reach a 300 ms step on each tick (as streams
that started at different times do) and a step batches about N / 3 blocks. CPU time of the
whole run (gate, encoder, classifier, running adaptation) over N × the audio per stream gives
ms per stream-second; 2 cores hold about 2000 / that many real-time streams before the
network's share. The models alternate, N by N, so the machine's load hits each alike.

    .venv/bin/python benchmarks/stream_capacity.py --models A B ... [--streams 16 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

from results import machine, write_section
from service_load import CHUNK, speech, to_pcm

from emovox.serving.model_dir import Recognizer
from emovox.serving.streaming import StreamingRecognizer


async def run(rec: Recognizer, streams: int, seconds: float) -> dict[str, float]:
    """CPU ms per stream-second of audio, and the encoder's mean batch."""
    pcms = [to_pcm(speech(seconds, offset=7 * k)) for k in range(streams)]
    lanes = [StreamingRecognizer(rec) for _ in range(streams)]
    chunks = [[b""] * (k % 3) + [p[i : i + CHUNK] for i in range(0, len(p), CHUNK)]
              for k, p in enumerate(pcms)]
    batcher = getattr(lanes[0].model, "batcher", None)
    calls, blocks = (batcher.calls, batcher.blocks) if batcher else (0, 0)
    start = time.process_time()
    for tick in range(max(len(c) for c in chunks)):
        await asyncio.gather(*(lane.push_async(c[tick]) for lane, c in zip(lanes, chunks,
                                                                           strict=True)
                               if tick < len(c) and c[tick]))
    await asyncio.gather(*(lane.end_async() for lane in lanes))
    cpu = time.process_time() - start
    batch = (batcher.blocks - blocks) / max(batcher.calls - calls, 1) if batcher else 0.0
    return {"ms": 1000 * cpu / (streams * seconds), "batch": batch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--streams", type=int, nargs="+", default=[16, 50])
    parser.add_argument("--seconds", type=float, default=10.0, help="audio per stream")
    parser.add_argument("--section", default="stream_capacity")
    args = parser.parse_args()
    load = os.getloadavg()
    recs = {m: Recognizer(Path(m)) for m in args.models}
    for rec in recs.values():  # warm-up: lazy weights, the batcher's threads
        asyncio.run(run(rec, 2, 1.0))
    rows = []
    for n in args.streams:
        for model, rec in recs.items():
            result = asyncio.run(run(rec, n, args.seconds))
            rows.append((model, n, result))
            print(model, n, result, flush=True)
    end = os.getloadavg()
    lines = [
        "## Stream capacity of one worker: CPU per stream-second, steps batched (issue 26)",
        "",
        f"{machine()}; load average (1 / 5 / 15 min) {load[0]:.2f} / {load[1]:.2f} / "
        f"{load[2]:.2f} at the start, {end[0]:.2f} / {end[1]:.2f} / {end[2]:.2f} at the end "
        "(the machine is shared: CPU time, not wall time, and the models alternate).",
        "",
        "```",
        f".venv/bin/python benchmarks/stream_capacity.py --models {' '.join(args.models)} "
        f"--streams {' '.join(map(str, args.streams))} --seconds {args.seconds:g}"
        + (f" --section {args.section}" if args.section != "stream_capacity" else ""),
        "```",
        "",
        f"N streams of {args.seconds:g} s of Emo-DB speech in one process (one torch thread, as "
        "an `emovox serve` worker), 100 ms chunks, a third of the streams stepping on each tick; "
        "whole `StreamingRecognizer` (gate, encoder, classifier, running adaptation). "
        "Streams 2 cores would hold ≈ 2000 / (ms per stream-second), before the network.",
        "",
        "| model | streams | CPU ms per stream-second | mean encoder batch "
        "| ≈ streams on 2 cores |",
        "|---|---|---|---|---|",
        *[f"| `{m}` | {n} | {r['ms']:.1f} | {r['batch']:.1f} | {2000 / r['ms']:.0f} |"
          for m, n, r in rows],
    ]
    write_section(args.section, "\n".join(lines))


if __name__ == "__main__":
    main()
