"""The book lock: flock on local filesystems, an atomic ``mkdir`` lock on shared ones.

flock gives no exclusion between hosts on NFS (``nolock``, ``local_lock=all``),
GPFS or Lustre, which is where an HPC lab keeps its state root. There the
lock is a directory created with ``mkdir`` (atomic on every POSIX filesystem
and over NFS), holding an ``owner`` file (host, pid, pid start time) whose
mtime a heartbeat thread refreshes while the lock is held. A waiter takes
over a lock whose heartbeat is older than ``stale_after`` seconds, or whose
owner is a dead process on this host, by renaming the directory away first
(only one renamer can win), so two waiters never both break it.

``MERLIN_LEASE_LOCK=flock|mkdir|auto`` (default auto) overrides the choice.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from merlin.atomic import dir_mode, file_mode, open_fd
from merlin.errors import BadInput, LockBusy
from merlin.procid import start_time

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


def _owner_dead(owner: dict) -> bool:
    """True only when the owner is provably gone: a process on this host that no longer runs."""
    if owner.get("host") != socket.gethostname():
        return False
    pid = owner.get("pid")
    if not isinstance(pid, int):
        return False
    from merlin.procid import alive

    return not alive(pid, owner.get("pid_start"))


class MkdirLock:
    """An atomic directory lock with owner and heartbeat, safe on NFS, Lustre and GPFS."""

    def __init__(self, path: Path, *, stale_after: float = 30.0, heartbeat: float | None = None) -> None:
        self.path = Path(path)
        self.stale_after = stale_after
        self.heartbeat = heartbeat if heartbeat is not None else max(stale_after / 4, 0.05)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _owner_file(self) -> Path:
        return self.path / "owner"

    def _try_take(self) -> bool:
        try:
            os.mkdir(self.path, dir_mode())
        except FileExistsError:
            return False
        owner = {"host": socket.gethostname(), "pid": os.getpid(), "pid_start": start_time(os.getpid()), "taken_at": time.time()}
        tmp = self.path / f".owner.{secrets.token_hex(4)}"
        fd = open_fd(tmp, os.O_WRONLY, file_mode())
        try:
            os.write(fd, json.dumps(owner).encode("utf-8"))
        finally:
            os.close(fd)
        os.replace(tmp, self._owner_file())
        return True

    def _stale(self) -> bool:
        try:
            beat = self._owner_file().stat().st_mtime
            owner = json.loads(self._owner_file().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            try:  # the owner file is written right after mkdir: only an old directory without one is stale
                beat = self.path.stat().st_mtime
            except OSError:
                return False
            return time.time() - beat > self.stale_after
        return time.time() - beat > self.stale_after or _owner_dead(owner)

    def _break(self) -> None:
        grave = self.path.with_name(f"{self.path.name}.stale.{secrets.token_hex(4)}")
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
                if time.time() - guard.stat().st_mtime > self.stale_after:
                    guard.rmdir()  # a breaker died inside its few microseconds of work
            except OSError:
                pass
            return False
        try:
            if self._stale():
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
            except OSError:
                return

    def acquire(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while not self._try_take():
            if self._stale() and self._break_under_guard():
                continue
            if time.monotonic() >= deadline:
                raise LockBusy(f"{self.path}: the lease book is busy (waited {timeout:g}s); try again")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.01)
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="merlin-lease-lock-heartbeat", daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        try:
            self._owner_file().unlink()
        except OSError:
            pass
        try:
            self.path.rmdir()
        except OSError:
            pass


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
    lock = MkdirLock(lock_dir, stale_after=stale_after)
    lock.acquire(timeout)
    try:
        yield chosen
    finally:
        lock.release()
