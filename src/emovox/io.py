"""Atomic file writes (a crash or a concurrent writer never leaves a half-written result) and
the run-directory lock (a rerun never races a dead run's workers)."""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from emovox.errors import EmovoxError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def cache_dir(kind: str) -> Path:
    """Where emovox caches ``kind`` (features, rooms, opensmile, transcripts): under
    ``$EMOVOX_CACHE`` when set, else ``~/.cache/emovox`` — the one cache setting."""
    root = os.environ.get("EMOVOX_CACHE") or Path.home() / ".cache" / "emovox"
    return Path(root).expanduser() / kind


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write`` on a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp creates 0600; give what open() would
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def atomic_write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


#: Set in worker processes' environment while a run holds its directory (see run_lock).
WORKERS_LOCK_ENV = "EMOVOX_WORKERS_LOCK"


class RunLock:
    """Exclusive use of a run directory by one emovox run and its worker processes.

    The run holds ``.emovox.lock`` exclusively (flock: released by the kernel however the
    process dies); its workers (emovox.parallel) hold ``.emovox-workers.lock`` shared, found
    through the environment. A new run takes the first lock or fails at once with one line,
    then waits up to ``wait_s`` for a dead run's workers to let go of the second.
    """

    def __init__(self, directory: str | Path, wait_s: float = 15.0):
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / ".emovox.lock"
        self.workers_path = directory / ".emovox-workers.lock"
        self.fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 64, 0).decode(errors="replace").strip() or "?"
            self.close()
            raise EmovoxError(f"{directory}: in use by another emovox run (pid {holder}); "
                              "wait for it to finish or choose another output directory") \
                from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)
        self._wait_for_workers(directory, wait_s)
        self.previous_env = os.environ.get(WORKERS_LOCK_ENV)
        os.environ[WORKERS_LOCK_ENV] = str(self.workers_path)

    def _wait_for_workers(self, directory: Path, wait_s: float) -> None:
        fd = os.open(self.workers_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        self.close()
                        raise EmovoxError(f"{directory}: worker processes of an earlier run "
                                          f"still hold {self.workers_path.name} after "
                                          f"{wait_s:g} s; stop them first") from None
                    time.sleep(0.2)
        finally:
            os.close(fd)  # releases it: this run's own workers take it shared

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
            if WORKERS_LOCK_ENV in os.environ and hasattr(self, "previous_env"):
                if self.previous_env is None:
                    del os.environ[WORKERS_LOCK_ENV]
                else:
                    os.environ[WORKERS_LOCK_ENV] = self.previous_env

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def run_lock(directory: str | Path, wait_s: float = 15.0) -> RunLock:
    """Lock ``directory`` for this run (``with run_lock(out): ...``, or keep the returned object
    alive); raises EmovoxError with one line when another live run holds it."""
    return RunLock(directory, wait_s)
