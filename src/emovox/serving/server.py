"""Run the service in ``workers`` processes that accept from one listening socket, each with
``settings.threads`` torch threads.

The parent binds the socket once, without ``SO_REUSEPORT`` (which would let any process of the
same user bind the port too and take a share of the connections), and hands it to its workers;
a port that anything else holds, another emovox included, is refused. The parent loads nothing
heavy: it checks the model directory, starts the workers, prints one JSON line when all of them
listen, and on SIGTERM or Ctrl-C stops them gracefully (open streams are closed with code 1012)
and returns. Workers die with their parent, however it dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing as mp
import os
import queue
import signal
import socket
import tempfile
import time
from pathlib import Path

from emovox.errors import EmovoxError
from emovox.serving.settings import Settings, is_ip_or_localhost

log = logging.getLogger(__name__)
START_TIMEOUT = 120.0
STOP_TIMEOUT = 10.0


def _die_with_parent() -> None:
    # Linux: the kernel sends SIGTERM when the parent dies (also after kill -9)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def listen_socket(host: str, port: int) -> socket.socket:
    """A listening socket of this process alone (no ``SO_REUSEPORT``), or an EmovoxError."""
    if not 0 <= port <= 65535:
        raise EmovoxError(f"port {port} outside 0-65535")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port,
                                                             type=socket.SOCK_STREAM)[0]
    except OSError as exc:
        raise EmovoxError(f"cannot listen on {host}:{port} ({exc.strerror})") from None
    sock = socket.socket(family, kind, proto)
    # SO_REUSEADDR only rebinds over connections in TIME_WAIT, never over a listener
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise EmovoxError(f"cannot listen on {host}:{port} ({exc.strerror})") from None
    return sock


def uvicorn_options(settings: Settings) -> dict:
    return {
        "log_config": None, "log_level": "warning", "access_log": False,
        # the library's frame limit sits above ours, so that we can answer oversized frames
        "ws_max_size": 2 * settings.max_frame_bytes + 1024, "ws_max_queue": 4,
        # No server pings: a stream's idle timeout already frees dead clients, and a pong
        # queued behind audio on a busy server would close healthy streams (1011).
        "ws_ping_interval": None,
        # PCM audio barely compresses, and permessage-deflate cost every stream (and client)
        # a zlib pass per 100 ms frame and per event
        "ws_per_message_deflate": False,
        "timeout_keep_alive": 5, "timeout_graceful_shutdown": 5,
    }


def _worker(model_dir: str, settings: Settings, sock: socket.socket, ready: mp.Queue) -> None:
    _die_with_parent()
    import uvicorn

    from emovox.serving.http import create_app

    try:
        app = create_app(model_dir, settings)
    except EmovoxError as exc:
        ready.put(("error", str(exc)))
        return
    server = uvicorn.Server(uvicorn.Config(app, **uvicorn_options(settings)))

    async def main() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.02)
        ready.put(("ready", os.getpid()))
        await task

    import uvloop

    uvloop.run(main())  # libuv's loop: a stream's ten messages a second cost less CPU


def serve(model_dir: str | Path, settings: Settings, host: str = "127.0.0.1",
          port: int = 8765, workers: int = 1, on_ready=None) -> dict:
    """Serve until SIGTERM or SIGINT (``on_ready(url)`` once every worker listens). Raises
    EmovoxError on a bad model directory or an address that is taken."""
    from emovox.serving.model_dir import Recognizer

    stop = False

    def request_stop(signum, frame) -> None:
        nonlocal stop
        stop = True

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        Recognizer(model_dir)  # a broken model directory: one line, before any worker starts
        if not stop:
            return _serve(model_dir, settings, host, port, workers, on_ready, lambda: stop)
        return {"stopped": True}
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _serve(model_dir, settings: Settings, host: str, port: int, workers: int, on_ready,
           stopping) -> dict:
    # Fails here if the address is taken; the workers inherit it (spawn passes its descriptor).
    sock = listen_socket(host, port)
    port = sock.getsockname()[1]
    if not is_ip_or_localhost(host):  # requests name the host the service was bound to
        settings.allowed_hosts.append(host.rstrip(".").lower())
    os.environ["OMP_NUM_THREADS"] = str(settings.threads)  # inherited by the workers
    ctx = mp.get_context("spawn")
    ready: mp.Queue = ctx.Queue()
    with tempfile.TemporaryDirectory(prefix="emovox-slots-") as slot_dir:
        settings.slot_dir = slot_dir
        procs = [ctx.Process(target=_worker, args=(str(model_dir), settings, sock, ready),
                             daemon=True) for _ in range(workers)]
        try:
            for p in procs:
                p.start()
            _wait_ready(ready, procs, stopping)
            url = f"http://{host}:{port}"
            log.warning("serving %s with %d worker(s); open %s/ for the live page", url,
                        workers, url)
            if on_ready is not None and not stopping():
                on_ready(url)
            started = time.monotonic()
            while not stopping():
                for i, p in enumerate(procs):
                    if not p.is_alive() and not stopping():
                        log.warning("worker %d exited (code %s); restarting it", p.pid,
                                    p.exitcode)
                        procs[i] = ctx.Process(target=_worker, daemon=True, args=(
                            str(model_dir), settings, sock, ready))
                        procs[i].start()
                time.sleep(0.2)
            return {"stopped": True, "url": url, "seconds": round(time.monotonic() - started, 1)}
        finally:
            _stop(procs)
            sock.close()


def _wait_ready(ready: mp.Queue, procs: list, stopping) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    pending = len(procs)
    while pending:
        if stopping():
            return
        try:
            kind, detail = ready.get(timeout=0.2)
        except queue.Empty:
            if any(not p.is_alive() for p in procs):
                raise EmovoxError("a worker process died while starting (see the log above)") \
                    from None
            if time.monotonic() > deadline:
                raise EmovoxError(f"workers not ready after {START_TIMEOUT:.0f} s") from None
            continue
        if kind == "error":
            raise EmovoxError(detail)
        pending -= 1


def _stop(procs: list) -> None:
    for p in procs:
        if p.is_alive():
            p.terminate()  # SIGTERM: uvicorn shuts down gracefully
    deadline = time.monotonic() + STOP_TIMEOUT
    for p in procs:
        p.join(max(deadline - time.monotonic(), 0.1))
        if p.is_alive():
            p.kill()
            p.join()
