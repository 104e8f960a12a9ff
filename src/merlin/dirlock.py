"""The one atomic-``mkdir`` lock: safe on NFS, Lustre and GPFS, where ``flock`` may be host-local.

Used by the lease book on shared filesystems (``merlin.leases.locks``) and by the env cache,
one lock per env id (``merlin.envs.cache``). The lock is a directory created with ``mkdir``
(atomic on every POSIX filesystem and over NFS) holding an ``owner`` file (host, pid, pid
start time) whose mtime a heartbeat thread refreshes while the lock is held.

A lock is stale when its owner is provably gone (:func:`owner_gone`: a process on this host
that no longer runs with its recorded start time) or its heartbeat is older than
``stale_after`` seconds (the only sign of an owner on another host); a directory without
an owner file is stale once older than :data:`UNOWNED_GRACE` (its taker died between the
``mkdir`` and the owner's write). A waiter breaks a stale lock holding a second, short-lived
``.break`` directory and re-checks staleness inside it, then renames the lock away (one
renamer wins): two waiters that both saw it stale never break a fresh one.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from merlin.atomic import dir_mode, file_mode, open_fd
from merlin.errors import LockBusy

#: seconds a lock directory may have no owner file before it is stale (its taker died in between)
UNOWNED_GRACE = 10.0


def me() -> dict[str, Any]:
    """This process as a lock owner (or an env's user): host, pid and the pid's start time."""
    from merlin.procid import start_time

    return {"host": socket.gethostname(), "pid": os.getpid(), "pid_start": start_time(os.getpid())}


def owner_gone(owner: dict[str, Any] | None) -> bool:
    """True only when ``owner`` is provably gone: a process on this host that no longer runs
    (or runs, but started at another time: its pid was reused). Another host's owner is never
    provably gone: only its heartbeat tells. ``start`` is the older spelling of ``pid_start``."""
    if not owner or owner.get("host") != socket.gethostname():
        return False
    pid = owner.get("pid")
    if not isinstance(pid, int):
        return False
    from merlin.procid import alive

    return not alive(pid, owner.get("pid_start", owner.get("start")))


def read_owner(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class MkdirLock:
    """An atomic directory lock with owner and heartbeat. ``busy``: the message of the
    :class:`LockBusy` that :meth:`acquire` raises when its time runs out."""

    def __init__(self, path: Path, *, stale_after: float = 30.0, heartbeat: float | None = None, busy: str = "the lock is busy") -> None:
        self.path = Path(path)
        self.stale_after = stale_after
        self.heartbeat = heartbeat if heartbeat is not None else max(stale_after / 4, 0.05)
        self.busy = busy
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mine: dict[str, Any] | None = None  # the owner record this object wrote when it took the lock

    def _owner_file(self) -> Path:
        return self.path / "owner"

    def owner(self) -> dict[str, Any] | None:
        """Who holds it (None: free, or just taken and its owner not written yet)."""
        return read_owner(self._owner_file())

    def _try_take(self) -> bool:
        try:
            os.mkdir(self.path, dir_mode())
        except FileExistsError:
            return False
        except FileNotFoundError:
            os.makedirs(self.path.parent, dir_mode(), exist_ok=True)
            return self._try_take()
        owner = self._mine = {**me(), "taken_at": time.time()}
        tmp = self.path / f".owner.{os.urandom(4).hex()}"
        fd = open_fd(tmp, os.O_WRONLY, file_mode())
        try:
            os.write(fd, json.dumps(owner).encode("utf-8"))
        finally:
            os.close(fd)
        os.replace(tmp, self._owner_file())
        return True

    def stale(self) -> bool:
        try:
            beat = self._owner_file().stat().st_mtime
            owner = json.loads(self._owner_file().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            try:  # the owner file is written right after mkdir: only an old directory without one is stale
                beat = self.path.stat().st_mtime
            except OSError:
                return False
            return time.time() - beat > min(self.stale_after, UNOWNED_GRACE)
        return time.time() - beat > self.stale_after or owner_gone(owner if isinstance(owner, dict) else None)

    def _break(self) -> None:
        grave = self.path.with_name(f"{self.path.name}.stale.{os.urandom(4).hex()}")
        try:
            os.rename(self.path, grave)  # only one waiter wins this rename
        except OSError:
            return
        for child in grave.iterdir():
            try:
                child.unlink()
            except OSError:
                pass
        try:
            grave.rmdir()
        except OSError:
            pass

    def _break_under_guard(self) -> bool:
        """Break a stale lock holding a second, short-lived ``.break`` directory, re-checking
        staleness inside it: two waiters that both saw the old lock stale cannot break a fresh one."""
        guard = self.path.with_name(self.path.name + ".break")
        try:
            os.mkdir(guard, dir_mode())
        except FileExistsError:
            try:
                if time.time() - guard.stat().st_mtime > min(self.stale_after, UNOWNED_GRACE):
                    guard.rmdir()  # a breaker died inside its few microseconds of work
            except OSError:
                pass
            return False
        try:
            if self.stale():
                self._break()
                return True
            return False
        finally:
            try:
                guard.rmdir()
            except OSError:
                pass

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat):
            try:
                os.utime(self._owner_file())
            except FileNotFoundError:
                return  # the lock is gone (broken as stale): nothing left to keep alive
            except OSError:
                continue  # a passing NFS error (ESTALE, EIO): the next beat tries again, or the lock goes stale

    def try_acquire(self) -> bool:
        """Take it now if free (or stale: broken first); False if a live owner holds it."""
        taken = self._try_take() or (self.stale() and self._break_under_guard() and self._try_take())
        if taken:
            self._stop.clear()
            self._thread = threading.Thread(target=self._beat, name=f"merlin-lock-heartbeat {self.path.name}", daemon=True)
            self._thread.start()
        return taken

    def acquire(self, timeout: float) -> None:
        from merlin.clock import pauses

        deadline = time.monotonic() + timeout
        delay = pauses(0.0005, 0.01)
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                raise LockBusy(f"{self.path}: {self.busy} (waited {timeout:g}s); try again")
            time.sleep(next(delay))

    def release(self) -> None:
        """Give the lock back, only if it is still this object's: one that stalled past ``stale_after`` may
        have been broken and taken by another process, whose lock must stay."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        mine, self._mine = self._mine, None
        if mine is None or self.owner() != mine:
            return
        try:
            self._owner_file().unlink()
        except OSError:
            pass
        try:
            self.path.rmdir()
        except OSError:
            pass
