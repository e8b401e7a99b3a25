"""No orphans: workers die with their parent (kill -9 included); the run-directory lock;
atomic writes honour the umask."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emovox.errors import EmovoxError
from emovox.io import atomic_write_text, run_lock

SRC = str(Path(__file__).resolve().parents[1] / "src")

PARENT = """
import sys, time
from emovox.io import run_lock
from emovox.parallel import imap
with run_lock(sys.argv[1]):
    list(imap(time.sleep, [120.0] * 4, workers=2))
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie waiting for init to reap it is dead


def _workers(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == parent and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def _start_parent(run_dir: Path) -> tuple[subprocess.Popen, list[int]]:
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen([sys.executable, "-c", PARENT, str(run_dir)], env=env)
    deadline = time.monotonic() + 120
    while len(workers := _workers(proc.pid)) < 2:
        assert proc.poll() is None, "parent exited early"
        assert time.monotonic() < deadline, "workers never started"
        time.sleep(0.2)
    time.sleep(1.0)  # let the initialisers (prctl, worker lock) run
    return proc, workers


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_a_killed_parent_and_a_rerun_waits_for_them(tmp_path):
    proc, workers = _start_parent(tmp_path)
    with pytest.raises(EmovoxError, match=r"in use by another emovox run \(pid \d+\)"):
        run_lock(tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = time.monotonic()
    with run_lock(tmp_path, wait_s=10):
        # the lock is only granted once the dead run's workers let go of theirs
        assert not any(_alive(pid) for pid in workers)
    while any(_alive(pid) for pid in workers):
        assert time.monotonic() - killed < 5, "workers outlived their parent"
        time.sleep(0.1)


def test_run_lock_waits_for_workers_then_names_the_file(tmp_path):
    with run_lock(tmp_path) as lock:
        assert os.environ["EMOVOX_WORKERS_LOCK"] == str(lock.workers_path)
        assert (tmp_path / ".emovox.lock").read_text().strip() == str(os.getpid())
    assert "EMOVOX_WORKERS_LOCK" not in os.environ
    # a worker of a dead run still holding the worker lock, shared (another open file
    # description conflicts exactly like another process)
    fd = os.open(tmp_path / ".emovox-workers.lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_SH)
    try:
        with pytest.raises(EmovoxError, match=r"worker processes of an earlier run still hold"):
            run_lock(tmp_path, wait_s=0.5)
    finally:
        os.close(fd)
    run_lock(tmp_path, wait_s=0.5).close()  # free again


def test_atomic_write_honours_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.json", "{}")
        assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        atomic_write_text(tmp_path / "b.json", "{}")
        assert (tmp_path / "b.json").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


def test_a_lock_kept_alive_by_a_traceback_does_not_block_the_same_process(tmp_path):
    stale = run_lock(tmp_path)  # e.g. the frame of a run that raised, held by its traceback
    with run_lock(tmp_path):
        assert stale.fd is None


def test_a_dropped_lock_is_released(tmp_path):
    lock = run_lock(tmp_path)
    del lock  # e.g. run_experiment returned: its local lock goes with the frame
    other = subprocess.run([sys.executable, "-c", "import sys; from emovox.io import run_lock; "
                            "run_lock(sys.argv[1], wait_s=0)", str(tmp_path)],
                           env={**os.environ, "PYTHONPATH": SRC}, capture_output=True, text=True)
    assert other.returncode == 0, other.stderr
    assert "EMOVOX_WORKERS_LOCK" not in os.environ
