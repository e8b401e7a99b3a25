"""The service against an attacker (issue 25): no way around the token, the Host and Origin
checks or the limits, and nothing a client sends crashes a worker, fills its memory, holds its
slots or floods its log. Each test names the item it covers."""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import logging
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest
import soundfile as sf
from test_http import HELLO, http_request, multipart, pcm, refusal, running, start_serve
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from emovox.audio import load_audio
from emovox.errors import AudioError, EmovoxError
from emovox.serving.model_dir import Recognizer
from emovox.serving.server import listen_socket


def upgrade_status(addr: str, headers: dict[str, str]) -> int:
    """The HTTP status of a WebSocket upgrade request to /v1/stream (101: accepted)."""
    host, port = addr.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", "/v1/stream", headers={
        "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", **headers})
    status = conn.getresponse().status
    conn.close()
    return status


def wav_bytes(data: np.ndarray, rate: int = 16000, subtype: str = "FLOAT") -> bytes:
    out = io.BytesIO()
    sf.write(out, data, rate, format="WAV", subtype=subtype)
    return out.getvalue()


def noise(seconds: float, rate: int = 16000) -> np.ndarray:
    return np.random.default_rng(0).normal(0, 0.1, int(seconds * rate)).astype(np.float32)


# ---- 1: the port is never shared -------------------------------------------------------------

def test_listening_socket_admits_no_other_process():
    sock = listen_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    try:
        intruder = socket.socket()
        intruder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        with pytest.raises(OSError):
            intruder.bind(("127.0.0.1", port))
        intruder.close()
        with pytest.raises(EmovoxError, match="cannot listen on 127.0.0.1"):
            listen_socket("127.0.0.1", port)
    finally:
        sock.close()


@pytest.mark.e2e
def test_second_serve_cannot_join_a_token_server(stream_model_dir):
    proc, ready = start_serve(stream_model_dir, "--workers", "2", "--token", "t")
    try:
        addr = ready["serving"].removeprefix("http://")
        port = addr.split(":")[1]
        second = subprocess.run([sys.executable, "-m", "emovox.cli", "serve", "--model",
                                 str(stream_model_dir), "--port", port, "--workers", "1"],
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 2 and "cannot listen" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
        assert {http_request(addr, "GET", "/healthz")[0] for _ in range(20)} == {401}
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


# ---- 2: Host and Origin ----------------------------------------------------------------------

@pytest.mark.parametrize("token", [None, "t"])
def test_foreign_host_refused_everywhere(stream_model_dir, token):
    """A DNS-rebound page reaches the service under its own name: refused, token or not."""
    auth = {"Authorization": "Bearer t"} if token else {}
    wav = wav_bytes(noise(1.0))
    with running(stream_model_dir, token=token, allowed_hosts=["robot.example"]) as addr:
        port = addr.split(":")[1]
        evil = {**auth, "Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
        for method, path, body in (("GET", "/healthz", None), ("GET", "/v1/models", None),
                                   ("POST", "/v1/predict", wav), ("GET", "/", None)):
            status, answer = http_request(addr, method, path, body, evil)
            assert status == 400 and "evil.example" in answer["error"]
        assert upgrade_status(addr, evil) == 400
        for name in ("localhost", "127.0.0.1", "robot.example", "ROBOT.example."):
            assert http_request(addr, "GET", "/healthz", headers={
                **auth, "Host": f"{name}:{port}"})[0] == 200
        robot = {**auth, "Host": f"robot.example:{port}", "Origin": f"http://robot.example:{port}"}
        assert http_request(addr, "POST", "/v1/predict", wav, robot)[0] == 200
        assert upgrade_status(addr, robot) == 101


def test_foreign_origin_refused_on_data_requests(stream_model_dir):
    wav = wav_bytes(noise(1.0))
    with running(stream_model_dir) as addr:
        for origin in ("http://evil.example", f"https://{addr}", "null", f"ws://{addr}"):
            headers = {"Origin": origin}
            assert http_request(addr, "POST", "/v1/predict", wav, headers)[0] == 403, origin
            assert http_request(addr, "GET", "/healthz", headers=headers)[0] == 403, origin
            assert upgrade_status(addr, headers) == 403, origin
        own = {"Origin": f"http://{addr}"}
        assert http_request(addr, "POST", "/v1/predict", wav, own)[0] == 200
        assert upgrade_status(addr, own) == 101
        page = urllib.request.Request(f"http://{addr}/", headers={"Origin": "http://evil.example"})
        with urllib.request.urlopen(page, timeout=30) as res:  # the page itself holds no data
            assert res.status == 200


# ---- 3: slow bodies and silent streams -------------------------------------------------------

def test_slow_body_times_out_with_408(stream_model_dir):
    with running(stream_model_dir, body_timeout=1.0) as addr:
        host, port = addr.split(":")
        with socket.create_connection((host, int(port)), timeout=20) as sock:
            sock.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: " + addr.encode() +
                         b"\r\nContent-Length: 1000000\r\n\r\n")
            stop = threading.Event()

            def trickle():
                while not stop.is_set():
                    try:
                        sock.sendall(b"x")
                    except OSError:
                        return
                    time.sleep(0.1)

            threading.Thread(target=trickle, daemon=True).start()
            t = time.monotonic()
            try:
                answer = sock.recv(4096)
            finally:
                stop.set()
        assert answer.startswith(b"HTTP/1.1 408") and b"within 1 s" in answer
        assert time.monotonic() - t < 10


def test_silent_connections_take_no_stream_slot(stream_model_dir):
    with running(stream_model_dir, max_streams=3, handshake_timeout=20) as addr:
        url = f"ws://{addr}/v1/stream"

        async def body():
            silent = [await connect(url) for _ in range(3)]
            try:
                async with connect(url) as ws:
                    await ws.send(json.dumps(HELLO))
                    return json.loads(await asyncio.wait_for(ws.recv(), 10))
            finally:
                for ws in silent:
                    await ws.close()

        assert asyncio.run(body())["type"] == "ready"


# ---- 4: decoded size, and long files apart ---------------------------------------------------

def test_compressed_upload_limited_by_decoded_samples(stream_model_dir):
    flac = io.BytesIO()  # the file: 590 s of 96 kHz stereo, 219 kB of FLAC
    with sf.SoundFile(flac, "w", 96000, 2, format="FLAC", subtype="PCM_16") as f:
        for _ in range(59):
            f.write(np.zeros((960_000, 2), np.int16))
    assert len(flac.getvalue()) < 300_000
    with running(stream_model_dir) as addr:
        status, answer = http_request(addr, "POST", "/v1/predict", flac.getvalue())
    assert status == 413 and "sample limit" in answer["error"] and "2 channels" in answer["error"]


def test_long_upload_does_not_hold_up_short_ones(stream_model_dir, monkeypatch):
    long_started, release = threading.Event(), threading.Event()
    proba = Recognizer.proba

    def held_when_long(self, wave):
        if len(wave) > 40 * 16000:
            long_started.set()
            release.wait(60)
        return proba(self, wave)

    monkeypatch.setattr(Recognizer, "proba", held_when_long)
    with running(stream_model_dir) as addr:
        results = {}
        long_post = threading.Thread(target=lambda: results.setdefault(
            "long", http_request(addr, "POST", "/v1/predict", wav_bytes(noise(60.0)))))
        long_post.start()
        try:
            assert long_started.wait(30)
            host, port = addr.split(":")
            conn = http.client.HTTPConnection(host, int(port), timeout=20)
            conn.request("POST", "/v1/predict", body=wav_bytes(noise(2.0)))
            short = conn.getresponse()
            assert short.status == 200 and "label" in json.loads(short.read())
            assert "long" not in results  # still held
        finally:
            release.set()
            long_post.join(60)
    assert results["long"][0] == 200


# ---- 5: JSON the parser cannot take ----------------------------------------------------------

def test_unparseable_json_closes_with_1007(stream_model_dir):
    huge = "1" * 5000
    with running(stream_model_dir) as addr:
        url = f"ws://{addr}/v1/stream"

        async def body():
            return await asyncio.gather(
                refusal(url, ['{"sample_rate": ' + huge + "}"]),
                refusal(url, [json.dumps(HELLO), '{"type": "end", "n": ' + huge + "}"]),
                refusal(url, ["[" * 100_000]))

        results = asyncio.run(body())
    for error, code in results:
        assert code == 1007 and error["error"].startswith("malformed JSON")
    assert "digits" in results[0][0]["error"] and "nested" in results[2][0]["error"]


# ---- 6, 7: sample values and length ----------------------------------------------------------

@pytest.mark.parametrize("value, message", [(1e30, "not audio"), (np.inf, "infinite"),
                                            (np.nan, "NaN")])
def test_absurd_samples_are_one_clear_error(stream_model_dir, tmp_path, capsys, value, message):
    wave = noise(1.0)
    wave[8000:8100] = value
    path = tmp_path / "absurd.wav"
    path.write_bytes(wav_bytes(wave))
    with pytest.raises(AudioError, match=message) as err:
        load_audio(path)
    assert str(path) in str(err.value)
    with running(stream_model_dir) as addr:
        status, answer = http_request(addr, "POST", "/v1/predict", path.read_bytes())
        assert status == 400 and message in answer["error"] and "upload" in answer["error"]
        body, kind = multipart({"absurd.wav": path.read_bytes()})
        status, batch = http_request(addr, "POST", "/v1/predict", body, {"Content-Type": kind})
        assert status == 200 and batch["results"][0].keys() == {"filename", "error"}
    from emovox.cli import main

    assert main(["predict", "--model", str(stream_model_dir), str(path)]) != 0
    out, err = capsys.readouterr()
    assert "label" not in out and "null" not in out and str(path) in err and message in err


@pytest.mark.parametrize("data", [np.full(1, 0.5, np.float32),
                                  np.full((16, 1024), 0.1, np.float32),
                                  noise(0.2)], ids=["1 sample", "1024 channels", "0.2 s"])
def test_audio_too_short_gets_no_label(stream_model_dir, data):
    with running(stream_model_dir) as addr:
        status, answer = http_request(addr, "POST", "/v1/predict", wav_bytes(data))
    assert status == 400 and "too short to judge" in answer["error"]


# ---- 8: done ends the stream -----------------------------------------------------------------

def test_stream_closed_after_done(stream_model_dir, emodb):
    audio = pcm(emodb, "03a01Wa")
    with running(stream_model_dir, max_streams=1) as addr:
        url = f"ws://{addr}/v1/stream"

        async def body():
            async with connect(url) as ws:
                await ws.send(json.dumps(HELLO))
                await ws.recv()
                await ws.send(audio)
                await ws.send(json.dumps({"type": "end"}))
                while json.loads(await ws.recv())["type"] != "done":
                    pass
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 10)
            async with connect(url) as again:  # its one slot is free at once
                await again.send(json.dumps(HELLO))
                return closed.value.rcvd.code, json.loads(await again.recv())["type"]

        assert asyncio.run(body()) == (1000, "ready")


# ---- 13: the log cannot be flooded -----------------------------------------------------------

def test_refusals_and_malformed_bodies_cannot_flood_the_log(stream_model_dir, caplog):
    from emovox.serving.http import FLOODABLE_LOGGERS, FloodFilter

    for name in FLOODABLE_LOGGERS:  # fresh budgets: other tests' refusals used theirs
        logger = logging.getLogger(name)
        for f in [f for f in logger.filters if isinstance(f, FloodFilter)]:
            logger.removeFilter(f)
    caplog.set_level(logging.WARNING)
    broken, kind = multipart({"a.wav": b"x"})
    with running(stream_model_dir) as addr:
        for _ in range(30):
            assert upgrade_status(addr, {"Origin": "http://evil.example"}) == 403
            assert http_request(addr, "POST", "/v1/predict", broken[:-10] + b"garbage",
                                {"Content-Type": kind})[0] == 400
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert 1 <= len(lines) <= 15, [r.getMessage() for r in lines]


# ---- issue 24 item 6: the method words its own record ----------------------------------------

def test_predict_returns_the_methods_own_record(stream_model_dir, monkeypatch):
    """A dcgan model's ten valence/arousal outputs, worded by its describe."""
    from emovox.experiments.methods.dcgan import DCGANMethod

    monkeypatch.setattr(Recognizer, "proba", lambda self, wave: np.full(10, 0.2))
    monkeypatch.setattr(Recognizer, "describe",
                        lambda self, values: DCGANMethod.describe(None, values, []))
    with running(stream_model_dir) as addr:
        status, record = http_request(addr, "POST", "/v1/predict", wav_bytes(noise(1.0)))
        body, kind = multipart({"a.wav": wav_bytes(noise(1.0))})
        _, batch = http_request(addr, "POST", "/v1/predict", body, {"Content-Type": kind})
    assert status == 200 and record["valence"] == pytest.approx(3.0)
    assert len(record["arousal_proba"]) == 5 and "label" not in record
    assert record["duration"] == pytest.approx(1.0, abs=0.01) and record["model"]
    assert batch["results"][0]["valence_class"] and batch["results"][0]["filename"] == "a.wav"
