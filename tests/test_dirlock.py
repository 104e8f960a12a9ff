"""merlin.dirlock.MkdirLock: the one atomic-mkdir lock, the lease book's (shared filesystems) and
the env cache's (one per env id). A holder SIGKILLed with the lock held: two processes wanting
it at once break it once, and then take turns, never both inside."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from merlin.dirlock import MkdirLock
from merlin.envs.cache import EnvCache
from merlin.leases import locks

EID = "ab" * 32

# argv: kind ("book" | "env"), where, then what to do: "hold" (take it, say so, sleep) or
# "turn GO LOG" (wait for GO to exist, take it, log in/out around a short stay, release)
WORKER = """
import os, sys, time
from pathlib import Path
kind, where, what = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
if kind == "book":
    from merlin.leases.locks import MkdirLock
    lock = MkdirLock(where / ".book.lockdir", stale_after=60.0, busy="the lease book is busy")
else:
    from merlin.envs.cache import EnvCache
    lock = EnvCache(where).lock(sys.argv[-1])
if what == "hold":
    lock.acquire(10)
    print("held", flush=True)
    time.sleep(600)
go, log = Path(sys.argv[4]), sys.argv[5]
while not go.exists():
    time.sleep(0.001)
lock.acquire(60)
with open(log, "a") as f:
    f.write(f"in {os.getpid()} {time.time()!r}\\n")
time.sleep(0.3)
with open(log, "a") as f:
    f.write(f"out {os.getpid()} {time.time()!r}\\n")
lock.release()
"""


def test_the_lease_book_and_the_env_cache_use_one_lock_class(tmp_path: Path) -> None:
    assert locks.MkdirLock is MkdirLock
    lock = EnvCache(tmp_path).lock(EID)
    assert type(lock) is MkdirLock
    assert lock.try_acquire() and EnvCache(tmp_path).lock_owner(EID)["pid"] == os.getpid()
    assert not EnvCache(tmp_path).lock(EID).try_acquire(), "a live owner keeps it"
    lock.release()
    assert EnvCache(tmp_path).lock_owner(EID) is None


@pytest.mark.parametrize("kind", ["book", "env"])
def test_a_sigkilled_holder_is_broken_once_and_two_waiters_take_turns(tmp_path: Path, kind: str) -> None:
    where = tmp_path / "root"
    where.mkdir()
    argv = [sys.executable, "-c", WORKER, kind, str(where)]
    holder = subprocess.Popen([*argv, "hold", EID], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    lock_dir = where / ".book.lockdir" if kind == "book" else EnvCache(where).lock_dir(EID)
    assert (lock_dir / "owner").is_file()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert lock_dir.is_dir(), "SIGKILL left the lock behind: it is stale, not free"
    go, log = tmp_path / "go", tmp_path / "log"
    waiters = [subprocess.Popen([*argv, "turn", str(go), str(log), EID]) for _ in range(2)]
    time.sleep(0.5)  # both started and polling for GO
    go.touch()
    t0 = time.monotonic()
    assert [w.wait(timeout=120) for w in waiters] == [0, 0]
    assert time.monotonic() - t0 < 60, "a dead owner on this host is broken at once, not after stale_after (60 s)"
    events = [line.split() for line in log.read_text().splitlines()]
    assert [e[0] for e in events] == ["in", "out", "in", "out"], f"the two waiters were inside together: {events}"
    assert events[0][1] == events[1][1] and events[2][1] == events[3][1] and events[0][1] != events[2][1]
    assert not lock_dir.exists() and not list(lock_dir.parent.glob(lock_dir.name + ".*")), "no lock, guard or grave left behind"


def test_a_stalled_holder_whose_lock_was_broken_leaves_the_new_owners_lock_on_release(tmp_path: Path) -> None:
    """A holder that stalls past ``stale_after`` loses its lock to another process; when it wakes, its
    release must not delete the new owner's lock (else a third would take it beside the second)."""
    path = tmp_path / "lock"
    stalled = MkdirLock(path, stale_after=0.3, heartbeat=60)  # its heartbeat never comes in time: it looks stale
    assert stalled.try_acquire()
    time.sleep(0.5)
    taker = subprocess.run(
        [sys.executable, "-c", "import sys, json; from merlin.dirlock import MkdirLock; from pathlib import Path\n"
         "lock = MkdirLock(Path(sys.argv[1]), stale_after=0.3, heartbeat=60); lock.acquire(10); print(json.dumps(lock.owner()))", str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert taker.returncode == 0, taker.stderr
    new_owner = json.loads(taker.stdout)
    assert new_owner["pid"] != os.getpid()  # another process took it
    stalled.release()
    assert path.is_dir() and MkdirLock(path).owner() == new_owner, "the new owner's lock stays"
