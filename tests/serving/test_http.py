"""The HTTP + WebSocket service: endpoints, protocol, and every safety limit, each against an
in-process server on 127.0.0.1 (plus `emovox serve` itself for start-up and shutdown)."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import uvicorn
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from emovox.audio import load_audio
from emovox.errors import ConfigError
from emovox.serving.http import create_app
from emovox.serving.model_dir import Recognizer
from emovox.serving.server import listen_socket, uvicorn_options
from emovox.serving.settings import Settings, check_bind
from emovox.serving.streaming import StreamingRecognizer

FILES = ["03a01Wa", "08a02Na", "16b10Wb", "11b03Nb"]
HELLO = {"sample_rate": 16000, "encoding": "pcm_s16le"}


@contextlib.contextmanager
def running(model_dir, **overrides):
    """An in-process server on a free loopback port; yields ``host:port``."""
    settings = Settings(**overrides)
    app = create_app(model_dir, settings)
    sock = listen_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, **uvicorn_options(settings)))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)


def pcm(emodb, name: str) -> bytes:
    return (load_audio(emodb / "wav" / f"{name}.wav") * 32767).astype("<i2").tobytes()


def http_request(addr, method, path, body=None, headers=None):
    req = urllib.request.Request(f"http://{addr}{path}", data=body, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as res:
            return res.status, json.loads(res.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def multipart(files: dict[str, bytes]) -> tuple[bytes, str]:
    boundary = "emovox-test-boundary"
    out = io.BytesIO()
    for name, data in files.items():
        out.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; "
                  f"filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                  .encode())
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


async def stream_file(url, audio: bytes, chunk=3200, hello=None, **kwargs) -> list[dict]:
    async with connect(url, **kwargs) as ws:
        await ws.send(json.dumps(hello or HELLO))
        ready = json.loads(await ws.recv())
        assert ready["type"] == "ready" and ready["protocol"] == 1
        for start in range(0, len(audio), chunk):
            await ws.send(audio[start : start + chunk])
        await ws.send(json.dumps({"type": "end"}))
        events = []
        while (event := json.loads(await ws.recv()))["type"] != "done":
            events.append(event)
        return events


async def refusal(url, send=(), **kwargs) -> tuple[dict | None, int]:
    """Send ``send`` messages, then read until the server closes: (error message, close code)."""
    async with connect(url, **kwargs) as ws:
        for message in send:
            try:
                await ws.send(message)
            except ConnectionClosed:  # refused before reading (busy): read what it said
                break
        error = None
        try:
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if message["type"] == "error":
                    error = message
        except ConnectionClosed as exc:
            return error, exc.rcvd.code if exc.rcvd else None


def expected_label(model_dir, emodb, name) -> str:
    stream = StreamingRecognizer(model_dir)
    events = stream.push(load_audio(emodb / "wav" / f"{name}.wav")) + stream.end()
    return next(e.data["label"] for e in events if e.type == "decision")


# ---- HTTP ----------------------------------------------------------------------------------

def test_predict_health_models(stream_model_dir, emodb, tmp_path):
    rec = Recognizer(stream_model_dir)
    wav = (emodb / "wav" / "03a01Wa.wav").read_bytes()
    flac = tmp_path / "n.flac"
    sf.write(flac, load_audio(emodb / "wav" / "08a02Na.wav"), 16000)
    with running(stream_model_dir) as addr:
        status, health = http_request(addr, "GET", "/healthz")
        assert status == 200 and health["status"] == "ok"
        status, models = http_request(addr, "GET", "/v1/models")
        model = models["models"][0]
        assert model["labels"] == rec.labels and model["streaming"] and model["id"].startswith(
            "model@")
        status, one = http_request(addr, "POST", "/v1/predict", wav,
                                   {"Content-Type": "audio/wav"})
        offline = rec.predict_file(emodb / "wav" / "03a01Wa.wav")
        assert status == 200 and one["label"] == offline["label"]
        assert one["probabilities"] == pytest.approx(offline["probabilities"], abs=1e-5)
        assert one["model"] == model["id"] and one["duration"] == pytest.approx(1.88, abs=0.05)
        body, kind = multipart({"a.wav": wav, "b.flac": flac.read_bytes(), "c.txt": b"hello"})
        status, batch = http_request(addr, "POST", "/v1/predict", body, {"Content-Type": kind})
        results = batch["results"]
        assert status == 200 and [r["filename"] for r in results] == ["a.wav", "b.flac", "c.txt"]
        assert results[1]["label"] == rec.predict_file(flac)["label"]
        assert "unreadable or corrupt audio" in results[2]["error"]
        status, err = http_request(addr, "POST", "/v1/predict", b"not audio")
        assert status == 400 and "upload" in err["error"]
        status, schema = http_request(addr, "GET", "/openapi.json")
        assert status == 200 and "/v1/predict" in schema["paths"]
        with urllib.request.urlopen(f"http://{addr}/", timeout=30) as res:
            assert b"emovox" in res.read()


def test_upload_limits(stream_model_dir, emodb):
    wav = (emodb / "wav" / "03a01Wa.wav").read_bytes()  # 88 kB
    with running(stream_model_dir, max_upload_mb=0.05, max_file_seconds=1.0) as addr:
        status, err = http_request(addr, "POST", "/v1/predict", wav)
        assert status == 413 and "exceeds" in err["error"]
        # chunked, no Content-Length: cut off while reading
        host, port = addr.split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.request("POST", "/v1/predict", body=iter([wav[i : i + 8192]
                                                       for i in range(0, len(wav), 8192)]),
                     encode_chunked=True)
        assert conn.getresponse().status == 413
        small = io.BytesIO()
        sf.write(small, np.random.default_rng(0).normal(0, 0.1, 24000), 16000, format="WAV")
        status, err = http_request(addr, "POST", "/v1/predict", small.getvalue())
        assert status == 413 and "1 s limit" in err["error"]


def test_token_on_every_request(stream_model_dir, emodb):
    token = "s3cret-token"
    auth = {"Authorization": f"Bearer {token}"}
    audio = pcm(emodb, "03a01Wa")
    with running(stream_model_dir, token=token) as addr:
        for path in ("/healthz", "/v1/models", "/openapi.json"):
            assert http_request(addr, "GET", path)[0] == 401
            assert http_request(addr, "GET", path, headers={"Authorization": "Bearer nope"})[0] \
                == 401
            assert http_request(addr, "GET", path, headers=auth)[0] == 200
        assert http_request(addr, "POST", "/v1/predict", b"x")[0] == 401
        with urllib.request.urlopen(f"http://{addr}/", timeout=30) as res:  # the page is public
            assert res.status == 200

        async def body():
            url = f"ws://{addr}/v1/stream"
            with pytest.raises(InvalidStatus) as denied:
                await stream_file(url, audio)
            assert denied.value.response.status_code == 401
            with_header = await stream_file(url, audio, additional_headers=auth)
            browser_style = await stream_file(
                url, audio, subprotocols=["emovox.v1", f"bearer.{token}"])
            return with_header, browser_style

        for events in asyncio.run(body()):
            assert sum(e["type"] == "decision" for e in events) == 1


def test_refuses_public_bind_without_token(stream_model_dir):
    check_bind("127.0.0.1", None, False)
    check_bind("::1", None, False)
    check_bind("0.0.0.0", "t", False)
    check_bind("0.0.0.0", None, True)
    with pytest.raises(ConfigError, match="without a token"):
        check_bind("0.0.0.0", None, False)
    env = {k: v for k, v in os.environ.items() if k != "EMOVOX_TOKEN"}
    proc = subprocess.run([sys.executable, "-m", "emovox.cli", "serve", "--model",
                           str(stream_model_dir), "--host", "0.0.0.0"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "--token" in proc.stderr


@pytest.mark.parametrize("flags, message", [
    (["--port", "70000"], "port 70000 outside"),
    (["--threads", "0"], "threads must be > 0"),
    (["--max-streams", "-1"], "max-streams must be > 0"),
    (["--idle-timeout", "0"], "idle-timeout must be > 0"),
    (["--workers", "0"], "--workers must be"),
    (["--host", "no-such-host.invalid", "--insecure"], "cannot listen on no-such-host"),
])
def test_serve_bad_flags_exit_2(stream_model_dir, capsys, flags, message):
    from emovox.cli import main

    assert main(["serve", "--model", str(stream_model_dir), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


# ---- WebSocket -----------------------------------------------------------------------------

def test_protocol_many_clients_and_bad_ones(stream_model_dir, emodb):
    """Good clients get the offline decision while bad ones get one error message each."""
    expected = {n: expected_label(stream_model_dir, emodb, n) for n in FILES}
    audio = {n: pcm(emodb, n) for n in FILES}
    with running(stream_model_dir, max_frame_bytes=64_000) as addr:
        url = f"ws://{addr}/v1/stream"

        async def vanish():
            async with connect(url) as ws:
                await ws.send(json.dumps(HELLO))
                await ws.recv()
                await ws.send(audio[FILES[0]][:8000])
                ws.transport.abort()

        async def body():
            goods = [stream_file(url, audio[n]) for n in FILES for _ in range(3)]
            goods.append(stream_file(f"ws://{addr}/", audio[FILES[0]]))  # first server's path
            bads = [
                refusal(url, [json.dumps({**HELLO, "sample_rate": 44100})]),
                refusal(url, [json.dumps({**HELLO, "encoding": "opus"})]),
                refusal(url, ["{not json"]),
                refusal(url, [json.dumps(HELLO), b"\x00" * 100_000]),
                refusal(url, [json.dumps({**HELLO, "threshold": "high"})]),
                refusal(url, [json.dumps({**HELLO, "vad": "yes"})]),
                refusal(url, [json.dumps({**HELLO, "sample_rate": "16000"})]),
                refusal(url, [json.dumps({**HELLO, "rate": 16000})]),
                refusal(url, [json.dumps({**HELLO, "version": 2})]),
                refusal(url, [b"\x00\x00"]),
                refusal(url, [json.dumps(HELLO), b"\x00\x00\x00"]),
                refusal(url, [json.dumps(HELLO), json.dumps({"type": "pause"})]),
            ]
            return await asyncio.gather(*goods, *bads, vanish())

        results = asyncio.run(body())
    goods, bads = results[:13], results[13:-1]
    names = [n for n in FILES for _ in range(3)] + [FILES[0]]
    for name, events in zip(names, goods, strict=True):
        decisions = [e for e in events if e["type"] == "decision"]
        assert len(decisions) == 1 and decisions[0]["label"] == expected[name]
    errors = [(b[0]["error"] if b[0] else "", b[1]) for b in bads]
    assert "44100" in errors[0][0] and "expects 16000 Hz" in errors[0][0]
    assert "unsupported encoding 'opus'" in errors[1][0] and errors[1][1] == 1003
    assert "malformed JSON" in errors[2][0] and errors[2][1] == 1007
    assert "exceeds 64000" in errors[3][0] and errors[3][1] == 1009
    assert "'threshold'" in errors[4][0] and errors[4][1] == 1008
    assert "'vad'" in errors[5][0]
    assert "'sample_rate'" in errors[6][0]
    assert "'rate'" in errors[7][0] and "xtra" in errors[7][0]
    assert "'version'" in errors[8][0]
    assert "binary" in errors[9][0]
    assert "odd number of bytes" in errors[10][0]
    assert "unknown command 'pause'" in errors[11][0]


def test_max_streams_refused_with_1013(stream_model_dir):
    with running(stream_model_dir, max_streams=2) as addr:
        url = f"ws://{addr}/v1/stream"

        async def body():
            async with connect(url) as a, connect(url) as b:
                for ws in (a, b):
                    await ws.send(json.dumps(HELLO))
                    assert json.loads(await ws.recv())["type"] == "ready"
                refused = await refusal(url, [json.dumps(HELLO)])
            again, deadline = None, time.monotonic() + 10
            while again != "ready" and time.monotonic() < deadline:  # slots are freed soon
                await asyncio.sleep(0.1)  # (asynchronously: poll, however loaded the machine)
                async with connect(url) as c:
                    await c.send(json.dumps(HELLO))
                    again = json.loads(await c.recv())["type"]
            return refused, again

        (error, code), again = asyncio.run(body())
    assert code == 1013 and "2 streams" in error["error"]
    assert again == "ready"


def test_idle_handshake_and_duration_limits(stream_model_dir):
    with running(stream_model_dir, idle_timeout=0.5, handshake_timeout=0.5,
                 max_stream_seconds=1.5) as addr:
        url = f"ws://{addr}/v1/stream"

        async def long_stream():
            async with connect(url) as ws:
                await ws.send(json.dumps(HELLO))
                await ws.recv()
                t = time.monotonic()
                try:
                    while True:  # real time, 100 ms frames of silence
                        await ws.send(b"\x00" * 3200)
                        await asyncio.sleep(0.1)
                except ConnectionClosed as exc:
                    return exc.rcvd.code, time.monotonic() - t

        async def body():
            return await asyncio.gather(refusal(url, [json.dumps(HELLO)]), refusal(url),
                                        long_stream())

        (idle_error, idle_code), (_, handshake_code), (long_code, seconds) = asyncio.run(body())
    assert idle_code == 4408 and "idle" in idle_error["error"]
    assert handshake_code == 4408
    assert long_code == 4413 and seconds < 5


def test_faster_than_real_time_is_throttled(stream_model_dir, emodb):
    audio = pcm(emodb, "03a01Wa") * 2  # 3.8 s
    seconds = len(audio) / 32000
    with running(stream_model_dir, burst_seconds=0.5) as addr:
        t = time.monotonic()
        events = asyncio.run(stream_file(f"ws://{addr}/v1/stream", audio, chunk=32000))
        took = time.monotonic() - t
    assert took >= seconds - 0.5 - 0.3  # held to real time after the burst
    assert sum(e["type"] == "decision" for e in events) == 1


def test_origin_check(stream_model_dir, emodb):
    audio = pcm(emodb, "03a01Wa")[:16000]
    with running(stream_model_dir, allowed_origins=["https://robot.example"]) as addr:
        url = f"ws://{addr}/v1/stream"

        async def body():
            with pytest.raises(InvalidStatus) as denied:
                await stream_file(url, audio, origin="http://evil.example")
            same = await stream_file(url, audio, origin=f"http://{addr}")
            listed = await stream_file(url, audio, origin="https://robot.example")
            no_origin = await stream_file(url, audio)
            return denied.value.response.status_code, same, listed, no_origin

        status, *accepted = asyncio.run(body())
    assert status == 403
    assert all(events[-1]["type"] == "utterance_end" for events in accepted)
    # (DNS rebinding, Host names and origin schemes: tests/serving/test_security.py)


def test_client_that_stops_reading_is_dropped(stream_model_dir, emodb):
    """A send that cannot complete (the client's buffers are full) ends the stream and frees
    its slot, instead of queueing events without bound."""
    from emovox.serving.websocket import StreamService, StreamSlots

    speech = pcm(emodb, "03a01Wa") * 3

    class StuckSocket:
        def __init__(self):
            self.inbox = [{"type": "websocket.receive", "text": json.dumps(HELLO)}] + [
                {"type": "websocket.receive", "bytes": speech[i : i + 32000]}
                for i in range(0, len(speech), 32000)]

        async def accept(self, subprotocol=None):
            pass

        async def receive(self):
            if not self.inbox:
                await asyncio.Event().wait()  # a silent client: only the send timeout ends it
            return self.inbox.pop(0)

        async def send_text(self, text):
            if json.loads(text)["type"] != "ready":
                await asyncio.Event().wait()  # never drains

    with contextlib.ExitStack() as stack:
        import tempfile

        slot_dir = stack.enter_context(tempfile.TemporaryDirectory())
        settings = Settings(send_timeout=0.3, max_streams=1, idle_timeout=60)
        service = StreamService(Recognizer(stream_model_dir), settings,
                                StreamSlots(slot_dir, 1))
        t = time.monotonic()
        asyncio.run(asyncio.wait_for(service.handle(StuckSocket(), None), 10))
        assert time.monotonic() - t < 5
        assert service.active == 0 and service.slots.acquire() is not None


# ---- emovox serve ----------------------------------------------------------------------------

def start_serve(model_dir, *flags) -> tuple[subprocess.Popen, dict]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "emovox.cli", "serve", "--model",
                             str(model_dir), "--port", str(port), *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line, proc.stderr.read()
    return proc, json.loads(line)


def children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


@pytest.mark.e2e
def test_serve_workers_and_clean_sigterm(stream_model_dir, emodb):
    proc, ready = start_serve(stream_model_dir, "--workers", "2", "--token", "t")
    try:
        addr = ready["serving"].removeprefix("http://")
        auth = {"Authorization": "Bearer t"}
        pids = {http_request(addr, "GET", "/healthz", headers=auth)[1]["pid"] for _ in range(40)}
        assert len(pids) == 2 and ready["auth"] is True  # both workers answer
        status, out = http_request(addr, "POST", "/v1/predict",
                                   (emodb / "wav" / "03a01Wa.wav").read_bytes(), auth)
        assert status == 200 and out["label"] in ("anger", "neutral")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "rerun" not in err and "Traceback" not in err


def is_worker(pid: int) -> bool:
    try:
        return "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()
    except FileNotFoundError:
        return False


@pytest.mark.e2e
def test_workers_die_with_their_parent(stream_model_dir):
    proc, _ = start_serve(stream_model_dir, "--workers", "2")
    workers = [p for p in children(proc.pid) if is_worker(p)]
    assert len(workers) == 2
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 15
    while any(is_worker(p) for p in workers):
        assert time.monotonic() < deadline, "workers outlived their parent"
        time.sleep(0.2)
