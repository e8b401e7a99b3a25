"""Ray on a cluster started the way users start one: ``ray start --head``, a second node with
``ray start --address=…`` (both on this machine), and ``emovox study … 'workers={backend: ray,
address: HEAD}'``. A study's folds run on both nodes; a node killed mid-run loses only the fold
it was running, which the surviving node reruns.

Every process the tests start is killed by its id when a test ends, however it ends; should
pytest itself die, the kernel sends each one SIGTERM (with ``setpriv``, util-linux)."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

RAY = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
pytestmark = [pytest.mark.e2e,  # trains on real corpus speakers, starts two Ray nodes
              pytest.mark.skipif(RAY is None, reason="the `ray` command is not installed")]

#: What each node may take of the shared machine: one CPU, a 100 MB object store.
SMALL = ["--num-cpus=1", "--object-store-memory=100000000", "--disable-usage-stats"]
SETPRIV = shutil.which("setpriv")
#: Ray turns token authentication on for a head node when ``~/.ray/auth_token`` exists (any
#: local ``ray.init`` on this machine creates one); the nodes and the driver share a token of
#: this cluster's own instead.
ENV = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
STUDY = {
    "name": "ray_cluster",
    "base": {
        "corpus": {"format": "emodb", "path": None, "speakers": ["03", "08", "09"],
                   "labels": ["anger", "neutral", "sadness"]},
        "features": {"name": "mfcc_prosody", "normalise": "speaker", "stack": 3,
                     "cache": None, "workers": 1},
        "protocol": {"name": "loso", "seeds": [0]},
        "model": {"name": "gru_baseline", "params": {"hidden": 16}},
        "training": {"epochs": 2, "batch_size": 16, "lr": 0.005, "progress": False},
    },
    "variants": {"gru16": {}, "gru8": {"model.params.hidden": 8}},
}


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _tree(pid: int) -> set[int]:
    """``pid`` and every live process below it."""
    children: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            state, ppid = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[:2]
            if state != "Z":
                children.setdefault(int(ppid), []).append(int(entry))
    tree, todo = set(), [pid]
    while todo:
        current = todo.pop()
        tree.add(current)
        todo += children.get(current, [])
    return tree


def _kill_tree(process: subprocess.Popen) -> None:
    """``process`` and everything below it, by id: first stopped (so that none starts another
    process), then killed. Once ``process`` has been waited for, its id may be another's: left
    alone."""
    if process.poll() is not None:
        return
    stopped: set[int] = set()
    while new := _tree(process.pid) - stopped:
        for pid in new:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        stopped |= new
    for pid in stopped:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(timeout=60)


def _ended_with_pytest(command: list[str]) -> list[str]:
    """``command``, sent SIGTERM by the kernel should pytest itself die (`ray stop`'s signal:
    a node shuts down its processes)."""
    return [SETPRIV, "--pdeathsig", "TERM", *command] if SETPRIV else command


@dataclass
class Node:
    """One ``ray start --block`` and every process it started (its raylet's workers too)."""

    process: subprocess.Popen
    temp: Path
    address: str  # the head's

    @property
    def node_id(self) -> str:
        log = next(self.temp.glob("session_*/logs/raylet.out")).read_text()
        return re.search(r"Setting node ID node_id=([0-9a-f]+)", log).group(1)

    def busy(self) -> bool:
        """Whether one of its workers runs a fold now (Ray names a busy worker process after
        the task's function)."""
        for pid in _tree(self.process.pid):
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::_run_batch"):
                    return True
        return False


def start_node(temp: Path, head: str | None = None) -> Node:
    """``ray start`` as a user types it, plus ``--block`` (the test owns the process) and ports
    of its own (two nodes share this machine, and other engineers may run Ray on it)."""
    temp.mkdir(parents=True)
    gcs, manager, objects, agent, agent_grpc, metrics, runtime_env = _free_ports(7)
    command = [RAY, "start", "--block", f"--temp-dir={temp}", f"--node-manager-port={manager}",
               f"--object-manager-port={objects}", f"--dashboard-agent-listen-port={agent}",
               f"--dashboard-agent-grpc-port={agent_grpc}", f"--metrics-export-port={metrics}",
               f"--runtime-env-agent-port={runtime_env}", *SMALL]
    command += [f"--address={head}"] if head else ["--head", f"--port={gcs}",
                                                  "--include-dashboard=false"]
    log = temp / "start.log"
    with log.open("w") as out:
        process = subprocess.Popen(_ended_with_pytest(command), stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=ENV,
                                   start_new_session=True)
    node = Node(process, temp, head or f"127.0.0.1:{gcs}")
    deadline = time.time() + 180
    while "Ray runtime started." not in log.read_text():
        if process.poll() is not None or time.time() > deadline:
            _kill_tree(process)
            pytest.fail(f"`ray start` failed:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    return node


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    node = start_node(tmp_path_factory.mktemp("ray") / "head")
    yield node
    _kill_tree(node.process)


@pytest.fixture
def lone_head(tmp_path_factory):
    """A head of its own, for the test that kills it."""
    node = start_node(tmp_path_factory.mktemp("ray") / "lone")
    yield node
    _kill_tree(node.process)


@pytest.fixture
def second(head, tmp_path_factory):
    node = start_node(tmp_path_factory.mktemp("ray") / "second", head.address)
    yield node
    _kill_tree(node.process)


class Driver:
    """``emovox -q -v study …`` on the cluster, with the executor's "task i of n ran on node X"
    lines collected as they come."""

    def __init__(self, study: Path, out: Path, address: str, *options: str) -> None:
        workers = f"workers={{backend: ray, address: {address}}}"
        self.process = subprocess.Popen(_ended_with_pytest(
            [sys.executable, "-m", "emovox.cli", "-q", "-v", "study", str(study), "--out",
             str(out), *options, workers]), env=ENV, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.nodes: list[str] = []
        self.tail: collections.deque[str] = collections.deque(maxlen=30)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.tail.append(line)
            if "ran on node" in line:
                self.nodes.append(line.split()[-1])

    def wait(self, expect: int = 0) -> None:
        code = self.process.wait(timeout=1200)
        self.reader.join(timeout=10)
        assert code == expect, "".join(self.tail)


@pytest.fixture
def drivers():
    started: list[Driver] = []

    def start(*args: str | Path) -> Driver:
        started.append(Driver(*args))
        return started[-1]

    yield start
    for driver in started:
        _kill_tree(driver.process)


@pytest.fixture(scope="module")
def feature_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("features")


#: 3 folds × 3 seeds of seconds each (not milliseconds), so that a node dies mid-run.
LONGER = {"training": {**STUDY["base"]["training"], "epochs": 25, "patience": 25,
                       "plateau_patience": 25},
          "protocol": {"name": "loso", "seeds": [0, 1, 2]}}


def _study(emodb, cache: Path, tmp_path: Path, **changes) -> Path:
    base = {**STUDY["base"], "corpus": {**STUDY["base"]["corpus"], "path": str(emodb)},
            "features": {**STUDY["base"]["features"], "cache": str(cache)}, **changes}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({**STUDY, "base": base}))
    return path


def test_a_study_runs_on_both_nodes(head, second, drivers, emodb, feature_cache, tmp_path):
    out = tmp_path / "out"
    driver = drivers(_study(emodb, feature_cache, tmp_path), out, head.address)
    driver.wait()
    assert len(driver.nodes) == 6  # 2 variants × 3 folds, one task each
    assert set(driver.nodes) == {head.node_id, second.node_id}
    assert set(json.loads((out / "study.json").read_text())["variants"]) == {"gru16", "gru8"}
    assert len(list(out.glob("*/runs/seed0/fold*/result.json"))) == 6


def test_a_node_killed_mid_run(head, second, drivers, emodb, feature_cache, tmp_path):
    """The second node is killed while it runs a fold, after the driver received one of its
    folds: the folds finished by then are kept (not run again), the lost fold and those still
    queued run on the head, and the study completes."""
    out = tmp_path / "out"
    study = _study(emodb, feature_cache, tmp_path, **LONGER)
    driver = drivers(study, out, head.address, "--only", "gru16")
    lost = second.node_id
    finished: dict[Path, int] = {}
    received = None  # folds the driver had when the node was killed
    while driver.process.poll() is None and received is None:
        results = {p: p.stat().st_mtime_ns for p in out.glob("gru16/runs/*/*/result.json")}
        if lost in driver.nodes and second.busy():
            received, finished = len(driver.nodes), results
            _kill_tree(second.process)
        time.sleep(0.2)
    driver.wait()
    assert received, "the second node never ran a fold after one of its folds came back"
    assert len(list(out.glob("gru16/runs/seed*/fold*/result.json"))) == 9  # 3 folds × 3 seeds
    assert len(finished) >= received
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # not run again
    assert len(driver.nodes) == 9 and head.node_id in driver.nodes[received:]
    assert len(json.loads((out / "gru16" / "metrics.json").read_text())["uar"]["values"]) == 9


def test_the_head_killed_mid_run(lone_head, drivers, emodb, feature_cache, tmp_path):
    """Without its head the cluster is gone: the driver stops within seconds with one line
    (exit 2), and the folds it received are on its disk for the rerun."""
    out = tmp_path / "out"
    driver = drivers(_study(emodb, feature_cache, tmp_path, **LONGER), out, lone_head.address,
                     "--only", "gru16")
    while driver.process.poll() is None and not driver.nodes:
        time.sleep(0.2)
    _kill_tree(lone_head.process)
    killed = time.time()
    driver.wait(expect=2)
    assert time.time() - killed < 45  # Ray alone would end the driver after a minute
    assert driver.tail[-1].startswith("emovox: error: the Ray cluster failed mid-run (its head")
    assert driver.tail[-1].rstrip().endswith("rerun the same command to resume")
    assert 1 <= len(list(out.glob("gru16/runs/seed*/fold*/result.json"))) < 9
