"""Atomic file writes and per-file locks: the only way merlin writes state.

A write goes to a temporary file in the same directory, is fsynced, then
renamed over the target, and the directory is fsynced: readers see either the
old bytes or the new bytes, never half a file, even after SIGKILL or a power
cut. ``write_if_changed`` keeps reads cheap and mtimes honest by skipping the
rename when the bytes are the same.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

STATE_UMASK_ENV = "MERLIN_STATE_UMASK"
DEFAULT_STATE_UMASK = 0o077  # state is private: records hold commands, env names, logs


def state_umask() -> int:
    """The mask for files and directories merlin creates: ``$MERLIN_STATE_UMASK`` (octal, e.g.
    ``007`` for a lab's shared group), else 077. The process umask is left alone, so the
    user's own commands create files as they always would."""
    from merlin.errors import BadInput

    raw = os.environ.get(STATE_UMASK_ENV, "").strip()
    if not raw:
        return DEFAULT_STATE_UMASK
    try:
        mask = int(raw, 8)
    except ValueError:
        mask = -1
    if not 0 <= mask <= 0o777:
        raise BadInput(f"${STATE_UMASK_ENV}={raw!r}: expected an octal umask such as 077 (private) or 007 (shared group)")
    return mask


def file_mode() -> int:
    return 0o666 & ~state_umask()


def _process_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def mode_for(directory: Path) -> int:
    """The mode of a new file in ``directory``.

    State directories are created closed to others (:func:`make_dir`), and a file
    there is closed the same way: ``0666 & ~$MERLIN_STATE_UMASK`` (0600 by default).
    In a directory others may enter (a user's ``--out-dir``) a file follows the
    process umask, like any tool's output.
    """
    return file_mode() if _closed_to_others(directory) else 0o666 & ~_process_umask()


def _closed_to_others(directory: Path) -> bool:
    try:
        return not os.stat(directory).st_mode & 0o007
    except OSError:
        return False


def dir_mode() -> int:
    return 0o777 & ~state_umask()


def open_fd(path: str | os.PathLike[str], flags: int, mode: int) -> int:
    """``os.open(path, flags | O_CREAT, mode)`` where ``mode`` holds from the first byte: a file this
    call creates gets exactly ``mode`` (``fchmod``: ``O_CREAT``'s mode is cut by the process umask,
    and the state's mask is ``$MERLIN_STATE_UMASK``, not it); a file already there keeps its own.
    One syscall when the file exists (the lease book's hot path)."""
    try:
        return os.open(path, flags & ~(os.O_CREAT | os.O_EXCL))
    except FileNotFoundError:
        pass
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:  # another process created it meanwhile
        return os.open(path, flags & ~(os.O_CREAT | os.O_EXCL))
    try:
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_state_file(path: Path, mode: str = "ab", **kwargs: Any) -> Any:
    """Open a file under a state root for appending (``"ab"``, ``"a"``) or as a new file (``"xb"``,
    ``"x"``): missing directories are made private (:func:`make_dir`), the file is created with
    :func:`file_mode` (0600 by default). The one way merlin opens a log, including the ones a child
    process it starts writes (``ray start``, a run's supervisor and its command, the lease waiter):
    the descriptor handed to the child already has the state's mode."""
    path = Path(path)
    make_dir(path.parent, private=True)
    if mode.startswith("x"):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), file_mode())
        os.fchmod(fd, file_mode())
    elif mode.startswith("a"):
        fd = open_fd(path, os.O_WRONLY | os.O_APPEND | getattr(os, "O_CLOEXEC", 0), file_mode())
    else:
        raise ValueError(f"open_state_file: mode {mode!r} (expected 'a', 'ab', 'x' or 'xb')")
    return os.fdopen(fd, mode, **kwargs)


def make_dir(directory: Path, *, exist_ok: bool = True, private: bool = False) -> None:
    """mkdir -p. ``private=True`` (the ledger's directories): every directory created
    gets :func:`dir_mode` (0700 by default) whatever the process umask; otherwise
    (a user's --out-dir) the process umask applies. Existing directories keep their mode."""
    directory = Path(directory)
    missing = []
    p = directory
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    if not missing:
        if not exist_ok:
            raise FileExistsError(str(directory))
        return
    for d in reversed(missing):
        try:
            os.mkdir(d, dir_mode() if private else 0o777)
        except FileExistsError:
            if d == directory and not exist_ok:
                raise
            continue
        except OSError as exc:
            no_space_check(exc, d)
            raise
        if private:
            os.chmod(d, dir_mode())


def ensure_dir(directory: Path, private: bool = False) -> None:
    """mkdir -p, with a one-line BadInput naming the path when it cannot be (a file, no permission)."""
    from merlin.errors import BadInput

    try:
        make_dir(Path(directory), private=private)
        if not Path(directory).is_dir():
            raise FileExistsError(str(directory))
    except (FileExistsError, NotADirectoryError):
        raise BadInput(f"{directory}: cannot create this directory: a file is in the way (expected a directory path)") from None
    except OSError as exc:
        raise BadInput(f"{directory}: cannot create this directory: {exc.strerror}") from None


def atomic_write_bytes(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` atomically; ``mode`` (e.g. 0o600 for a secret) applies from the first byte."""
    from merlin.errors import BadInput

    path = Path(path)
    ensure_dir(path.parent)
    try:
        fd, tmp = _temp_beside(path)
    except OSError as exc:
        no_space_check(exc, path)
        raise BadInput(f"{path.parent}: cannot write here: {exc.strerror}") from None
    with _discarded_on_error(tmp, path):
        os.fchmod(fd, mode_for(path.parent) if mode is None else mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    _fsync_dir(path.parent)


def _temp_beside(path: Path) -> tuple[int, str]:
    """A new file ``.<name>.<random>.tmp`` beside ``path``, open for writing, readable by its owner
    alone until chmod'ed (as ``tempfile.mkstemp`` makes one, without importing tempfile's
    random, shutil and weakref on every submit): (fd, its path)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = os.path.join(path.parent, f".{path.name}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(tmp, flags, 0o600), tmp
        except FileExistsError:
            continue  # another writer's temporary file by that name: draw again
    raise FileExistsError(f"{path.parent}: no free temporary name")


@contextmanager
def _discarded_on_error(tmp: str, path: Path) -> Iterator[None]:
    """The last steps of a temporary file that becomes ``path``: on any error it is removed (never
    left beside the record) and a full disk is reported as such (:func:`no_space_check`)."""
    try:
        yield
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        no_space_check(exc, path)
        raise


def copy_file(
    src: Path,
    dest: Path,
    *,
    check: Callable[[Path], bool] | None = None,
    clone: bool = False,
    nofollow: bool = False,
    private: bool = False,
) -> bool:
    """Copy ``src`` to ``dest`` atomically: into a temporary file beside ``dest``, fsynced, then
    ``check(temporary)``, then renamed over ``dest``. Returns False, with ``dest`` untouched and
    the temporary removed, when ``check`` refuses the copy (it may also raise).

    ``clone``: share ``src``'s blocks where the filesystem can (a reflink: btrfs, XFS, ...),
    else copy. ``nofollow``: ``src`` must be a regular file, not a symlink, FIFO or device
    (OSError otherwise). ``private``: directories created for ``dest`` are the ledger's
    (:func:`make_dir`)."""
    src, dest = Path(src), Path(dest)
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | ((os.O_NOFOLLOW | os.O_NONBLOCK) if nofollow else 0)
    fin_fd = os.open(src, flags)
    with os.fdopen(fin_fd, "rb") as fin:
        if nofollow and not stat.S_ISREG(os.fstat(fin.fileno()).st_mode):
            raise OSError(f"{src} is not a regular file")
        make_dir(dest.parent, private=private)
        try:
            fd, tmp = _temp_beside(dest)
        except OSError as exc:
            no_space_check(exc, dest)
            raise
        with _discarded_on_error(tmp, dest):
            os.fchmod(fd, mode_for(dest.parent))
            with os.fdopen(fd, "wb") as fout:
                if not (clone and _reflink(fin.fileno(), fout.fileno())):
                    import shutil

                    shutil.copyfileobj(fin, fout, 1 << 20)
                fout.flush()
                os.fsync(fout.fileno())
            if check is not None and not check(Path(tmp)):
                os.unlink(tmp)
                return False
            os.replace(tmp, dest)
    _fsync_dir(dest.parent)
    return True


_FICLONE = 0x40049409  # linux/fs.h: share the source's blocks (copy-on-write)


def _reflink(src_fd: int, dest_fd: int) -> bool:
    try:
        import fcntl

        fcntl.ioctl(dest_fd, _FICLONE, src_fd)
        return True
    except (ImportError, OSError):
        return False


def replace_file(path: str, data: bytes, *, mode: int, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` as a whole new file, for writers of many small records (the
    lease book): a string path in an existing directory, the mode given, fsync optional.

    At every instant ``path`` names a whole file, the old one or the new one: readers never
    find it missing, never half-written. The new file is swapped in with ``renameat2``'s
    RENAME_EXCHANGE where the kernel has it, and the old one, now under the temporary name,
    is removed; elsewhere (and for a new file) it is renamed over the old one. The exchange
    spares a writer that does not fsync the flush ext4 forces on a rename *over* a file
    (``auto_da_alloc``, ~1 ms a write); never unlink first: that leaves a gap a lock-free
    reader falls into."""
    head, _, name = path.rpartition("/")
    tmp = f"{head}/.{name}.{os.urandom(4).hex()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except OSError as exc:
        no_space_check(exc, Path(path))
        raise
    with _discarded_on_error(tmp, Path(path)):
        try:
            os.fchmod(fd, mode)  # the state umask, not the process umask (a lab's shared group)
            if os.write(fd, data) != len(data):
                raise OSError(28, "No space left on device", path)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        if _exchange(tmp, path):
            os.unlink(tmp)  # the old bytes
        else:
            os.replace(tmp, path)
    if fsync:
        _fsync_dir(Path(head or "."))


def append_bytes(path: str, data: bytes, *, mode: int, fsync: bool = True) -> None:
    """Append ``data`` (whole lines) with one write(2): O_APPEND makes concurrent appenders
    interleave whole writes, never bytes. The directory must exist (FileNotFoundError)."""
    fd = open_fd(path, os.O_WRONLY | os.O_APPEND, mode)
    try:
        written = os.write(fd, data)
        if written != len(data):
            raise OSError(28, "No space left on device", path)
        if fsync:
            os.fsync(fd)
    except OSError as exc:
        no_space_check(exc, Path(path))
        raise
    finally:
        os.close(fd)


_RENAME_EXCHANGE = 2  # linux/fs.h
_renameat2: Any = None  # the libc function, False where there is none


def _exchange(src: str, dst: str) -> bool:
    """Swap ``src`` and ``dst`` atomically (``renameat2(RENAME_EXCHANGE)``); False when ``dst``
    does not exist yet or this system or filesystem cannot exchange (then rename instead)."""
    global _renameat2
    if _renameat2 is None:
        try:
            import ctypes

            func = ctypes.CDLL(None, use_errno=True).renameat2
            func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            func.restype = ctypes.c_int
            _renameat2 = func
        except (OSError, AttributeError, ImportError):
            _renameat2 = False
    if _renameat2 is False:
        return False
    at_cwd = -100  # AT_FDCWD
    if _renameat2(at_cwd, os.fsencode(src), at_cwd, os.fsencode(dst), _RENAME_EXCHANGE) == 0:
        return True
    import ctypes
    import errno

    err = ctypes.get_errno()
    if err in (errno.ENOENT, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV, errno.EPERM):
        return False  # no old file yet, or not on this filesystem: a plain rename does it
    raise OSError(err, os.strerror(err), dst)


def no_space_check(exc: BaseException, path: Path) -> None:
    """Re-raise a full disk or quota (ENOSPC, EDQUOT) as :class:`merlin.errors.NoSpace` naming ``path``."""
    from merlin.errors import NoSpace, is_no_space

    if is_no_space(exc):
        raise NoSpace(path, getattr(exc, "errno", None)) from None


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def dump_json(data: Any) -> str:
    """Canonical JSON: sorted keys, two-space indent, trailing newline (byte-stable).

    NaN and Infinity are refused (``BadInput``): they are not JSON, and other readers
    (``JSON.parse``, jq) fail on the whole file.
    """
    from merlin.errors import BadInput

    try:
        return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"
    except ValueError as exc:
        if "JSON compliant" not in str(exc):
            raise
        raise BadInput(f"refusing to write a non-finite number (NaN or Infinity is not JSON): {_non_finite_path(data)}") from None


def _non_finite_path(data: Any, path: str = "$") -> str:
    """Where the first NaN/Infinity is (``$.resources.CPU``), for the error message."""
    import math

    if isinstance(data, float) and not math.isfinite(data):
        return f"{path} = {data}"
    if isinstance(data, dict):
        for k, v in data.items():
            found = _non_finite_path(v, f"{path}.{k}")
            if found:
                return found
    if isinstance(data, (list, tuple)):
        for i, v in enumerate(data):
            found = _non_finite_path(v, f"{path}[{i}]")
            if found:
                return found
    return ""


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, dump_json(data))


def write_if_changed(path: Path, data: bytes) -> bool:
    """Atomically write ``data`` unless the file already holds exactly it. Returns True if written."""
    path = Path(path)
    try:
        if path.read_bytes() == data:
            return False
    except (FileNotFoundError, NotADirectoryError):
        pass  # the write below creates it, or says what is in the way
    atomic_write_bytes(path, data)
    return True


def append_line(path: Path, line: str) -> None:
    """Append one line (e.g. a JSONL event) with a single write(2) and fsync.

    O_APPEND makes concurrent appenders interleave whole lines, never bytes.
    """
    path = Path(path)
    if not path.parent.is_dir():
        ensure_dir(path.parent, private=_closed_to_others(path.parent.parent))  # a ledger subdirectory stays private
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    try:
        fd = open_fd(path, os.O_WRONLY | os.O_APPEND, mode_for(path.parent))
    except OSError as exc:
        no_space_check(exc, path)
        raise
    try:
        written = os.write(fd, data)
        if written != len(data):  # a short write on a nearly full disk: undo it if it is still the last thing in the file
            end = os.lseek(fd, 0, os.SEEK_CUR)
            if os.fstat(fd).st_size == end:
                os.ftruncate(fd, end - written)
            raise OSError(28, "No space left on device", str(path))
        os.fsync(fd)
    except OSError as exc:
        no_space_check(exc, path)
        raise
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def holder_path(path: Path) -> Path:
    """``<lock>.holder``: who holds the lock at ``path`` (pid and command), written by :func:`file_lock`."""
    path = Path(path)
    return path.with_name(path.name + ".holder")


def read_holder(path: Path) -> str | None:
    """The holder text of the lock at ``path``, or None when there is none or it is stale: a
    holder file left by a process that has died (SIGKILL, power cut) names nobody."""
    import re

    try:
        text = holder_path(path).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    found = re.match(r"pid (\d+)\b", text)
    if found:
        import psutil

        if not psutil.pid_exists(int(found.group(1))):
            return None
    return text or None


_LOCK_POLL = 0.05  # the longest pause between tries while another process holds a lock (seconds)


def _flock(path: Path, timeout: float, mode: int) -> int | None:
    """An open descriptor of ``path`` holding an exclusive flock(2), or None after ``timeout``
    seconds of trying (a negative timeout waits for ever, 0 tries once). The tries are 1 ms apart at
    first, then twice as far each time up to 50 ms: most locks are held for a few milliseconds (one
    record's write), and a waiter that slept 50 ms after the first try added that to every contended write.

    The lock file is created with ``mode`` (:func:`open_fd`) and never removed: removing it would let a
    waiter lock a file that is no longer the lock. A descriptor that locked a file
    unlinked meanwhile (no links left) is dropped and the lock tried again.
    """
    import fcntl
    import time

    from merlin.clock import pauses

    start = time.monotonic()
    pause = pauses(0.001, _LOCK_POLL, 2)
    while True:
        fd = open_fd(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0), mode)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
        except BaseException:
            os.close(fd)
            raise
        else:
            if os.fstat(fd).st_nlink:
                return fd
            os.close(fd)
            continue
        if 0 <= timeout <= time.monotonic() - start:
            return None
        time.sleep(next(pause))


def lock_is_free(path: Path) -> bool:
    """True when nobody holds the lock at ``path`` right now (a missing lock file is free). Never waits."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing the descriptor releases a lock it took
    return True


@contextmanager
def file_lock(path: Path, *, timeout: float = 10.0, holder: str | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (a ``.lock`` file beside the record): flock(2).

    Waits up to ``timeout`` seconds, then raises ``LockBusy`` naming the holder
    written into ``<path>.holder`` by whoever has the lock (pid and command). The
    holder file is removed on release; one left by a dead process is ignored.
    Not re-entrant: a second ``file_lock`` on the same path in the same process waits.
    """
    from merlin.errors import LockBusy

    path = Path(path)
    make_dir(path.parent)
    fd = _flock(path, timeout, mode_for(path.parent))
    if fd is None:
        who = read_holder(path) or "unknown process"
        raise LockBusy(
            f"{path.parent}: busy, locked by {who}; waited {timeout:g}s. "
            "Wait for it to finish, or stop that process and try again."
        ) from None
    holder_file = holder_path(path)
    try:
        try:
            hfd = os.open(holder_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode_for(path.parent))
            os.fchmod(hfd, mode_for(path.parent))
            with os.fdopen(hfd, "w", encoding="utf-8") as handle:
                handle.write(holder or f"pid {os.getpid()}")
        except OSError:
            pass
        yield
    finally:
        try:  # still under the lock: nobody else can have written it
            holder_file.unlink()
        except OSError:
            pass
        os.close(fd)  # releases the flock
