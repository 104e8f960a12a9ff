"""The working directory of a run: snapshotted at submit, content-addressed and deduplicated.

Each file goes to the state root's blob store (``Layout.blob(sha256)``, shared with
the artifacts), and a manifest (``snapshots/<id>.json``: path, digest, mode) names
them; the snapshot id is the sha256 of the manifest's files. A run runs in a copy
of its snapshot (:func:`materialize`), so a file edited after submit is not seen.
What Ray leaves out by default is left out here too (:data:`EXCLUDED`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

from merlin.atomic import atomic_write_json, copy_file, ensure_dir
from merlin.errors import BadInput
from merlin.ledger.artifacts import sha256_file

#: directory names never snapshotted
EXCLUDED = frozenset({".git", ".venv", "venv", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"})
#: the default size limit (bytes); $MERLIN_WORKING_DIR_LIMIT changes it (e.g. 2GiB)
DEFAULT_LIMIT = 512 * 1024 * 1024
LIMIT_ENV = "MERLIN_WORKING_DIR_LIMIT"
READY = ".merlin-snapshot"


def limit_from_env() -> int:
    from merlin.units import parse_bytes

    raw = os.environ.get(LIMIT_ENV)
    return parse_bytes(raw, LIMIT_ENV) if raw else DEFAULT_LIMIT


def walk(source: Path) -> list[tuple[str, Path, os.stat_result]]:
    out = []
    for dirpath, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if d not in EXCLUDED)
        for name in sorted(files):
            full = Path(dirpath) / name
            st = full.lstat()
            if stat.S_ISREG(st.st_mode):
                out.append((full.relative_to(source).as_posix(), full, st))
    return out


def snapshot(source: Path, blobs: Any, snapshots: Path, limit: int | None = None) -> str:
    """Store ``source`` (a directory) and return its snapshot id. ``blobs``: digest -> path
    (``Layout.blob``). Over ``limit`` bytes: BadInput naming the limit and the biggest files."""
    from merlin.units import human_bytes

    source = Path(source).expanduser().resolve()
    if not source.is_dir():
        raise BadInput(f"`working_dir` {source} is not a directory", argument="working_dir")
    limit = limit_from_env() if limit is None else limit
    files = walk(source)
    total = sum(st.st_size for _, _, st in files)
    if total > limit:
        biggest = sorted(files, key=lambda f: -f[2].st_size)[:3]
        names = ", ".join(f"{rel} ({human_bytes(st.st_size)})" for rel, _, st in biggest)
        raise BadInput(
            f"`working_dir` {source} holds {human_bytes(total)}, over the {human_bytes(limit)} limit (${LIMIT_ENV}); biggest: {names}",
            argument="working_dir",
        )
    entries = []
    for rel, full, st in files:
        digest = sha256_file(full)
        blob = Path(blobs(digest))
        if not blob.is_file():
            copy_file(full, blob, check=functools.partial(_holds, digest), nofollow=True, private=True)
        entries.append({"path": rel, "sha256": digest, "mode": stat.S_IMODE(st.st_mode), "size": st.st_size})
    sid = hashlib.sha256(json.dumps(entries, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    manifest = snapshots / f"{sid}.json"
    if not manifest.is_file():
        ensure_dir(snapshots, private=True)
        atomic_write_json(manifest, {"snapshot_id": sid, "files": entries, "size": total})
    return sid


def materialize(manifest: Path, blobs_root: Path, into: Path) -> Path:
    """Copy the snapshot into ``into`` (once: a finished copy is reused) and return it.
    ``blobs_root``: the ``blobs/sha256`` directory."""
    if (into / READY).is_file():
        return into
    data = json.loads(manifest.read_text(encoding="utf-8"))
    tmp = into.with_name(f".{into.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for entry in data["files"]:
        dest = tmp / entry["path"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(blobs_root / entry["sha256"][:2] / entry["sha256"], dest)
        os.chmod(dest, entry["mode"] | stat.S_IWUSR)
    (tmp / READY).write_text(data["snapshot_id"] + "\n", encoding="utf-8")
    shutil.rmtree(into, ignore_errors=True)
    os.rename(tmp, into)
    return into


def zip_of(manifest: Path, blobs_root: Path) -> bytes:
    """The snapshot as the zip Ray unpacks into a job's working dir (``runtime_env.working_dir``:
    files at the top, each file's mode kept), with fixed times: one snapshot is always the same
    bytes. ``blobs_root``: the ``blobs/sha256`` directory."""
    import io
    import zipfile

    data = json.loads(manifest.read_text(encoding="utf-8"))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for entry in sorted(data["files"], key=lambda e: e["path"]):
            info = zipfile.ZipInfo(entry["path"], date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFREG | entry["mode"] | stat.S_IWUSR) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(blobs_root / entry["sha256"][:2] / entry["sha256"], "rb") as src, zf.open(info, "w") as out:
                shutil.copyfileobj(src, out)
    return buf.getvalue()


def _holds(digest: str, path: Path) -> bool:
    return sha256_file(path) == digest

