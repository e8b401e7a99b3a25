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
more worker processes. :class:`Guard` checks every request before any route: its ``Host`` (a
DNS-rebound name is refused), with a token ``Authorization: Bearer TOKEN`` (a browser's
WebSocket may send the subprotocol ``bearer.TOKEN`` instead), a browser's ``Origin``, and the
size and arrival time of its body; the page's own static files, which hold no data, need only
the Host check. The threat model and what each limit defends: docs/service.md, "Security".
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import logging
import os
import tempfile
import time
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import soundfile as sf
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict

from emovox.audio import AudioTooLarge, decode_audio
from emovox.errors import EmovoxError
from emovox.serving.model_dir import Recognizer
from emovox.serving.settings import Settings, host_name, is_ip_or_localhost
from emovox.serving.streaming import set_threads
from emovox.serving.websocket import SUBPROTOCOL, StreamService, StreamSlots

STATIC = Path(__file__).with_name("static")
PUBLIC = ("/",)  # and everything under /static/
BEARER_PROTOCOL = "bearer."
log = logging.getLogger(__name__)


class Prediction(BaseModel):
    """One file's record: the method's own fields (a classifier's ``label``, ``confidence`` and
    ``probabilities``; dcgan's ``valence``, ``arousal`` and their distributions), then the
    audio's ``duration`` and the ``model`` id."""

    model_config = ConfigDict(extra="allow")

    label: str | None = None
    confidence: float | None = None
    probabilities: dict[str, float] | None = None
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


def audio_seconds(data: bytes) -> float:
    """Seconds of audio an upload's header declares (0 if it has none: decoding will say why)."""
    try:
        info = sf.info(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError):
        return 0.0
    return info.frames / info.samplerate


class FloodFilter(logging.Filter):
    """At most ``burst`` log records from one place in the code per ``window`` seconds; the
    next one let through says how many were dropped. Refused requests and malformed bodies are
    logged (by us, uvicorn and python-multipart): a client repeating them must not flood the
    log."""

    def __init__(self, burst: int = 5, window: float = 60.0):
        super().__init__()
        self.burst, self.window = burst, window
        self.seen: dict[tuple[str, int], list] = {}  # call site → [window start, passed, dropped]

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        state = self.seen.setdefault((record.pathname, record.lineno), [now, 0, 0])
        if now - state[0] >= self.window:
            state[0], state[1] = now, 0
        if state[1] >= self.burst:
            state[2] += 1
            return False
        if state[2]:
            record.msg = f"{record.msg} [{state[2]} similar lines dropped]"
            state[2] = 0
        state[1] += 1
        return True


#: Loggers that write a line per refused or malformed request.
FLOODABLE_LOGGERS = (__name__, "uvicorn.error", "python_multipart.multipart")


def limit_log_floods() -> None:
    for name in FLOODABLE_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, FloodFilter) for f in logger.filters):
            logger.addFilter(FloodFilter())


class Guard:
    """ASGI middleware, before any route: the Host header, the bearer token, the Origin of
    browsers, the size of a request body and the time it may take to arrive."""

    def __init__(self, app, settings: Settings):
        self.app = app
        self.settings = settings

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        path = scope["path"]
        if not self._host_allowed(headers.get("host")):
            return await _deny(scope, send, 400, f"host {headers['host'][:100]!r} not served here "
                                                 "(see --allowed-hosts)")
        public = scope["type"] == "http" and (path in PUBLIC or path.startswith("/static/"))
        if public:
            return await self.app(scope, receive, send)
        if not self._authorised(headers):
            return await _deny(scope, send, 401, "missing or wrong bearer token")
        if not self._origin_allowed(headers):
            return await _deny(scope, send, 403, f"origin {headers['origin'][:100]!r} not allowed")
        if scope["type"] == "websocket":
            return await self.app(scope, receive, send)
        await self._limit_body(scope, receive, send, headers.get("content-length"))

    async def _limit_body(self, scope, receive, send, length: str | None) -> None:
        settings = self.settings
        limit = settings.max_upload_bytes
        if length is not None and length.isdigit() and int(length) > limit:
            return await _deny(scope, send, 413, f"upload of {length} bytes exceeds "
                                                 f"{settings.max_upload_mb:g} MiB")
        received, deadline, complete = 0, None, False

        async def limited_receive():
            nonlocal received, deadline, complete
            if complete:  # after the body: only a disconnect can come
                return await receive()
            deadline = deadline or asyncio.get_running_loop().time() + settings.body_timeout
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise _BodyRefused(408, f"request body not received within "
                                        f"{settings.body_timeout:g} s") from None
            received += len(message.get("body", b""))
            if received > limit:
                raise _BodyRefused(413, f"upload exceeds {settings.max_upload_mb:g} MiB")
            complete = not message.get("more_body", False)
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyRefused as refused:
            await _deny(scope, send, refused.status, str(refused))

    def _host_allowed(self, host: str | None) -> bool:
        """Only names that DNS rebinding cannot produce (addresses, ``localhost``) and the
        configured ones. A request without Host (HTTP/1.0) is not from a browser."""
        if host is None:
            return True
        name = host_name(host)
        allowed = self.settings.allowed_hosts
        return is_ip_or_localhost(name) or name in allowed or "*" in allowed

    def _authorised(self, headers: dict[str, str]) -> bool:
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
        """A browser's request (it sends Origin) from the service's own origin — scheme
        included: the service speaks plain HTTP — or a listed one. The Host it names was
        checked first, so its own origin is never a rebound name."""
        origin = headers.get("origin")
        if origin is None:
            return True  # not a browser (or a same-origin GET); the token, if any, protects
        origin = origin.rstrip("/").lower()
        allowed = self.settings.allowed_origins
        return origin in allowed or "*" in allowed or \
            origin == f"http://{headers.get('host', '').strip().lower()}"


class _BodyRefused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


async def _deny(scope, send, status: int, message: str) -> None:
    log.warning("refused %s %s: %s", scope["type"], scope["path"], message)
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    if status in (408, 413):  # the rest of the body is never read: the connection must end
        headers.append((b"connection", b"close"))
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
    # One CPU-bound prediction at a time per worker, long files apart: one long upload never
    # holds up the short ones.
    short_slot, long_slot = anyio.CapacityLimiter(1), anyio.CapacityLimiter(1)
    rate = recognizer.sample_rate
    limit_log_floods()

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
        wave = decode_audio(data, name, rate, settings.max_file_seconds,
                            settings.max_file_samples)
        return {**recognizer.describe(recognizer.proba(wave)),
                "duration": round(len(wave) / rate, 4), "model": mid}

    async def predict_async(data: bytes, name: str) -> dict:
        long = audio_seconds(data) > settings.long_file_seconds
        return await anyio.to_thread.run_sync(predict, data, name,
                                              limiter=long_slot if long else short_slot)

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
            return JSONResponse({"error": str(exc)}, 413 if isinstance(exc, AudioTooLarge) else 400)

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
