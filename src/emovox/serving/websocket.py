"""The streaming protocol (version 1) over one WebSocket per stream.

    client → {"sample_rate": 16000, "encoding": "pcm_s16le", "vad": false}   (JSON handshake)
    server → {"type": "ready", "protocol": 1, "labels": [...], "step_ms": 300, ...}
    client → <binary 16-bit PCM> ...        server → {"type": "step" | "decision" | ..., ...}
    client → {"type": "end"}                server → remaining events, {"type": "done"}, close

Handshake fields are typed and range-checked (``sample_rate`` int, ``encoding``
``"pcm_s16le"``, ``vad`` bool, ``threshold`` number in (0, 1], ``version`` 1, ``speaker`` the id
of a speaker enrolled with ``POST /v1/speakers``, whose statistics the stream normalises with);
anything else gets ``{"type": "error", "error": ...}`` and a close, never a server traceback.
Every limit of :class:`~emovox.serving.settings.Settings` is enforced here, per connection: the
idle timeout, the maximum stream duration, the frame size, throttling of audio sent faster than
real time and a timeout on clients that stop reading their events. A stream takes one of
``max_streams`` slots only once its handshake is valid, and gives it back at ``done``. Close
codes are listed in ``CLOSE_CODES``.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import random
import sys
import time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.websockets import WebSocket, WebSocketDisconnect

from emovox.errors import EmovoxError
from emovox.serving.model_dir import Recognizer
from emovox.serving.settings import Settings
from emovox.serving.speakers import SPEAKER_ID, SpeakerStore, UnknownSpeaker, require_adapts
from emovox.serving.streaming import StreamingRecognizer

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
SUBPROTOCOL = "emovox.v1"
ENCODINGS = ("pcm_s16le",)
SLICE_BYTES = 3200  # large frames are pushed 100 ms at a time, yielding to other streams

CLOSE_CODES = {
    1003: "unsupported data (wrong encoding or sample rate, binary where JSON was expected)",
    1007: "malformed JSON",
    1008: "protocol violation (bad handshake field, unknown speaker, unknown command, audio "
          "before handshake)",
    1009: "frame larger than max_frame_bytes",
    1013: "too many concurrent streams: try again later",
    4408: "idle: nothing received for idle_timeout seconds",
    4413: "stream reached max_stream_seconds",
}


class ClientError(Exception):
    """A protocol violation by the client: reported to it, then the connection closes."""

    def __init__(self, message: str, code: int = 1008):
        super().__init__(message)
        self.code = code


class Handshake(BaseModel):
    """The first message of a stream."""

    model_config = ConfigDict(extra="forbid", strict=True)

    sample_rate: Annotated[int, Field(ge=8000, le=192_000)]
    encoding: str = "pcm_s16le"
    vad: bool = False
    threshold: Annotated[float, Field(gt=0, le=1)] | None = None
    version: Literal[1] = PROTOCOL_VERSION
    speaker: Annotated[str, Field(pattern=f"^{SPEAKER_ID}$")] | None = None

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        if value not in ENCODINGS:
            raise ValueError(f"unsupported encoding {value!r}; use one of {ENCODINGS}")
        return value

    @classmethod
    def parse(cls, data: dict) -> Handshake:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "handshake"
            code = 1003 if where == "encoding" else 1008
            raise ClientError(f"handshake field {where!r}: {err['msg']}", code) from None


def parse_json(message: str | bytes) -> dict:
    if isinstance(message, bytes):
        raise ClientError("expected a JSON text message, got binary data", 1003)
    try:
        data = json.loads(message)
    except json.JSONDecodeError as exc:
        raise ClientError(f"malformed JSON: {exc}", 1007) from None
    except RecursionError:  # "[[[[…": nested deeper than the parser's stack
        raise ClientError("malformed JSON: nested too deeply", 1007) from None
    except ValueError:  # an integer too long to convert
        raise ClientError(f"malformed JSON: a number of more than "
                          f"{sys.get_int_max_str_digits()} digits", 1007) from None
    if not isinstance(data, dict):
        raise ClientError("JSON message must be an object", 1007)
    return data


class StreamSlots:
    """How many streams are open, over all worker processes: one lock file per slot. A stream
    holds an ``flock`` on a free slot; the kernel releases it if the worker dies."""

    def __init__(self, directory: str, n: int):
        self.fds = [os.open(os.path.join(directory, f"slot-{i}"), os.O_RDWR | os.O_CREAT, 0o600)
                    for i in range(n)]
        self.held: set[int] = set()

    def acquire(self) -> int | None:
        n = len(self.fds)
        start = random.randrange(n)
        for k in range(n):
            i = (start + k) % n
            if i in self.held:
                continue
            try:
                fcntl.flock(self.fds[i], fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            self.held.add(i)
            return i
        return None

    def release(self, i: int) -> None:
        fcntl.flock(self.fds[i], fcntl.LOCK_UN)
        self.held.discard(i)

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds, self.held = [], set()


class StreamService:
    """Opens and runs streams for one worker process (``speakers``: the server's enrolled
    speakers; None: none)."""

    def __init__(self, recognizer: Recognizer, settings: Settings, slots: StreamSlots,
                 speakers: SpeakerStore | None = None):
        self.recognizer = recognizer
        self.settings = settings
        self.slots = slots
        self.speakers = speakers
        try:  # a model that cannot stream still serves predictions
            probe = StreamingRecognizer(recognizer, threads=settings.threads)
            self.step_ms: int | None = probe.step_ms
            self.stream_error: str | None = None
        except EmovoxError as exc:
            self.step_ms, self.stream_error = None, str(exc)

    @property
    def active(self) -> int:
        return len(self.slots.held)

    def open_stream(self, hello: Handshake) -> StreamingRecognizer:
        statistics = None
        if hello.speaker is not None:  # read once: a later DELETE leaves this stream as it is
            try:
                require_adapts(self.recognizer)
                if self.speakers is None:
                    raise UnknownSpeaker(hello.speaker)
                statistics = self.speakers.get(hello.speaker).statistics
            except EmovoxError as exc:
                raise ClientError(f"handshake field 'speaker': {exc}", 1008) from None
        try:
            return StreamingRecognizer(self.recognizer, sample_rate=hello.sample_rate,
                                       vad=hello.vad, threshold=hello.threshold,
                                       threads=self.settings.threads, speaker=statistics)
        except EmovoxError as exc:
            raise ClientError(str(exc), 1003) from None

    async def handle(self, ws: WebSocket, subprotocol: str | None) -> None:
        """Run one stream; the Host, token and Origin checks happened before."""
        await ws.accept(subprotocol=subprotocol)
        if self.stream_error is not None:
            await _close(ws, 1003, self.stream_error)
        else:
            await _Connection(self, ws).run()


class _Connection:
    def __init__(self, service: StreamService, ws: WebSocket):
        self.service, self.ws, self.settings = service, ws, service.settings
        self.opened = time.monotonic()
        self.deadline = self.opened + self.settings.max_stream_seconds

    # asyncio.timeout, not wait_for: no task per message (ten messages a second per stream)
    async def receive(self, timeout: float) -> str | bytes:
        now = time.monotonic()
        try:
            async with asyncio.timeout(min(timeout, self.deadline - now)):
                message = await self.ws.receive()
        except TimeoutError:
            if time.monotonic() >= self.deadline - 1e-3:
                raise ClientError(f"stream reached the {self.settings.max_stream_seconds:g} s "
                                  "limit", 4413) from None
            raise ClientError(f"idle for {timeout:g} s", 4408) from None
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        if message.get("bytes") is not None:
            return message["bytes"]
        return message.get("text") or ""

    async def send(self, data: dict) -> None:
        async with asyncio.timeout(self.settings.send_timeout):
            await self.ws.send_text(json.dumps(data))

    async def run(self) -> None:
        try:
            await self._run()
        except ClientError as exc:
            log.info("client error: %s", exc)
            await _close(self.ws, exc.code, str(exc))
        except TimeoutError:  # a send timed out: the client stopped reading its events
            log.info("client stopped reading; dropping its stream")
        except (WebSocketDisconnect, RuntimeError):
            pass  # the client vanished: nothing to clean up but its state

    async def _run(self) -> None:
        hello = Handshake.parse(parse_json(await self.receive(self.settings.handshake_timeout)))
        slots = self.service.slots
        slot = slots.acquire()  # only now: silent connections must not hold the slots
        if slot is None:
            raise ClientError(f"server busy: {self.settings.max_streams} streams open; try "
                              "again later", 1013)
        try:
            await self._stream(hello)
        finally:
            slots.release(slot)

    async def _stream(self, hello: Handshake) -> None:
        settings = self.settings
        stream = self.service.open_stream(hello)
        speaker = {} if hello.speaker is None else {"speaker": hello.speaker}
        await self.send({"type": "ready", "protocol": PROTOCOL_VERSION, "labels": stream.labels,
                         "step_ms": stream.step_ms, "sample_rate": stream.sample_rate,
                         "max_frame_bytes": settings.max_frame_bytes,
                         "max_stream_seconds": settings.max_stream_seconds,
                         "idle_timeout": settings.idle_timeout, **speaker})
        started = time.monotonic()
        audio_seconds = 0.0
        bytes_per_second = 2 * stream.sample_rate
        while True:
            message = await self.receive(settings.idle_timeout)
            if isinstance(message, bytes):
                if len(message) > settings.max_frame_bytes:
                    raise ClientError(f"frame of {len(message)} bytes exceeds "
                                      f"{settings.max_frame_bytes}", 1009)
                if len(message) % 2:
                    raise ClientError("PCM frame has an odd number of bytes; expected 16-bit "
                                      "samples", 1003)
                for start in range(0, len(message), SLICE_BYTES):
                    if start:
                        await asyncio.sleep(0)
                    try:
                        events = await stream.push_async(
                            message[start : start + SLICE_BYTES])
                    except EmovoxError as exc:
                        raise ClientError(str(exc), 1003) from None
                    for event in events:
                        await self.send(event.to_dict())
                # Faster than real time beyond the burst: stop reading until time catches up.
                audio_seconds += len(message) / bytes_per_second
                ahead = audio_seconds - (time.monotonic() - started) - settings.burst_seconds
                if ahead > 0:
                    await asyncio.sleep(min(ahead, max(self.deadline - time.monotonic(), 0)))
                continue
            command = parse_json(message)
            if command.get("type") != "end":
                raise ClientError(f"unknown command {command.get('type')!r}", 1008)
            for event in await stream.end_async():
                await self.send(event.to_dict())
            await self.send({"type": "done"})
            async with asyncio.timeout(settings.send_timeout):
                await self.ws.close(1000)
            return


async def _close(ws: WebSocket, code: int, message: str) -> None:
    try:
        await asyncio.wait_for(ws.send_text(json.dumps({"type": "error", "error": message,
                                                        "code": code})), 2)
        await asyncio.wait_for(ws.close(code, message.encode()[:120].decode(errors="ignore")),
                               2)
    except (TimeoutError, WebSocketDisconnect, RuntimeError):
        pass
