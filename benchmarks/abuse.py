"""Attack a real `emovox serve` with the cases of issue 25; print and write a table of expected
against observed behaviour (benchmarks/abuse.md).

    .venv/bin/python benchmarks/abuse.py [--model DIR]

Two servers run as subprocesses on free loopback ports: one with ``--token`` and two workers
(the port that a second server tries to join), one plain with one worker and
``--max-streams 3`` (everything else: one worker, so that a long upload and a short one meet in
the same process). Every row is one attack; "as expected" compares its observable outcome
(status, close code, exit code, log lines, peak memory) with what docs/service.md promises.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import io
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from results import machine
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

OUT = Path(__file__).with_name("abuse.md")
HELLO = json.dumps({"sample_rate": 16000, "encoding": "pcm_s16le"})
TOKEN = "abuse-benchmark-token"


@dataclass
class Case:
    item: str
    attack: str
    expected: str
    observed: str
    ok: bool


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_command(model: str, port: int, *flags: str) -> list[str]:
    return [sys.executable, "-m", "emovox.cli", "serve", "--model", model, "--port", str(port),
            *flags]


def start_server(model: str, log: Path, *flags: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(serve_command(model, port, *flags), stdout=subprocess.PIPE,
                            stderr=log.open("w"), text=True)
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"emovox serve did not start: {log.read_text()}")
    return proc, json.loads(line)["serving"].removeprefix("http://")


def workers(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                         text=True).stdout.split()
    return [int(p) for p in out
            if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text(errors="replace")
            and "resource_tracker" not in Path(f"/proc/{p}/cmdline").read_text(errors="replace")]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def request(addr: str, method: str, path: str, body: bytes | None = None,
            headers: dict | None = None, timeout: float = 120) -> tuple[int, dict | str]:
    host, port = addr.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    conn.request(method, path, body=body, headers=headers or {})
    res = conn.getresponse()
    data = res.read()
    conn.close()
    try:
        return res.status, json.loads(data)
    except ValueError:
        return res.status, data.decode(errors="replace")


def upgrade(addr: str, headers: dict[str, str]) -> int:
    host, port = addr.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", "/v1/stream", headers={
        "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", **headers})
    status = conn.getresponse().status
    conn.close()
    return status


def wav(data: np.ndarray, rate: int = 16000, subtype: str = "FLOAT") -> bytes:
    out = io.BytesIO()
    sf.write(out, data, rate, format="WAV", subtype=subtype)
    return out.getvalue()


def noise(seconds: float) -> np.ndarray:
    return np.random.default_rng(0).normal(0, 0.1, int(seconds * 16000)).astype(np.float32)


def error_of(answer) -> str:
    return answer.get("error", "") if isinstance(answer, dict) else str(answer)[:60]


def short(text: str, n: int = 70) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


async def refusal(url: str, messages: list) -> tuple[str, int | None]:
    """Send ``messages``; read until the server closes: (its error message, close code)."""
    async with connect(url, max_size=None) as ws:
        error = ""
        for m in messages:
            await ws.send(m)
        try:
            while True:
                event = json.loads(await asyncio.wait_for(ws.recv(), 30))
                error = event.get("error", error)
        except ConnectionClosed as exc:
            return error, exc.rcvd.code if exc.rcvd else None
        except TimeoutError:
            return error, None


# ---- the cases -------------------------------------------------------------------------------

def port_cases(model: str, token_addr: str, token_pid: int) -> list[Case]:
    port = token_addr.split(":")[1]
    second = subprocess.Popen(serve_command(model, int(port), "--workers", "1"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:  # it exits (refused), or prints its "serving" line (joined) and keeps running
        joined = second.stdout.readline()
        statuses = [request(token_addr, "GET", "/healthz")[0] for _ in range(40)]
    finally:
        second.terminate()
        _, err = second.communicate(timeout=60)
    line = err.strip().splitlines()[-1] if err.strip() else ""
    observed = f"joined, serving: {joined.strip()}" if joined else \
        f"exit {second.returncode}: {short(line, 60)}"
    cases = [Case("1", "`emovox serve` without a token on the port of a `--token` server",
                  "exit 2, one line", observed, not joined and second.returncode == 2 and
                  "cannot listen" in line),
             Case("1", "40 unauthenticated GET /healthz to the token server meanwhile",
                  "40 × 401",
                  ", ".join(f"{statuses.count(s)} × {s}" for s in sorted(set(statuses))),
                  set(statuses) == {401})]
    intruder = socket.socket()
    intruder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        intruder.bind(("127.0.0.1", int(port)))
        bound = "bound: it would share the connections"
    except OSError as exc:
        bound = f"refused ({exc.strerror})"
    finally:
        intruder.close()
    cases.append(Case("1", "another program binds the port with SO_REUSEPORT", "refused", bound,
                      bound.startswith("refused")))
    return cases


def host_origin_cases(addr: str) -> list[Case]:
    port = addr.split(":")[1]
    evil = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
    clip = wav(noise(1.0))
    rows = [
        ("GET /healthz with `Host: evil.example` and its Origin (DNS rebinding)", "400",
         lambda: request(addr, "GET", "/healthz", headers=evil)[0]),
        ("POST /v1/predict with `Host: evil.example` (DNS rebinding)", "400",
         lambda: request(addr, "POST", "/v1/predict", clip, evil)[0]),
        ("WebSocket upgrade with `Host: evil.example`", "400", lambda: upgrade(addr, evil)),
        ("POST /v1/predict from `Origin: http://evil.example`", "403",
         lambda: request(addr, "POST", "/v1/predict", clip, {"Origin": "http://evil.example"})[0]),
        ("GET /healthz from `Origin: http://evil.example`", "403",
         lambda: request(addr, "GET", "/healthz", headers={"Origin": "http://evil.example"})[0]),
        (f"WebSocket from `Origin: https://{addr}` (wrong scheme)", "403",
         lambda: upgrade(addr, {"Origin": f"https://{addr}"})),
        (f"WebSocket from the service's own `Origin: http://{addr}` (control)", "101",
         lambda: upgrade(addr, {"Origin": f"http://{addr}"})),
        ("POST /v1/predict from `localhost` (control)", "200",
         lambda: request(addr, "POST", "/v1/predict", clip, {"Host": f"localhost:{port}"})[0]),
    ]
    cases = []
    for attack, expected, run in rows:
        observed = str(run())
        cases.append(Case("2", attack, expected, observed, observed == expected))
    return cases


def slow_body_case(addr: str) -> Case:
    host, port = addr.split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(f"POST /v1/predict HTTP/1.1\r\nHost: {addr}\r\n"
                     "Content-Length: 1000000\r\n\r\n".encode())
        stop = threading.Event()

        def trickle():
            while not stop.wait(1.0):
                try:
                    sock.sendall(b"x")
                except OSError:
                    return

        threading.Thread(target=trickle, daemon=True).start()
        t = time.monotonic()
        try:
            answer = sock.recv(4096).decode(errors="replace")
        except TimeoutError:
            answer = "(still open after 60 s)"
        finally:
            stop.set()
        took = time.monotonic() - t
    status = answer.split("\r\n", 1)[0].removeprefix("HTTP/1.1 ")
    return Case("3", "POST declaring 1 MB, sending 1 byte/s", "408 after 10 s",
                f"{status} after {took:.1f} s", status.startswith("408") and took < 15)


async def silent_slots_case(addr: str) -> Case:
    url = f"ws://{addr}/v1/stream"
    silent = [await connect(url) for _ in range(3)]
    t = time.monotonic()
    try:
        async with connect(url) as ws:
            await ws.send(HELLO)
            reply = json.loads(await asyncio.wait_for(ws.recv(), 30))
            observed = reply["type"] if reply["type"] == "ready" else \
                f"{reply['type']} ({reply.get('code')})"
    except ConnectionClosed as exc:
        observed = f"closed {exc.rcvd.code if exc.rcvd else None}"
    finally:
        for ws in silent:
            await ws.close()
    return Case("3", "3 silent connections, then a good stream (`--max-streams 3`)",
                "ready at once", f"{observed} after {time.monotonic() - t:.2f} s",
                observed == "ready" and time.monotonic() - t < 5)


def decoded_size_case(addr: str, pid: int) -> Case:
    flac = io.BytesIO()
    with sf.SoundFile(flac, "w", 96000, 2, format="FLAC", subtype="PCM_16") as f:
        for _ in range(59):
            f.write(np.zeros((960_000, 2), np.int16))
    worker = workers(pid)[0]
    before = peak_rss_mb(worker)
    status, answer = request(addr, "POST", "/v1/predict", flac.getvalue())
    growth = peak_rss_mb(worker) - before
    return Case("4", f"FLAC of {len(flac.getvalue()) // 1000} kB: 590 s, 96 kHz, stereo",
                "413, worker peak RSS +< 50 MB",
                f"{status} ({short(error_of(answer), 40)}), peak RSS +{growth:.0f} MB",
                status == 413 and growth < 50)


def long_short_case(addr: str) -> Case:
    clip = wav(noise(2.0))
    alone = []
    for _ in range(3):
        t = time.monotonic()
        request(addr, "POST", "/v1/predict", clip)
        alone.append(time.monotonic() - t)
    long_done: dict[str, float] = {}

    def post_long():
        t = time.monotonic()
        long_done["status"] = request(addr, "POST", "/v1/predict",
                                     wav(noise(500.0), subtype="PCM_16"))[0]
        long_done["seconds"] = time.monotonic() - t

    thread = threading.Thread(target=post_long)
    thread.start()
    time.sleep(1.5)  # its body is in; it is being decoded and labelled
    t = time.monotonic()
    status, _ = request(addr, "POST", "/v1/predict", clip)
    during = time.monotonic() - t
    before_long = "seconds" not in long_done
    thread.join()
    return Case("4", "POST of 2 s while a 500 s upload is being labelled",
                "answered before the long one",
                f"{status} in {during:.2f} s (alone {min(alone):.2f} s; the 500 s upload "
                f"{long_done.get('status')} after {long_done.get('seconds', 0):.1f} s)",
                status == 200 and before_long and long_done.get("status") == 200)


async def json_cases(addr: str) -> list[Case]:
    url = f"ws://{addr}/v1/stream"
    huge = "1" * 5000
    rows = [("handshake holding a 5,000-digit number", ['{"sample_rate": ' + huge + "}"]),
            ("a 5,000-digit number after the handshake",
             [HELLO, '{"type": "end", "n": ' + huge + "}"]),
            ('`"[" * 100000` as the handshake', ["[" * 100_000])]
    cases = []
    for attack, messages in rows:
        error, code = await refusal(url, messages)
        cases.append(Case("5", attack, "1007 with a message", f"{code}: {short(error, 50)}",
                          code == 1007 and error.startswith("malformed JSON")))
    return cases


def sample_cases(addr: str, model: str, tmp: Path) -> list[Case]:
    absurd = noise(1.0)
    absurd[8000:8100] = 1e30
    path = tmp / "absurd.wav"
    path.write_bytes(wav(absurd))
    status, answer = request(addr, "POST", "/v1/predict", path.read_bytes())
    cases = [Case("6", "POST of a float WAV holding 1e30", "400 naming the file",
                  f"{status}: {short(error_of(answer), 60)}",
                  status == 400 and "upload" in error_of(answer))]
    cli = subprocess.run([sys.executable, "-m", "emovox.cli", "predict", "--model", model,
                          str(path)], capture_output=True, text=True, timeout=300)
    lines = cli.stderr.strip().splitlines()
    cases.append(Case("6", "`emovox predict` on that file",
                      "exit ≠ 0, one line naming the file, no label",
                      f"exit {cli.returncode}: {short(lines[-1] if lines else '', 60)}",
                      cli.returncode != 0 and len(lines) == 1 and str(path) in lines[0]
                      and "label" not in cli.stdout))
    for attack, data in (("1-sample WAV", np.full(1, 0.5, np.float32)),
                         ("1024-channel, 16-frame WAV", np.full((16, 1024), 0.1, np.float32))):
        status, answer = request(addr, "POST", "/v1/predict", wav(data))
        cases.append(Case("7", f"POST of a {attack}", "400 too short, no label",
                          f"{status}: {short(error_of(answer), 60)}",
                          status == 400 and "too short" in error_of(answer)))
    return cases


async def after_done_case(addr: str) -> Case:
    async with connect(f"ws://{addr}/v1/stream") as ws:
        await ws.send(HELLO)
        await ws.recv()
        await ws.send(np.zeros(16000, "<i2").tobytes())
        await ws.send(json.dumps({"type": "end"}))
        while json.loads(await ws.recv())["type"] != "done":
            pass
        t = time.monotonic()
        try:
            await ws.send(np.zeros(1600, "<i2").tobytes())
            await asyncio.wait_for(ws.recv(), 35)
            observed = "still open, answered audio"
        except ConnectionClosed as exc:
            observed = f"closed {exc.rcvd.code if exc.rcvd else None} after " \
                       f"{time.monotonic() - t:.2f} s"
        except TimeoutError:
            observed = "still open after 35 s"
    return Case("8", "audio sent after `done`", "closed 1000 at `done`", observed,
                observed.startswith("closed 1000"))


async def log_flood_case(addr: str, log: Path) -> Case:
    before = len(log.read_text().splitlines())
    boundary = "abuse"
    broken = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; "
              f"filename=\"a.wav\"\r\n\r\nxx\r\n--{boundary}garbage").encode()
    for _ in range(200):
        upgrade(addr, {"Origin": "http://evil.example"})
        request(addr, "POST", "/v1/predict", broken,
                {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    await asyncio.sleep(0.5)
    lines = len(log.read_text().splitlines()) - before
    return Case("13", "200 foreign-Origin streams + 200 malformed multipart bodies",
                "≤ 15 log lines", f"{lines} log lines", 0 < lines <= 15)


def log_case(logs: list[Path]) -> Case:
    text = "".join(p.read_text() for p in logs)
    crashes = text.count("Traceback") + text.count("Exception in ASGI application")
    return Case("all", "tracebacks in the servers' logs after all of the above", "0",
                str(crashes), crashes == 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(Path(__file__).parents[1] / "src" / "emovox" /
                                               "serving" / "default_model"))
    parser.add_argument("--out", type=Path, default=OUT,
                        help="Markdown table (default: %(default)s)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="emovox-abuse-"))
    token_log, plain_log = tmp / "token.log", tmp / "plain.log"
    token_proc, token_addr = start_server(args.model, token_log, "--token", TOKEN,
                                          "--workers", "2")
    plain_proc, addr = start_server(args.model, plain_log, "--workers", "1",
                                    "--max-streams", "3")
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    try:
        cases = port_cases(args.model, token_addr, token_proc.pid)
        cases += host_origin_cases(addr)
        cases.append(slow_body_case(addr))
        cases.append(asyncio.run(silent_slots_case(addr)))
        cases.append(decoded_size_case(addr, plain_proc.pid))
        cases.append(long_short_case(addr))
        cases += asyncio.run(json_cases(addr))
        cases += sample_cases(addr, args.model, tmp)
        cases.append(asyncio.run(after_done_case(addr)))
        cases.append(asyncio.run(log_flood_case(addr, plain_log)))
    finally:
        for proc in (token_proc, plain_proc):
            proc.terminate()
            proc.wait(30)
    cases.append(log_case([token_log, plain_log]))
    passed = sum(c.ok for c in cases)
    lines = [
        "# Abuse benchmark (issue 25)",
        "",
        "Written by `benchmarks/abuse.py` (do not edit by hand): attacks on a real "
        "`emovox serve` (the bundled model; a `--token` server with 2 workers, a plain one with "
        "1 worker and `--max-streams 3`), each row's outcome against what "
        "[docs/service.md](../docs/service.md#security) promises.",
        "",
        f"Run {started} on {machine()}: **{passed} of {len(cases)} as expected.**",
        "",
        "| item | attack | expected | observed | as expected |",
        "|---|---|---|---|---|",
        *(f"| {c.item} | {c.attack} | {c.expected} | {c.observed.replace('|', '/')} | "
          f"{'yes' if c.ok else '**no**'} |" for c in cases),
    ]
    text = "\n".join(lines) + "\n"
    args.out.write_text(text)
    print(text)
    sys.exit(0 if passed == len(cases) else 1)


if __name__ == "__main__":
    main()
