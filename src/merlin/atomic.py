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
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give: mkstemp's 0600 would make shared state private


def ensure_dir(directory: Path) -> None:
    """mkdir -p, with a one-line BadInput naming the path when it cannot be (a file, no permission)."""
    from merlin.errors import BadInput

    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
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
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise BadInput(f"{path.parent}: cannot write here: {exc.strerror}") from None
    try:
        os.fchmod(fd, _FILE_MODE if mode is None else mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def dump_json(data: Any) -> str:
    """Canonical JSON: sorted keys, two-space indent, trailing newline (byte-stable)."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


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
    ensure_dir(path.parent)
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
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


@contextmanager
def file_lock(path: Path, *, timeout: float = 10.0, holder: str | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (a ``.lock`` file beside the record).

    Waits up to ``timeout`` seconds, then raises ``LockBusy`` naming the holder
    written into ``<path>.holder`` by whoever has the lock (pid and command).
    """
    from filelock import FileLock, Timeout

    from merlin.errors import LockBusy

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    holder_file = path.with_name(path.name + ".holder")
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        try:
            who = holder_file.read_text(encoding="utf-8").strip()
        except OSError:
            who = "unknown process"
        raise LockBusy(
            f"{path.parent}: busy, locked by {who}; waited {timeout:g}s. "
            "Wait for it to finish, or stop that process and try again."
        ) from None
    try:
        try:
            holder_file.write_text(holder or f"pid {os.getpid()}", encoding="utf-8")
        except OSError:
            pass
        yield
    finally:
        lock.release()
