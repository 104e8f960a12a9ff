"""Index a run's target directory into artifacts.json, snapshot it, and fetch files with checksums.

When a run's index is written its files are snapshotted into the state root's
content-addressed store (``Layout.blobs``: one file per sha256, however many
runs share it), so a later run rewriting a shared target directory (TargetGen)
leaves every earlier run's artifacts fetchable. Fetch reads the stored copy first.

The stored copy shares the file's blocks where the filesystem can clone them
(a reflink: btrfs, XFS, ...), else it is a copy. Not a hard link: a hard link
shares the inode, and the next writer that appends or truncates in place
(TargetGen's events.jsonl and task logs, a shell's ``>``) would rewrite the
stored copy too -- the very breakage the store exists to prevent.

Names are relative, '/'-separated paths; a name that would leave the target
directory (``..``, absolute, a symlink pointing out) is refused, both when
indexing and when fetching.
"""

from __future__ import annotations

import functools
import os
import stat
from pathlib import Path
from typing import Literal

from merlin.atomic import copy_file
from merlin.errors import ChecksumMismatch, NoSpace, NotFound

MAX_FILES = 10_000
MAX_HASH_BYTES = 2 << 30  # 2 GiB hashed per index; files beyond it are listed without sha256

# Lock, holder and temp files (merlin's and other tools'): never artifacts.
_SKIP_SUFFIXES = (".lock", ".holder", ".tmp", ".temp", ".swp", ".part", "~")
# TargetGen's lock and its ".holder" and ".submit" twins (targetgen.layout.TARGET_LOCK_NAME) are
# skipped by these rules too (tests/test_ledger_artifacts.py), with no import of TargetGen: `jobs status`
# indexes a run that ended between two looks, and must not load TargetGen (and its dataclasses).
_SKIP_PREFIXES = (".~lock.",)

ArtifactKind = Literal["json", "yaml", "log", "markdown", "text", "python", "shell", "archive", "other"]

_KINDS: dict[str, ArtifactKind] = {
    ".json": "json",
    ".jsonl": "json",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".log": "log",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".py": "python",
    ".sh": "shell",
    ".tar": "archive",
    ".gz": "archive",
    ".tgz": "archive",
    ".zip": "archive",
}


def kind_of(name: str) -> ArtifactKind:
    return _KINDS.get(os.path.splitext(name)[1].lower(), "other")


def sha256_file(path: Path) -> str:
    import hashlib  # here: a supervisor whose run wrote no file never needs it

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def skipped_name(name: str) -> bool:
    """Lock/holder/temp files that are bookkeeping, not results."""
    return name.endswith(_SKIP_SUFFIXES) or name.startswith(_SKIP_PREFIXES) or ".lock." in name or ".tmp." in name


def index_dir(
    run_id: str,
    target_dir: Path,
    attempt: int | None,
    *,
    max_files: int = MAX_FILES,
    max_hash_bytes: int = MAX_HASH_BYTES,
    should_stop=None,
):
    """Build an :class:`ArtifactIndex` of the regular files under ``target_dir``.

    Always finishes: only regular files are read (``lstat``; FIFOs, devices,
    sockets and symlinks are skipped, so nothing can block or lead outside),
    the walk stays on the target directory's filesystem, and at most
    ``max_files`` files / ``max_hash_bytes`` bytes are hashed. Past a limit the
    index says ``truncated`` with the reason; files past the byte cap are
    listed without a sha256. ``should_stop()`` returning true ends the walk
    early (also recorded as truncated).
    """
    from merlin.ledger.models import ArtifactEntry, ArtifactIndex

    target_dir = Path(target_dir)
    files: list[ArtifactEntry] = []
    reasons: list[str] = []
    total = 0
    hashed = 0
    try:
        root_st = os.lstat(target_dir)
    except OSError:
        root_st = None
    if root_st is not None and stat.S_ISDIR(root_st.st_mode):
        dev = root_st.st_dev
        stop = False
        for dirpath, dirnames, filenames in os.walk(target_dir, followlinks=False):
            keep = []
            for d in sorted(dirnames):
                try:
                    dst = os.lstat(os.path.join(dirpath, d))
                except OSError:
                    continue
                if stat.S_ISDIR(dst.st_mode) and dst.st_dev == dev:
                    keep.append(d)
            dirnames[:] = keep  # no symlinked dirs, no other filesystems (/proc, mounts)
            for fn in sorted(filenames):
                if should_stop is not None and should_stop():
                    reasons.append("indexing was interrupted (the supervisor was asked to stop)")
                    stop = True
                    break
                if skipped_name(fn):
                    continue
                full = os.path.join(dirpath, fn)
                try:
                    st = os.lstat(full)
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode) or st.st_dev != dev:
                    continue  # symlink, FIFO, device, socket: never opened
                if len(files) >= max_files:
                    reasons.append(f"more than {max_files} files; the rest are not listed")
                    stop = True
                    break
                rel = Path(full).relative_to(target_dir).as_posix()
                digest = None
                if hashed + st.st_size <= max_hash_bytes:
                    try:
                        digest = _sha256_regular(full)
                    except OSError:
                        continue  # vanished or unreadable: not an artifact we can vouch for
                    hashed += st.st_size
                elif not any(r.startswith("more than") and "bytes" in r for r in reasons):
                    reasons.append(f"more than {max_hash_bytes} bytes to hash; later files are listed without sha256")
                total += st.st_size
                files.append(ArtifactEntry(name=rel, size=st.st_size, sha256=digest, kind=kind_of(rel)))
            if stop:
                break
    return ArtifactIndex(
        run_id=run_id,
        attempt=attempt,
        target_dir=str(target_dir),
        files=files,
        total_size=total,
        truncated=bool(reasons),
        truncated_reason="; ".join(reasons) or None,
    )


def _sha256_regular(path: str) -> str:
    """sha256 of a file that must still be a regular file when opened (O_NOFOLLOW, O_NONBLOCK)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise OSError(f"{path} is not a regular file")
        import hashlib

        h = hashlib.sha256()
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
        return h.hexdigest()


def snapshot(layout, index) -> int:
    """Store every hashed file of ``index`` under ``layout.blob(sha256)`` unless already there; how many were added.

    The candidate is verified after linking or copying: a file rewritten since it
    was hashed is not stored under the old digest (fetch then reads the target
    directory and says it changed)."""
    added = 0
    base = Path(index.target_dir)
    for entry in index.files:
        if entry.sha256 is None:
            continue
        blob = layout.blob(entry.sha256)
        if blob.is_file():
            continue
        src = base / entry.name
        try:
            # verified after linking or copying: a file rewritten since it was hashed is not stored under the old digest
            if copy_file(src, blob, check=functools.partial(_holds, entry.sha256), clone=True, nofollow=True, private=True):
                added += 1
        except (OSError, NoSpace):
            continue  # vanished, unreadable, disk full: fetch falls back to the target directory
    return added


def _holds(digest: str, path: Path) -> bool:
    return _sha256_regular(str(path)) == digest


def fetch(index, name: str, to: Path, layout=None) -> Path:
    """Copy artifact ``name`` into directory ``to`` and verify its sha256 against the index.

    The stored copy (``layout.blob``) is read when there is one, else the file in the target directory."""
    from merlin.ledger.paths import inside

    base = Path(index.target_dir)
    src = inside(base, name)  # refuses escapes before anything else
    entry = next((f for f in index.files if f.name == name), None)
    if entry is None:
        raise NotFound(f"run {index.run_id} has no artifact {name!r}", next_steps=[{"action": "artifacts", "args": {"run_id": index.run_id}}])
    stored = layout.blob(entry.sha256) if layout is not None and entry.sha256 else None
    if stored is not None and stored.is_file():
        src = stored
    elif not src.is_file():
        raise NotFound(f"artifact {name!r} of run {index.run_id} is indexed but {src} is gone")
    to = Path(to)
    dest = inside(to, name)
    sha256 = entry.sha256

    def verified(tmp: Path) -> bool:
        if sha256 is None:  # indexed past the hashing cap: the size is all we can check
            if tmp.stat().st_size != entry.size:
                raise ChecksumMismatch(f"artifact {name!r} of run {index.run_id} changed since it was indexed (size differs; it was too large to keep a copy of); nothing was copied")
            return True
        digest = sha256_file(tmp)
        if digest != sha256:
            where = f"its stored copy {src} is damaged" if src == stored else f"{src} changed since it was indexed and no stored copy is left"
            raise ChecksumMismatch(
                f"artifact {name!r} of run {index.run_id}: checksum mismatch, {where} "
                f"(sha256 {digest[:12]}... != {sha256[:12]}...); nothing was copied"
            )
        return True

    copy_file(src, dest, check=verified)
    return dest
