"""Ray as the executor of :func:`emovox.parallel.imap`: the same jobs, as tasks on a cluster.

Chosen with a mapping where a worker count goes, ``workers: {backend: ray, address: auto}``
(an experiment's folds × seeds) or ``features.workers: {...}`` (feature extraction, batches of
``chunksize`` utterances per task). ``address``: ``auto`` (the cluster ``ray start`` made on
this machine), ``HOST:PORT`` (a head node's GCS), or ``local`` (a private instance on this
machine's CPUs); ``cpus``: CPUs per task (default 1). A process that already called
``ray.init`` keeps its connection.

Results travel back to the driver, which writes every output (the runner writes each finished
fold's ``result.json`` as it arrives), so a killed driver resumes the finished folds exactly as
with processes. Objects that many jobs share (the dataset) are put in Ray's object store once.
Each task's result is fetched as soon as it ends and the node that ran it is logged (INFO), so
a node lost mid-run costs only the tasks it was running: Ray reruns them on the nodes left
(its default three retries). A head node that stops answering ends the run with one line.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any

from emovox.errors import ConfigError, EmovoxError

log = logging.getLogger(__name__)
KEYS = {"backend", "address", "cpus"}
#: Job elements sent by value even when shared (cheap to copy, often equal by identity).
_SCALARS = (int, float, str, bool, bytes, type(None))


class ClusterGone(EmovoxError):
    """The cluster stopped answering mid-run."""


def _reachable(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
        return True
    except (OSError, ValueError):
        return False


def _connect(address: str) -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("workers.backend ray: the ray package is not installed "
                          "(pip install ray==2.60.0)") from None
    if ray.is_initialized():
        return ray
    try:
        if address not in ("auto", "local") and not _reachable(address):
            raise ConnectionError("nothing answers there")  # in seconds, not Ray's retries
        if address == "local":
            ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        else:
            ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
    except (OSError, RuntimeError, ValueError) as exc:  # ConnectionError, timeouts: OSError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EmovoxError(f"cannot reach the Ray cluster at {address!r} ({first[:200]}); start "
                          "one with `ray start --head` or fix workers.address") from None
    return ray


def _run_batch(fn: Callable[[Any], Any], arity: int, *flat: Any) -> tuple[str, list]:
    """A task: ``fn`` over its batch of jobs, rebuilt from the flat arguments (Ray resolves the
    object references among them); returns the id of the node that ran it and the results."""
    import ray

    jobs = [tuple(flat[i : i + arity]) for i in range(0, len(flat), arity)] if arity \
        else list(flat)
    return ray.get_runtime_context().get_node_id(), [fn(job) for job in jobs]


def _flatten(ray: Any, jobs: list) -> tuple[int, list[list]]:
    """Jobs as flat argument lists; tuple elements shared by several jobs become one object
    reference each."""
    if not jobs or not all(isinstance(j, tuple) and len(j) == len(jobs[0]) for j in jobs):
        return 0, [[j] for j in jobs]
    counts: dict[int, int] = {}
    for job in jobs:
        for part in job:
            counts[id(part)] = counts.get(id(part), 0) + 1
    refs: dict[int, Any] = {}
    flat = []
    for job in jobs:
        args = []
        for part in job:
            if counts[id(part)] > 1 and not isinstance(part, _SCALARS):
                if id(part) not in refs:
                    refs[id(part)] = ray.put(part)
                args.append(refs[id(part)])
            else:
                args.append(part)
        flat.append(args)
    return len(jobs[0]), flat


def imap(fn: Callable[[Any], Any], jobs: list, spec: dict, chunksize: int = 1) -> Iterator[Any]:
    """``fn`` over ``jobs`` in order, ``chunksize`` jobs per Ray task."""
    unknown = set(spec) - KEYS
    if unknown or spec.get("backend") != "ray":
        raise ConfigError(f"workers: expected a count or {{backend: ray, address: auto|HOST:PORT|"
                          f"local, cpus: N}}, got {spec!r}")
    ray = _connect(str(spec.get("address", "auto")))
    arity, flat = _flatten(ray, list(jobs))
    task = ray.remote(num_cpus=spec.get("cpus", 1))(_run_batch)
    refs = [task.remote(fn, arity, *[a for args in flat[i : i + chunksize] for a in args])
            for i in range(0, len(flat), chunksize)]
    gcs = ray.get_runtime_context().gcs_address
    try:
        yield from _in_order(ray, refs, gcs)
    except ClusterGone:
        raise
    except BaseException:
        for ref in refs:  # interrupted or failed: stop the tasks still queued or running
            ray.cancel(ref, force=True)
        raise


def _gone(reason: str) -> ClusterGone:
    return ClusterGone(f"the Ray cluster failed mid-run ({reason[:160]}); finished folds are "
                       "kept — rerun the same command to resume")


def _in_order(ray: Any, refs: list, gcs: str) -> Iterator[Any]:
    """The tasks' results in submission order, each fetched as soon as its task ends and held
    here until its turn: a node that dies later takes no finished result with it. A task's
    error is raised at its turn, as the process pool does. A cluster whose control service
    (GCS) stops answering fails within seconds instead of blocking (Ray itself would end the
    process a minute later)."""
    turn = {ref: i for i, ref in enumerate(refs)}
    pending, fetched = list(refs), {}
    for i in range(len(refs)):
        while i not in fetched:
            if not ray.wait(pending, num_returns=1, timeout=5)[0]:
                if not _reachable(gcs):
                    raise _gone(f"its head at {gcs} no longer answers")
                continue
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=0)
            for ref in ready:
                fetched[turn[ref]] = _fetch(ray, ref, f"task {turn[ref] + 1} of {len(refs)}")
        outcome = fetched.pop(i)
        if isinstance(outcome, BaseException):
            raise outcome
        yield from outcome


def _fetch(ray: Any, ref: Any, name: str) -> list | BaseException:
    """A finished task's results, or the exception to raise at its turn: what the job itself
    raised, or :class:`ClusterGone` when Ray gave up on it (its node died once too often)."""
    from ray.exceptions import RayError, RayTaskError

    try:
        node, results = ray.get(ref)
    except RayTaskError as exc:
        return exc.cause if isinstance(exc.cause, BaseException) else exc
    except RayError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return _gone(f"{type(exc).__name__}: {first}")
    log.info("ray: %s ran on node %s", name, node)
    return results
