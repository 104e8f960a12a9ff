"""The book lock: flock on local filesystems, an atomic ``mkdir`` lock on shared ones.

flock gives no exclusion between hosts on NFS (``nolock``, ``local_lock=all``),
GPFS or Lustre, which is where an HPC lab keeps its state root. There the
lock is :class:`merlin.dirlock.MkdirLock`, the one atomic-``mkdir`` lock (the
env cache's too): a directory holding an ``owner`` file (host, pid, pid start
time) whose mtime a heartbeat thread refreshes while the lock is held; a waiter
takes over a lock whose heartbeat is older than ``stale_after`` seconds, or whose
owner is a dead process on this host, under a guard, so two waiters never both
break it.

``MERLIN_LEASE_LOCK=flock|mkdir|auto`` (default auto) overrides the choice.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from merlin.atomic import file_mode, open_fd
from merlin.dirlock import MkdirLock  # re-exported: the book lock on shared filesystems
from merlin.errors import BadInput, LockBusy

LOCK_ENV = "MERLIN_LEASE_LOCK"
#: filesystem types where flock cannot be trusted across hosts
SHARED_FS = frozenset(
    {"nfs", "nfs4", "lustre", "gpfs", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "fuse.glusterfs", "beegfs", "fuse.sshfs", "9p", "panfs", "fuse.cephfs"}
)


def filesystem_type(path: Path, mounts: str | None = None) -> str:
    """The type of the filesystem holding ``path``, from /proc/mounts (longest matching mount point)."""
    target = str(Path(path).resolve())
    if mounts is None:
        try:
            with open("/proc/mounts", encoding="utf-8") as handle:
                mounts = handle.read()
        except OSError:
            return "unknown"
    best, kind = "", "unknown"
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        mount = parts[1].replace("\\040", " ")
        if (target == mount or target.startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best):
            best, kind = mount, parts[2]
    return kind


def choose_lock_kind(directory: Path, kind: str | None = None, mounts: str | None = None) -> str:
    """``flock`` on a local filesystem, ``mkdir`` on a shared one (or as MERLIN_LEASE_LOCK says)."""
    kind = kind or os.environ.get(LOCK_ENV) or "auto"
    if kind not in ("auto", "flock", "mkdir"):
        raise BadInput(f"{LOCK_ENV}={kind!r}: expected flock, mkdir or auto")
    if kind == "auto":
        return "mkdir" if filesystem_type(directory, mounts) in SHARED_FS else "flock"
    return kind


def close_quietly(fd: int) -> None:
    """Close a descriptor from a finalizer (it may be gone already, e.g. in a forked child)."""
    try:
        os.close(fd)
    except OSError:
        pass


class _TimerFired(Exception):
    """Raised by the interval timer that bounds a blocking flock."""


class Flock:
    """flock on one lock file, its descriptor kept open between passes (one open per book, not per pass)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self._pid = os.getpid()

    def _descriptor(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # a forked child opens its own
            self._fd = open_fd(self.path, os.O_RDWR, file_mode())
            self._pid = os.getpid()
            import weakref

            self._closer = weakref.finalize(self, close_quietly, self._fd)  # a dropped book must not leak it
        return self._fd

    def acquire(self, timeout: float) -> None:
        import fcntl

        fd = self._descriptor()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        if self._block(fd, timeout):
            return
        start = time.monotonic()
        delay = 0.0002
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                waited = time.monotonic() - start
                if waited >= timeout:
                    raise self._busy(timeout) from None
                time.sleep(delay)  # passes take about a millisecond: poll finely at first
                delay = min(delay * 1.5, 0.001 if waited < 0.2 else 0.01)

    def _busy(self, timeout: float) -> LockBusy:
        return LockBusy(f"{self.path}: the lease book is busy (waited {timeout:g}s); try again")

    def _block(self, fd: int, timeout: float) -> bool:
        """Sleep in flock(2) until the kernel hands the lock over, bounded by an interval timer.

        Polling a busy lock costs every contender a wake-up per poll (16 processes spent
        about a third of their CPU there). Only where the timer's SIGALRM must reach this
        very call: the main thread of a single-threaded process with no SIGALRM handler
        or timer of its own. Elsewhere returns False and the caller polls."""
        import fcntl
        import signal

        if threading.current_thread() is not threading.main_thread() or threading.active_count() > 1:
            return False
        if signal.getsignal(signal.SIGALRM) is not signal.SIG_DFL or signal.getitimer(signal.ITIMER_REAL)[0]:
            return False

        def expired(*_args: object) -> None:
            raise _TimerFired

        previous = signal.signal(signal.SIGALRM, expired)
        try:
            signal.setitimer(signal.ITIMER_REAL, max(timeout, 0.001))
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _TimerFired:
            try:  # the timer may fire just after flock returned: a descriptor that holds it re-locks at once
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise self._busy(timeout) from None
        finally:
            signal.signal(signal.SIGALRM, previous)
        return True

    def release(self) -> None:
        import fcntl

        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            self._closer.detach()
            os.close(self._fd)
            self._fd = None


@contextmanager
def flock_lock(path: Path, timeout: float) -> Iterator[None]:
    lock = Flock(path)
    lock.acquire(timeout)
    try:
        yield
    finally:
        lock.release()
        lock.close()


@contextmanager
def book_lock(
    lock_file: Path, lock_dir: Path, *, kind: str | None = None, timeout: float = 30.0, stale_after: float = 30.0, flock: Flock | None = None
) -> Iterator[str]:
    """Hold the lease book's lock: a flock on ``lock_file``, or an atomic mkdir of ``lock_dir`` on a shared
    filesystem (``Layout.book_lock`` and ``Layout.book_lockdir``); yields the kind used ("flock" or "mkdir").

    ``flock``: a :class:`Flock` on ``lock_file`` kept by the caller (saves an open per pass)."""
    chosen = choose_lock_kind(lock_file.parent, kind)
    if chosen == "flock":
        if flock is None:
            with flock_lock(lock_file, timeout):
                yield chosen
            return
        flock.acquire(timeout)
        try:
            yield chosen
        finally:
            flock.release()
        return
    lock = MkdirLock(lock_dir, stale_after=stale_after, busy="the lease book is busy")
    lock.acquire(timeout)
    try:
        yield chosen
    finally:
        lock.release()
