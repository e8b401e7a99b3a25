"""One way to spread independent jobs over processes (spawned: safe with torch threads).

Workers never outlive their parent, however it dies (``kill -9``, the out-of-memory killer):
on Linux the kernel sends them SIGKILL when it exits (PR_SET_PDEATHSIG), and a watchdog thread
polling the parent's pid covers other systems. While a run holds its directory
(:func:`emovox.io.run_lock`) each worker also holds that directory's worker lock, so a rerun
waits for a dead run's workers to be gone before it starts.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

from emovox.io import WORKERS_LOCK_ENV

PR_SET_PDEATHSIG = 1
WATCHDOG_S = 1.0
_held: list[int] = []  # the worker lock's descriptor, open for the worker's life


def _exit_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watchdog still works
    if os.getppid() != parent:  # died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCHDOG_S)
        os._exit(1)

    threading.Thread(target=watch, name="emovox-parent-watchdog", daemon=True).start()


def worker_init(parent: int) -> None:
    """Runs first in every worker process (picklable: a module-level function)."""
    _exit_with_parent(parent)
    lock = os.environ.get(WORKERS_LOCK_ENV)
    if lock:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        fcntl.flock(fd, fcntl.LOCK_SH)
        _held.append(fd)


def imap(fn: Callable[[Any], Any], jobs: list, workers: int | dict = 1, chunksize: int = 1,
         min_jobs: int = 2) -> Iterator[Any]:
    """``fn`` over ``jobs`` in order: in ``workers`` processes, or in this one when
    ``workers`` ≤ 1 or there are fewer than ``min_jobs`` jobs (not worth the start-up); a
    mapping ``{backend: ray, ...}`` runs them as Ray tasks (:mod:`emovox.ray_executor`)."""
    if isinstance(workers, dict):
        from emovox.ray_executor import imap as ray_imap

        yield from ray_imap(fn, jobs, workers, chunksize)
        return
    if workers > 1 and len(jobs) >= min_jobs:
        pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                                   initializer=worker_init, initargs=(os.getpid(),))
        try:
            yield from pool.map(fn, jobs, chunksize=chunksize)
        except BaseException:
            # interrupted (Ctrl-C, SIGTERM) or failed: stop the workers now rather than letting
            # them finish their jobs unattended; every result they write is atomic, so a rerun
            # resumes cleanly
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
    else:
        yield from map(fn, jobs)
