"""Load and fault benchmark of ``emovox serve``, started exactly as the docs start it.

1. Concurrent real-time streams over ``WS /v1/stream`` (10, 25, 50, 100, 200; a level is
   skipped once more than a tenth of the streams fell behind at the level below): each
   client streams ``--seconds`` of real Emo-DB speech in 100 ms chunks at real-time pace and
   reads every event while sending. Event latency = arrival of a ``step`` event minus the send
   time of the chunk that completed its 300 ms step (which chunk that is comes from replaying
   the same audio and chunking through ``StreamingRecognizer`` here). A stream "fell behind"
   when any of its events came more than one step (300 ms) after its chunk.
2. ``POST /v1/predict`` with 3-second WAV files: requests/s and latency, from ``--post-clients``
   keep-alive connections for ``--post-seconds``.
3. Faults: ``--fault-streams`` well-behaved streams alone, then again with abusive clients in a
   second process: 500 idle TCP connections, clients sending garbage frames, clients flooding
   audio faster than real time (64 kB frames back to back, and 1 MiB frames), oversized uploads
   (declared and chunked) and abrupt disconnects mid-stream.

    .venv/bin/python benchmarks/service_load.py --model MODEL_DIR

The server runs as ``emovox serve --model MODEL_DIR --port PORT`` (defaults: 2 workers on two
cores, 1 torch thread each); the clients run in this process (and the abusers in one more) on
the same machine, so they compete with the server for the cores. Results go into
benchmarks/RESULTS.md with the machine's load average at the start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import io
import json
import multiprocessing as mp
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import uvloop
from results import machine, write_section
from websockets.asyncio.client import connect

from emovox.audio import load_audio
from emovox.serving.streaming import StreamingRecognizer

EMODB = Path(__file__).resolve().parents[2] / "shared" / "data" / "emodb"
CHUNK = 3200  # bytes: 100 ms of 16 kHz 16-bit PCM
HELLO = json.dumps({"sample_rate": 16000, "encoding": "pcm_s16le"})


def speech(seconds: float, offset: int = 0) -> np.ndarray:
    """Real Emo-DB utterances back to back, from the ``offset``-th file on."""
    files = sorted((EMODB / "wav").glob("*.wav"))
    waves, total, i = [], 0, offset
    while total < seconds * 16000:
        waves.append(load_audio(files[i % len(files)]))
        total += len(waves[-1])
        i += 1
    return np.concatenate(waves)[: int(seconds * 16000)]


def to_pcm(wave: np.ndarray) -> bytes:
    return (np.clip(wave, -1, 1) * 32767).astype("<i2").tobytes()


def step_schedule(model: str, pcm: bytes) -> list[tuple[int, float]]:
    """For the n-th step event of the stream, the index of the chunk that caused it (the number
    of chunks for steps that the end message causes) and the event's time."""
    stream = StreamingRecognizer(model)
    schedule = []
    chunks = [pcm[i : i + CHUNK] for i in range(0, len(pcm), CHUNK)]
    for i, chunk in enumerate(chunks):
        schedule += [(i, e.to_dict()["time"]) for e in stream.push(chunk) if e.type == "step"]
    schedule += [(len(chunks), e.to_dict()["time"]) for e in stream.end() if e.type == "step"]
    return schedule


def push_cost(model: str, pcm: bytes, rounds: int = 3) -> dict[str, float]:
    """Server-side cost of one stream without the network: CPU ms of ``StreamingRecognizer.push``
    per second of audio (100 ms chunks), in all and by part (the speech gate, incremental
    features, the GRU, the classifier; "other" is the rest of push), measured in this process
    with the emovox it imports (so a baseline run measures the baseline's code)."""
    from emovox.features.incremental import StreamingFeatures
    from emovox.serving.streaming import SpeechGate

    spent: dict[str, float] = dict.fromkeys(("gate", "features", "gru", "classifier"), 0.0)

    def timed(owner, name: str, key: str):
        inner = getattr(owner, name)

        def wrapper(*args, **kwargs):
            start = time.process_time()
            try:
                return inner(*args, **kwargs)
            finally:
                spent[key] += time.process_time() - start
        return wrapper

    gate_method = "judge" if hasattr(SpeechGate, "judge") else "__call__"
    saved = [(SpeechGate, gate_method, getattr(SpeechGate, gate_method)),
             (StreamingFeatures, "push", StreamingFeatures.push)]
    stream = StreamingRecognizer(model)
    chunks = [pcm[i : i + CHUNK] for i in range(0, len(pcm), CHUNK)]
    try:
        for cls, name, _ in saved:
            setattr(cls, name, timed(cls, name, "gate" if cls is SpeechGate else "features"))
        owner = getattr(stream, "model", stream)  # the method's streamer (or, before, push's)
        if hasattr(owner, "batcher"):  # a recogniser in blocks: its encoder is the features
            for name in ("encode_block", "encode_cached"):  # the encoder, cached or not
                setattr(owner.batcher, name, timed(owner.batcher, name, "features"))
            owner.classify = timed(owner, "classify", "classifier")
        else:
            owner.gru = timed(owner, "gru", "gru")
            owner.classifier = timed(owner, "classifier", "classifier")
        for chunk in chunks[:50]:  # warm-up
            stream.push(chunk)
        stream.end()
        spent.update(dict.fromkeys(spent, 0.0))
        start = time.process_time()
        for _ in range(rounds):
            for chunk in chunks:
                stream.push(chunk)
            stream.end()
        total = time.process_time() - start
    finally:
        for cls, name, original in saved:
            setattr(cls, name, original)
    seconds = rounds * len(pcm) / 32000
    cost = {k: 1000 * v / seconds for k, v in spent.items()}
    return {"total": 1000 * total / seconds, **cost,
            "other": 1000 * (total - sum(spent.values())) / seconds}


# ---- well-behaved streams ---------------------------------------------------------------

async def good_client(url: str, pcm: bytes, schedule: list[tuple[int, float]],
                      delay: float) -> dict:
    await asyncio.sleep(delay)
    chunks = [pcm[i : i + CHUNK] for i in range(0, len(pcm), CHUNK)]
    sent = [0.0] * (len(chunks) + 1)
    latencies: list[float] = []
    lag = 0.0
    try:
        async with connect(url, max_queue=None, ping_interval=None) as ws:
            await ws.send(HELLO)
            assert json.loads(await ws.recv())["type"] == "ready"

            async def reader() -> None:
                steps = 0
                async for message in ws:
                    now = time.perf_counter()
                    event = json.loads(message)
                    if event["type"] == "step":
                        chunk, at = schedule[steps]
                        if event["time"] != at:
                            raise RuntimeError("the server's steps differ from the replay here "
                                               "(same emovox on both sides?)")
                        latencies.append(now - sent[chunk])
                        steps += 1
                    elif event["type"] in ("done", "error"):
                        return

            task = asyncio.create_task(reader())
            try:
                start = time.perf_counter()
                for i, chunk in enumerate(chunks):
                    due = start + (i + 1) * 0.1  # the chunk's audio is complete at this time
                    if (wait := due - time.perf_counter()) > 0:
                        await asyncio.sleep(wait)
                    sent[i] = time.perf_counter()
                    lag = max(lag, sent[i] - due)
                    await ws.send(chunk)
                sent[-1] = time.perf_counter()
                await ws.send(json.dumps({"type": "end"}))
                await asyncio.wait_for(task, 60)
            finally:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        ok = len(latencies) == len(schedule)
        return {"ok": ok, "latencies": latencies, "lag": lag}
    except Exception as exc:  # a refused or dropped stream
        return {"ok": False, "latencies": latencies, "lag": lag, "error": repr(exc)}


def server_cpu(pid: int) -> float:
    """CPU seconds used so far by the server and its worker processes."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid] + [int(c) for c in subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)],
                                                   capture_output=True, text=True).stdout.split()]
    for p in pids:
        with contextlib.suppress(FileNotFoundError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def run_streams(url: str, n: int, pcm: bytes, schedule: list[tuple[int, float]],
                server_pid: int) -> dict:
    async def body():
        return await asyncio.gather(*(good_client(url, pcm, schedule, random.uniform(0, 1.0))
                                      for _ in range(n)))

    load = os.getloadavg()[0]
    cpu = server_cpu(server_pid)
    client = time.process_time()
    results = uvloop.run(body())  # the clients' own cost is lower on libuv's loop, as the server's
    client = time.process_time() - client
    cpu = server_cpu(server_pid) - cpu
    lat = np.array([x for r in results for x in r["latencies"]]) * 1000
    return {
        "streams": n,
        "completed": sum(r["ok"] for r in results),
        "events": len(lat),
        "p50": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
        "p99": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
        "max": float(lat.max()) if len(lat) else float("nan"),
        "behind": sum((max(r["latencies"], default=0) > 0.3) or not r["ok"] for r in results),
        "client_lag": max(r["lag"] for r in results) * 1000,
        "errors": sorted({r["error"][:80] for r in results if "error" in r})[:3],
        # server CPU per real-time stream, in % of one core (the audio lasts len(pcm)/32000 s)
        "cpu": 100 * cpu / (n * len(pcm) / 32000),
        # the same for the clients (this process), which share the server's cores
        "client_cpu": 100 * client / (n * len(pcm) / 32000),
        "load": load,
    }


# ---- POST /v1/predict ---------------------------------------------------------------------

def wav_files(k: int) -> list[bytes]:
    out = []
    for i in range(k):
        buf = io.BytesIO()
        sf.write(buf, speech(3.0, offset=7 * i), 16000, format="WAV", subtype="PCM_16")
        out.append(buf.getvalue())
    return out


def run_posts(port: int, clients: int, seconds: float) -> dict:
    files = wav_files(8)
    latencies: list[float] = []
    failures = [0]
    stop = time.perf_counter() + seconds

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        j = i
        while time.perf_counter() < stop:
            t = time.perf_counter()
            conn.request("POST", "/v1/predict", body=files[j % len(files)],
                         headers={"Content-Type": "audio/wav"})
            res = conn.getresponse()
            res.read()
            if res.status == 200:
                latencies.append(time.perf_counter() - t)
            else:
                failures[0] += 1
            j += 1

    start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    lat = np.array(latencies) * 1000
    return {"clients": clients, "requests": len(lat), "failures": failures[0],
            "rps": len(lat) / wall, "p50": float(np.percentile(lat, 50)),
            "p99": float(np.percentile(lat, 99))}


# ---- abusive clients (run in their own process) --------------------------------------------

async def _abuse(port: int, seconds: float, counts: dict, ready) -> None:
    url = f"ws://127.0.0.1:{port}/v1/stream"
    rng = np.random.default_rng(0)
    noise = rng.integers(-3000, 3000, 32000, dtype=np.int16).tobytes()
    idle = []
    for _ in range(500):  # connected, never say anything
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        idle.append(writer)
    counts["idle"] = len(idle)
    ready.set()  # imports done, idle connections open: measuring starts now
    stop = time.monotonic() + seconds

    async def loop(name, action):
        while time.monotonic() < stop:
            with contextlib.suppress(Exception):
                await action()
            counts[name] = counts.get(name, 0) + 1
            await asyncio.sleep(0.5)

    async def garbage():
        async with connect(url) as ws:
            await ws.send(bytes(rng.integers(0, 256, 777, dtype=np.uint8)))  # before handshake
            await ws.recv()
        async with connect(url) as ws:
            await ws.send(HELLO)
            await ws.recv()
            await ws.send("{\"type\": " + "x" * 500)
            await ws.recv()

    async def flood():  # 2 s frames back to back: throttled to real time after the burst
        async with connect(url) as ws:
            await ws.send(HELLO)
            await ws.recv()
            end = time.monotonic() + 10
            while time.monotonic() < min(end, stop):
                await ws.send(noise * 2)

    async def huge_frames():
        async with connect(url, max_size=None) as ws:
            await ws.send(HELLO)
            await ws.recv()
            await ws.send(noise * 33)  # 1 MiB
            await ws.recv()

    async def oversized_upload():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n")
        for _ in range(40):
            writer.write(noise * 8)
            await writer.drain()
        await asyncio.wait_for(reader.read(1000), 5)
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(400):
            writer.write(b"%x\r\n" % len(noise) + noise + b"\r\n")
            await writer.drain()
        await asyncio.wait_for(reader.read(1000), 5)
        writer.close()

    async def vanish():
        async with connect(url) as ws:
            await ws.send(HELLO)
            await ws.recv()
            await ws.send(noise[:16000])  # 0.5 s
            await asyncio.sleep(0.3)
            ws.transport.abort()

    tasks = [loop("garbage", garbage) for _ in range(3)]
    tasks += [loop("flood", flood) for _ in range(2)]
    tasks += [loop("huge_frames", huge_frames) for _ in range(2)]
    tasks += [loop("oversized_upload", oversized_upload)]
    tasks += [loop("vanish", vanish) for _ in range(3)]
    await asyncio.gather(*tasks)
    for writer in idle:
        writer.close()


def abuse(port: int, seconds: float, counts, ready) -> None:
    local: dict = {}
    asyncio.run(_abuse(port, seconds, local, ready))
    counts.update(local)


# ---- the server ------------------------------------------------------------------------------

def start_server(model: str, port: int, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "emovox.cli", "serve", "--model", model, "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log.open("w"), text=True)
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"server did not start: {log.read_text()[-2000:]}")
    return proc


def fmt(row: dict) -> str:
    return (f"| {row['streams']} | {row['completed']} | {row['events']} | {row['p50']:.1f} ms | "
            f"**{row['p99']:.1f} ms** | {row['max']:.0f} ms | {row['behind']} | "
            f"{row['client_lag']:.0f} ms | {row['cpu']:.2f} % | {row['client_cpu']:.2f} % | "
            f"{row['load']:.1f} |")


HEADER = ("| streams | completed | events | p50 latency | p99 latency | max | fell behind | "
          "client send lag (max) | server CPU per stream | client CPU per stream | "
          "load (1 min) |\n|---|---|---|---|---|---|---|---|---|---|---|")


def stream_lines(args, load, rows: list[dict], skipped: list[int], cost: dict) -> list[str]:
    default_levels = [10, 25, 50, 100, 200]
    extra = "" if args.levels == default_levels else \
        " --levels " + " ".join(str(n) for n in args.levels)
    extra += " --all-levels" if args.all_levels else ""
    extra += " --streams-only" if args.streams_only else ""
    extra += f" --section {args.section}" if args.section != "service_load" else ""
    return [
        f"## Service load ({args.title})",
        "",
        f"{machine()}; load average at the start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} "
        "(1 / 5 / 15 min; the machine is shared). Server: `emovox serve --model MODEL --port "
        "PORT` as documented (2 workers, 1 torch thread each); clients in this process (on "
        "uvloop), abusers in one more, all on the same cores.",
        "",
        "```",
        f".venv/bin/python benchmarks/service_load.py --model {args.model}{extra}",
        "```",
        "",
        f"Real-time streams on `WS /v1/stream`: {args.seconds:g} s of Emo-DB speech each, 100 ms "
        "chunks, every event read while sending. Latency: a `step` event's arrival minus the "
        "send time of the chunk completing its 300 ms step. Fell behind: a stream with any event "
        "> 300 ms late, or not completed. Server (client) CPU per stream: CPU time of the "
        "server's processes (of this benchmark's clients) during the level over the streams' "
        "audio time, in % of one core (2 cores = 200 %: capacity on an idle machine ≈ 200 / "
        "(server + client figure)). Target: ≥ 100 streams with p99 < 100 ms.",
        "",
        f"One stream's server-side cost without the network (`StreamingRecognizer.push` in "
        f"this process, {args.seconds:g} s of the same speech three times, CPU time): "
        f"**{cost['total']:.1f} ms per second of audio** ({cost['total'] / 10:.2f} % of a "
        f"core): speech gate {cost['gate']:.1f}, features (a recogniser's: its encoder) "
        f"{cost['features']:.1f}, GRU "
        f"{cost['gru']:.1f}, classifier {cost['classifier']:.1f}, the rest of `push` "
        f"{cost['other']:.1f} ms. The server CPU column minus this is what a stream costs "
        "beyond one warm `push`: WebSocket frames, JSON, the event loop, and the caches that "
        "many interleaved streams share.",
        "",
        HEADER,
        *[fmt(r) for r in rows],
        *([f"| {', '.join(map(str, skipped))} | not run: more than a tenth of the streams fell "
           "behind at the level below | | | | | | | | | |"] if skipped else []),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--levels", type=int, nargs="*", default=[10, 25, 50, 100, 200])
    parser.add_argument("--seconds", type=float, default=20.0, help="audio per stream")
    parser.add_argument("--post-clients", type=int, default=4)
    parser.add_argument("--post-seconds", type=float, default=15.0)
    parser.add_argument("--fault-streams", type=int, default=10,
                        help="well-behaved streams in the fault runs (a level the machine holds)")
    parser.add_argument("--all-levels", action="store_true",
                        help="run every level, even after one where streams fell behind")
    parser.add_argument("--streams-only", action="store_true",
                        help="only the stream levels (no POST or fault runs): a baseline")
    parser.add_argument("--section", default="service_load",
                        help="the RESULTS.md section to write (another name keeps a baseline)")
    parser.add_argument("--title", default="`emovox serve`", help="what the section measured")
    parser.add_argument("--post-only", action="store_true",
                        help="only part 2 (POST /v1/predict), into its own section")
    parser.add_argument("--baseline", help="another model directory served beside --model: "
                        "each level runs on both, baseline first (implies --streams-only)")
    args = parser.parse_args()
    if args.baseline:
        return side_by_side(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the server on the way out

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    load = os.getloadavg()
    log = Path(tempfile.mkdtemp()) / "serve.log"
    server = start_server(args.model, port, log)
    url = f"ws://127.0.0.1:{port}/v1/stream"
    if args.post_only:
        return post_only(args, server, port, load)
    pcm = to_pcm(speech(args.seconds))
    schedule = step_schedule(args.model, pcm)
    cost = push_cost(args.model, pcm)
    print("push", cost, flush=True)
    try:
        rows, skipped = [], []
        for n in args.levels:
            if rows and rows[-1]["behind"] > rows[-1]["streams"] // 10 and not args.all_levels:
                skipped.append(n)  # the level below already fell behind: spare the machine
                continue
            rows.append(run_streams(url, n, pcm, schedule, server.pid))
            print(rows[-1], flush=True)
        if args.streams_only:
            return write_section(args.section,
                                 "\n".join(stream_lines(args, load, rows, skipped, cost)))
        post = run_posts(port, args.post_clients, args.post_seconds)
        print(post, flush=True)
        alone = run_streams(url, args.fault_streams, pcm, schedule, server.pid)
        print("alone", alone, flush=True)
        manager = mp.Manager()
        counts, ready = manager.dict(), manager.Event()
        abuser = mp.get_context("spawn").Process(target=abuse,
                                                 args=(port, args.seconds + 3, counts, ready))
        abuser.start()
        ready.wait(300)  # not while the abusers' process is still importing
        time.sleep(1.0)  # the first abusers are at work
        mixed = run_streams(url, args.fault_streams, pcm, schedule, server.pid)
        abuser.join()
        counts = dict(counts)
        print("with abusers", mixed, counts, flush=True)
        alive = server.poll() is None
    finally:
        server.terminate()
        server.wait(30)
    tracebacks = log.read_text().count("Traceback")

    lines = [
        *stream_lines(args, load, rows, skipped, cost),
        "",
        f"`POST /v1/predict`, 3 s WAV files, {post['clients']} keep-alive clients for "
        f"{args.post_seconds:g} s: **{post['rps']:.1f} requests/s** (target ≥ 20), latency p50 "
        f"{post['p50']:.0f} ms, p99 {post['p99']:.0f} ms, {post['failures']} failures.",
        "",
        f"Faults: {args.fault_streams} well-behaved streams alone, then with abusive clients in "
        "another process, each abuser pausing 0.5 s between attempts (a robustness test, not a "
        f"flood of volume): {counts.get('idle', 0)} idle TCP connections, garbage frames "
        f"({counts.get('garbage', 0)} connections), floods of 2 s frames back to back "
        f"({counts.get('flood', 0)}), 1 MiB frames ({counts.get('huge_frames', 0)}), oversized "
        f"uploads, declared and chunked ({counts.get('oversized_upload', 0)} pairs), abrupt "
        f"disconnects mid-stream ({counts.get('vanish', 0)}). Server alive afterwards: "
        f"{'yes' if alive else 'NO'}; tracebacks in its log: {tracebacks}.",
        "",
        HEADER.replace("| streams |", "| run |", 1),
        fmt({**alone, "streams": f"alone ({args.fault_streams})"}),
        fmt({**mixed, "streams": f"with abusers ({args.fault_streams})"}),
    ]
    write_section("service_load", "\n".join(lines))


def post_only(args, server: subprocess.Popen, port: int, load: tuple[float, ...]) -> None:
    """Part 2 alone: ``POST /v1/predict`` throughput of ``--model``."""
    try:
        post = run_posts(port, args.post_clients, args.post_seconds)
        print(post, flush=True)
    finally:
        server.terminate()
        server.wait(30)
    write_section(args.section, "\n".join([
        f"## `POST /v1/predict` throughput ({args.title})",
        "",
        f"{machine()}; load average at the start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} "
        "(1 / 5 / 15 min; the machine is shared). `emovox serve --model MODEL --port PORT` as "
        "documented (2 workers, 1 torch thread each); clients in this process.",
        "",
        "```",
        f".venv/bin/python benchmarks/service_load.py --model {args.model} --post-only "
        f"--section {args.section}",
        "```",
        "",
        f"3 s WAV files, {post['clients']} keep-alive clients for {args.post_seconds:g} s: "
        f"**{post['rps']:.1f} requests/s** (target ≥ 20), latency p50 {post['p50']:.0f} ms, "
        f"p99 {post['p99']:.0f} ms, {post['failures']} failures.",
    ]))


def side_by_side(args) -> None:
    """Each level on ``--baseline`` then on ``--model``, both servers up from the start (an idle
    one costs nothing): the same machine load for both, one table."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    load = os.getloadavg()
    pcm = to_pcm(speech(args.seconds))
    models = {"baseline": args.baseline, "model": args.model}
    servers, urls, schedules, costs = {}, {}, {}, {}
    try:
        for key, model in models.items():
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            servers[key] = start_server(model, port, Path(tempfile.mkdtemp()) / "serve.log")
            urls[key] = f"ws://127.0.0.1:{port}/v1/stream"
            schedules[key] = step_schedule(model, pcm)
            costs[key] = push_cost(model, pcm)
            print(key, "push", costs[key], flush=True)
        rows: list[tuple[str, dict]] = []
        for n in args.levels:
            for key, model in models.items():
                rows.append((model, run_streams(urls[key], n, pcm, schedules[key],
                                                servers[key].pid)))
                print(model, rows[-1][1], flush=True)
    finally:
        for server in servers.values():
            server.terminate()
            server.wait(30)
    levels = " ".join(str(n) for n in args.levels)
    lines = [
        f"## Service load side by side ({args.title})",
        "",
        f"{machine()}; load average at the start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} "
        "(1 / 5 / 15 min; the machine is shared). Two servers, each `emovox serve --model MODEL "
        "--port PORT` as documented (2 workers, 1 torch thread each), both up from the start; "
        "each level runs on the baseline, then on the model, so both meet the same load. "
        "Clients in this process (uvloop), on the same cores.",
        "",
        "```",
        f".venv/bin/python benchmarks/service_load.py --model {args.model} --baseline "
        f"{args.baseline} --levels {levels} --section {args.section}",
        "```",
        "",
        f"Streams, latency, fell behind and CPU columns as in the service load section above "
        f"({args.seconds:g} s of Emo-DB speech per stream, 100 ms chunks, real time). Target: "
        "≥ 100 streams with p99 < 100 ms on 2 cores.",
        "",
        "One stream's server-side cost without the network (`StreamingRecognizer.push`, CPU "
        "ms per second of audio: total; speech gate; features — a recogniser's encoder; the "
        "classifier): " + "; ".join(
            f"`{m}` **{costs[k]['total']:.1f}** ({costs[k]['gate']:.1f}; "
            f"{costs[k]['features']:.1f}; {costs[k]['classifier']:.1f})"
            for k, m in models.items()) + ".",
        "",
        HEADER.replace("| streams |", "| model | streams |", 1).replace("|---|", "|---|---|", 1),
        *[f"| `{model}` " + fmt(row) for model, row in rows],
    ]
    write_section(args.section, "\n".join(lines))


if __name__ == "__main__":
    main()
