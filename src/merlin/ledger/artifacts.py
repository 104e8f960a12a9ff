"""Index a run's target directory into artifacts.json, and fetch files with checksums.

Names are relative, '/'-separated paths; a name that would leave the target
directory (``..``, absolute, a symlink pointing out) is refused, both when
indexing and when fetching.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from merlin.errors import BadInput, NotFound

MAX_FILES = 10_000

_KINDS = {
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


def kind_of(name: str) -> str:
    return _KINDS.get(os.path.splitext(name)[1].lower(), "other")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def index_dir(run_id: str, target_dir: Path, attempt: int | None):
    """Build an :class:`ArtifactIndex` of the regular files under ``target_dir``.

    Symlinks are not followed (a link could point anywhere on the machine) and
    merlin's own lock/temp files are skipped.
    """
    from merlin.ledger.models import ArtifactEntry, ArtifactIndex

    target_dir = Path(target_dir)
    files: list[ArtifactEntry] = []
    truncated = False
    total = 0
    if target_dir.is_dir():
        for dirpath, dirnames, filenames in os.walk(target_dir, followlinks=False):
            dirnames.sort()
            for fn in sorted(filenames):
                full = Path(dirpath) / fn
                if full.is_symlink() or not full.is_file() or fn.endswith((".lock", ".tmp")):
                    continue
                if len(files) >= MAX_FILES:
                    truncated = True
                    break
                rel = full.relative_to(target_dir).as_posix()
                size = full.stat().st_size
                total += size
                files.append(ArtifactEntry(name=rel, size=size, sha256=sha256_file(full), kind=kind_of(rel)))
            if truncated:
                break
    return ArtifactIndex(
        run_id=run_id, attempt=attempt, target_dir=str(target_dir), files=files, total_size=total, truncated=truncated
    )


def fetch(index, name: str, to: Path) -> Path:
    """Copy artifact ``name`` into directory ``to`` and verify its sha256 against the index."""
    from merlin.ledger.paths import inside

    base = Path(index.target_dir)
    src = inside(base, name)  # refuses escapes before anything else
    entry = next((f for f in index.files if f.name == name), None)
    if entry is None:
        raise NotFound(f"run {index.run_id} has no artifact {name!r} (see `merlin ray artifacts list {index.run_id}`)")
    if not src.is_file():
        raise NotFound(f"artifact {name!r} of run {index.run_id} is indexed but {src} is gone")
    to = Path(to)
    dest = inside(to, name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.fetch.tmp")
    shutil.copyfile(src, tmp)
    digest = sha256_file(tmp)
    if digest != entry.sha256:
        tmp.unlink(missing_ok=True)
        raise BadInput(
            f"artifact {name!r} of run {index.run_id} changed since it was indexed "
            f"(sha256 {digest[:12]}... != {entry.sha256[:12]}...); nothing was copied"
        )
    os.replace(tmp, dest)
    return dest
