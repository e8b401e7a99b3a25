"""One way to spread independent jobs over processes (spawned: safe with torch threads)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any


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
        pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"))
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
