"""WebSocket service: a JSON handshake, then binary 16-bit PCM chunks; events come back as JSON.

Protocol (one utterance stream per connection, or many with ``"vad": true``)::

    client → {"sample_rate": 16000, "encoding": "pcm_s16le", "vad": false}
    server → {"type": "ready", "labels": [...], "step_ms": 300, "max_frame_bytes": N}
    client → <binary PCM> ...            server → {"type": "step" | "decision" | ..., ...}
    client → {"type": "end"}             server → remaining events, then {"type": "done"}

A bad client (wrong rate or encoding, malformed JSON, oversized frame, audio before the
handshake) gets ``{"type": "error", "error": ...}`` and its connection closed; other connections
are unaffected. A client that vanishes simply has its state dropped.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import websockets
from websockets.asyncio.server import ServerConnection, serve

from emovox.errors import EmovoxError
from emovox.serving.model_dir import Recognizer
from emovox.serving.streaming import StreamingRecognizer

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 1 << 20  # about 33 s of 16 kHz PCM in one message
HANDSHAKE_TIMEOUT = 10.0
ENCODINGS = ("pcm_s16le",)


class ClientError(Exception):
    """A protocol violation by the client: reported to it, then the connection closes."""

    def __init__(self, message: str, code: int = 1008):
        super().__init__(message)
        self.code = code


def _json(message: str | bytes) -> dict:
    if isinstance(message, bytes):
        raise ClientError("expected a JSON text message, got binary data", 1003)
    try:
        data = json.loads(message)
    except json.JSONDecodeError as exc:
        raise ClientError(f"malformed JSON: {exc}", 1007) from None
    if not isinstance(data, dict):
        raise ClientError("JSON message must be an object", 1007)
    return data


class EmotionServer:
    def __init__(self, model_dir: str | Path, max_frame_bytes: int = MAX_FRAME_BYTES):
        self.recognizer = Recognizer(model_dir)
        StreamingRecognizer(self.recognizer)  # fail at start-up, not per client
        self.max_frame_bytes = max_frame_bytes
        self.active = 0

    def open_stream(self, hello: dict) -> StreamingRecognizer:
        rate = hello.get("sample_rate")
        encoding = hello.get("encoding", "pcm_s16le")
        if encoding not in ENCODINGS:
            raise ClientError(f"unsupported encoding {encoding!r}; use one of {ENCODINGS}", 1003)
        if not isinstance(rate, int):
            raise ClientError("handshake must give an integer sample_rate", 1008)
        try:
            return StreamingRecognizer(self.recognizer, sample_rate=rate,
                                       vad=bool(hello.get("vad", False)),
                                       threshold=hello.get("threshold"))
        except EmovoxError as exc:
            raise ClientError(str(exc), 1003) from None

    async def handle(self, ws: ServerConnection) -> None:
        self.active += 1
        try:
            hello = _json(await asyncio.wait_for(ws.recv(), HANDSHAKE_TIMEOUT))
            stream = self.open_stream(hello)
            await ws.send(json.dumps({"type": "ready", "labels": stream.labels,
                                      "step_ms": stream.step_ms, "sample_rate": stream.sample_rate,
                                      "max_frame_bytes": self.max_frame_bytes}))
            async for message in ws:
                if isinstance(message, bytes):
                    if len(message) > self.max_frame_bytes:
                        raise ClientError(f"frame of {len(message)} bytes exceeds "
                                          f"{self.max_frame_bytes}", 1009)
                    try:
                        events = stream.push(message)
                    except EmovoxError as exc:
                        raise ClientError(str(exc), 1003) from None
                else:
                    command = _json(message)
                    if command.get("type") != "end":
                        raise ClientError(f"unknown command {command.get('type')!r}", 1008)
                    events = stream.end()
                for event in events:
                    await ws.send(json.dumps(event.to_dict()))
                if not isinstance(message, bytes):
                    await ws.send(json.dumps({"type": "done"}))
        except ClientError as exc:
            log.info("client error: %s", exc)
            try:
                await ws.send(json.dumps({"type": "error", "error": str(exc)}))
                await ws.close(exc.code, str(exc)[:120])
            except websockets.ConnectionClosed:
                pass
        except TimeoutError:
            await ws.close(1008, "no handshake")
        except websockets.ConnectionClosed:
            pass  # the client vanished: nothing to clean up but its state
        finally:
            self.active -= 1

    async def run(self, host: str, port: int, ready: asyncio.Event | None = None,
                  stop: asyncio.Event | None = None) -> None:
        """Serve until ``stop`` is set (or forever); then close every connection, waiting at
        most a few seconds for handlers to finish."""
        # The library's own limit sits above ours so that we can answer oversized frames.
        server = await serve(self.handle, host, port, max_size=2 * self.max_frame_bytes + 1024,
                             ping_interval=20)
        if ready is not None:
            ready.set()
        log.warning("emovox serving on ws://%s:%d", host, port)
        try:
            await (stop.wait() if stop is not None else server.serve_forever())
        finally:
            server.close(close_connections=True)
            try:
                await asyncio.wait_for(server.wait_closed(), 5)
            except TimeoutError:
                log.warning("some connections did not close within 5 s")
