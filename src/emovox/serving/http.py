"""The emovox service: one FastAPI app for offline predictions, streams and the live page.

    POST /v1/predict   audio file in the body (any format soundfile reads), or several files
                       as multipart/form-data → label, probabilities, duration, model id
    WS   /v1/stream    the streaming protocol of :mod:`emovox.serving.websocket` (also on ``/``
                       for clients of the first, path-less server)
    GET  /healthz      liveness, model id, this worker's open streams
    GET  /v1/models    the model served: labels, features, whether it streams
    GET  /docs         OpenAPI (schema at /openapi.json)
    GET  /             the live microphone page (static files in ``serving/static``)

``create_app(model_dir, settings)`` builds it; :mod:`emovox.serving.server` runs it in one or
more worker processes. With a token every request needs ``Authorization: Bearer TOKEN`` (a
browser's WebSocket may send the subprotocol ``bearer.TOKEN`` instead) except the page's own
static files, which hold no data.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import numpy as np
import soundfile as sf
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from emovox.audio import prepare_samples
from emovox.errors import AudioError, EmovoxError
from emovox.serving.model_dir import Recognizer
from emovox.serving.settings import Settings, is_ip_or_localhost
from emovox.serving.streaming import set_threads
from emovox.serving.websocket import SUBPROTOCOL, StreamService, StreamSlots

STATIC = Path(__file__).with_name("static")
PUBLIC = ("/",)  # and everything under /static/
BEARER_PROTOCOL = "bearer."


class Prediction(BaseModel):
    label: str
    confidence: float
    probabilities: dict[str, float]
    duration: float
    model: str
    filename: str | None = None


class BatchPrediction(BaseModel):
    results: list[Prediction | dict]


def model_id(model_dir: Path) -> str:
    """Directory name and a hash of its files: two different models never share an id."""
    digest = hashlib.sha256()
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        digest.update(path.relative_to(model_dir).as_posix().encode())
        digest.update(path.read_bytes())
    return f"{model_dir.resolve().name}@{digest.hexdigest()[:10]}"


class UploadTooLong(AudioError):
    """Answered with 413, like an oversized body."""


def decode_audio(data: bytes, name: str, sample_rate: int, max_seconds: float) -> np.ndarray:
    """Any soundfile-readable bytes → mono float32 at ``sample_rate``; one-line errors."""
    if not data:
        raise AudioError(name, "empty upload (0 bytes)")
    try:
        info = sf.info(io.BytesIO(data))
        if info.frames / info.samplerate > max_seconds:
            raise UploadTooLong(name, f"{info.frames / info.samplerate:.0f} s of audio exceeds "
                                   f"the {max_seconds:g} s limit")
        wave, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        reason = getattr(exc, "error_string", None) or str(exc)
        raise AudioError(name, f"unreadable or corrupt audio ({reason})") from None
    return prepare_samples(wave, rate, sample_rate, name)


class Guard:
    """ASGI middleware: bearer token, Origin of browser WebSockets, maximum body size."""

    def __init__(self, app, settings: Settings):
        self.app = app
        self.settings = settings

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        path = scope["path"]
        public = scope["type"] == "http" and (path in PUBLIC or path.startswith("/static/"))
        if not public and not self._authorised(scope, headers):
            return await _deny(scope, send, 401, "missing or wrong bearer token")
        if scope["type"] == "websocket":
            if not self._origin_allowed(headers):
                return await _deny(scope, send, 403, f"origin {headers['origin']!r} not allowed")
            return await self.app(scope, receive, send)
        limit = self.settings.max_upload_bytes
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return await _deny(scope, send, 413, f"upload of {length} bytes exceeds "
                                                 f"{self.settings.max_upload_mb:g} MiB")
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await _deny(scope, send, 413, f"upload exceeds {self.settings.max_upload_mb:g} MiB")

    def _authorised(self, scope, headers: dict[str, str]) -> bool:
        token = self.settings.token
        if token is None:
            return True
        offered = headers.get("authorization", "")
        if offered.lower().startswith("bearer "):
            return hmac.compare_digest(offered[7:].strip().encode(), token.encode())
        for proto in headers.get("sec-websocket-protocol", "").split(","):
            proto = proto.strip()
            if proto.startswith(BEARER_PROTOCOL):
                return hmac.compare_digest(proto[len(BEARER_PROTOCOL):].encode(),
                                           token.encode())
        return False

    def _origin_allowed(self, headers: dict[str, str]) -> bool:
        origin = headers.get("origin")
        if origin is None:
            return True  # not a browser; the token (if any) protects the service
        if origin.rstrip("/") in self.settings.allowed_origins or \
                "*" in self.settings.allowed_origins:
            return True
        parts = urlsplit(origin)
        if parts.netloc.lower() != headers.get("host", "").lower():
            return False
        # Same origin. Without a token, only under an IP address or "localhost": a page whose
        # own name was rebound to this machine's address (DNS rebinding) is another origin.
        return self.settings.token is not None or is_ip_or_localhost(parts.hostname or "")


class _TooLarge(Exception):
    pass


async def _deny(scope, send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    if scope["type"] == "websocket":
        if "websocket.http.response" not in scope.get("extensions", {}):
            return await send({"type": "websocket.close", "code": 1008})
        prefix = "websocket."
    else:
        prefix = ""
    await send({"type": f"{prefix}http.response.start", "status": status, "headers": headers})
    await send({"type": f"{prefix}http.response.body", "body": body})


def create_app(model_dir: str | Path, settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    model_dir = Path(model_dir)
    set_threads(settings.threads)
    recognizer = Recognizer(model_dir)
    mid = model_id(model_dir)
    own_slots = None
    if settings.slot_dir is None:
        own_slots = tempfile.TemporaryDirectory(prefix="emovox-slots-")
    slots = StreamSlots(settings.slot_dir or own_slots.name, settings.max_streams)
    service = StreamService(recognizer, settings, slots)
    limiter = anyio.CapacityLimiter(1)  # one CPU-bound prediction at a time per worker
    rate = recognizer.sample_rate

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        slots.close()
        if own_slots is not None:
            own_slots.cleanup()

    app = FastAPI(title="emovox", version="1", lifespan=lifespan,
                  description="Speech emotion recognition: offline predictions, live streams.")
    app.state.service = service
    app.state.model_id = mid

    def predict(data: bytes, name: str) -> dict:
        wave = decode_audio(data, name, rate, settings.max_file_seconds)
        proba = recognizer.proba(wave)
        return {"label": recognizer.labels[int(proba.argmax())],
                "confidence": round(float(proba.max()), 6),
                "probabilities": {k: round(float(v), 6)
                                  for k, v in zip(recognizer.labels, proba, strict=True)},
                "duration": round(len(wave) / rate, 4), "model": mid}

    async def predict_async(data: bytes, name: str) -> dict:
        return await anyio.to_thread.run_sync(predict, data, name, limiter=limiter)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok", "model": mid, "pid": os.getpid(), "streams": service.active,
                "streaming": service.stream_error is None}

    @app.get("/v1/models")
    async def models() -> dict:
        config = recognizer.config
        return {"models": [{
            "id": mid, "model": config.model.name, "method": config.method.name,
            "labels": recognizer.labels, "features": recognizer.meta["features"]["name"],
            "sample_rate": rate,
            "streaming": service.stream_error is None,
            "step_ms": service.step_ms,
        }]}

    @app.post("/v1/predict", response_model=Prediction | BatchPrediction,
              response_model_exclude_none=True,
              openapi_extra={"requestBody": {"content": {
                  "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                  "multipart/form-data": {"schema": {"type": "object", "properties": {
                      "files": {"type": "array",
                                "items": {"type": "string", "format": "binary"}}}}}},
                  "required": True}})
    async def predict_endpoint(request: Request):
        """Label audio: the raw file as the body, or several files as multipart/form-data
        (each result names its file; a file that cannot be read gets an ``error``)."""
        kind = request.headers.get("content-type", "")
        if kind.startswith("multipart/form-data"):
            form = await request.form(max_files=1000, max_part_size=settings.max_upload_bytes)
            results = []
            for key, value in form.multi_items():
                if isinstance(value, str):
                    continue
                name = value.filename or key
                try:
                    results.append({**await predict_async(await value.read(), name),
                                    "filename": name})
                except EmovoxError as exc:
                    results.append({"filename": name, "error": str(exc)})
            if not results:
                return JSONResponse({"error": "no files in the multipart body"}, 400)
            return {"results": results}
        try:
            return await predict_async(await request.body(), "upload")
        except EmovoxError as exc:
            return JSONResponse({"error": str(exc)}, 413 if isinstance(exc, UploadTooLong) else 400)

    async def stream(websocket: WebSocket) -> None:
        offered = websocket.scope.get("subprotocols", [])
        await service.handle(websocket, SUBPROTOCOL if SUBPROTOCOL in offered else None)

    app.add_api_websocket_route("/v1/stream", stream)
    app.add_api_websocket_route("/", stream)  # the first server accepted any path

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(Guard, settings=settings)
    return app
