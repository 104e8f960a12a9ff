"""The env cache directory: ready envs, locks, state files, users, uv's own cache.

Layout of a cache (``merlin.envs.spec.cache_root``)::

    envs/<env id>/            a ready venv (relocatable), .merlin-ready inside it
    envs/<env id>/.users/     one file per process running a command in it
    tmp/<env id>.<random>/    a build in progress (never used by a run)
    locks/<env id>/owner.json one builder per env id: an atomic mkdir (safe on NFS)
    state/<env id>.json       building (uv's last line, start), ready, or failed (uv's error line)
    uv/                       uv's cache (same filesystem as envs/, so uv hardlinks)

A lock is stale when its owner is provably gone: same host and its pid no longer
runs with the recorded start time; another host's owner when its heartbeat (the
state file, rewritten at least every few seconds while it builds) is older than
:data:`STALE_AFTER`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from merlin.atomic import atomic_write_json, ensure_dir

READY = ".merlin-ready"
#: inside a ready env: one file per process running a command in it
USERS = ".users"
#: another host's lock without a heartbeat for this long is stale (seconds)
STALE_AFTER = 600.0


def me() -> dict[str, Any]:
    from merlin.procid import start_time

    return {"pid": os.getpid(), "host": socket.gethostname(), "start": start_time(os.getpid())}


def owner_gone(owner: dict[str, Any] | None, heartbeat: float | None) -> bool:
    if not owner:
        return True
    if owner.get("host") == socket.gethostname():
        from merlin.procid import alive

        return not alive(owner.get("pid"), owner.get("start"))
    return heartbeat is not None and time.time() - heartbeat > STALE_AFTER


class EnvCache:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().resolve()

    # ---------------------------------------------------------------- paths
    @property
    def envs_dir(self) -> Path:
        return self.root / "envs"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def tmp_dir(self) -> Path:
        return self.root / "tmp"

    def env_dir(self, env_id: str) -> Path:
        return self.envs_dir / env_id

    def ready(self, env_id: str) -> bool:
        return (self.env_dir(env_id) / READY).is_file()

    def lock_dir(self, env_id: str) -> Path:
        return self.root / "locks" / env_id

    def state_file(self, env_id: str) -> Path:
        return self.state_dir / f"{env_id}.json"

    @property
    def uv_cache(self) -> Path:
        return self.root / "uv"

    def new_tmp(self, env_id: str) -> Path:
        path = self.tmp_dir / f"{env_id}.{uuid.uuid4().hex[:12]}"
        ensure_dir(path.parent)
        path.mkdir()
        return path

    # ---------------------------------------------------------------- state
    def read_state(self, env_id: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self.state_file(env_id).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def write_state(self, env_id: str, **fields: Any) -> None:
        ensure_dir(self.state_file(env_id).parent)
        atomic_write_json(self.state_file(env_id), {"env_id": env_id, "updated_at": time.time(), **fields})

    def heartbeat(self, env_id: str) -> float | None:
        try:
            return self.state_file(env_id).stat().st_mtime
        except OSError:
            return None

    # ---------------------------------------------------------------- lock
    def try_lock(self, env_id: str) -> bool:
        """Take the build lock of ``env_id`` (an atomic mkdir); False if another holds it.
        A stale lock is moved aside first (rename: one taker wins)."""
        lock = self.lock_dir(env_id)
        ensure_dir(lock.parent)
        for _ in range(2):
            try:
                os.mkdir(lock)
            except FileExistsError:
                owner = self._owner(lock)
                if owner is None and time.time() - _mtime(lock) < 5.0:
                    return False  # just created: its owner file is being written
                if not owner_gone(owner, self.heartbeat(env_id)):
                    return False
                aside = lock.with_name(f"{lock.name}.stale.{uuid.uuid4().hex[:8]}")
                try:
                    os.rename(lock, aside)
                except OSError:
                    return False  # another taker moved it first
                if self._owner(aside) != owner:  # moved a fresh lock by mistake: put it back
                    try:
                        os.rename(aside, lock)
                    except OSError:
                        pass
                    return False
                shutil.rmtree(aside, ignore_errors=True)
                continue
            atomic_write_json(lock / "owner.json", me())
            return True
        return False

    def unlock(self, env_id: str) -> None:
        shutil.rmtree(self.lock_dir(env_id), ignore_errors=True)

    @staticmethod
    def _owner(lock: Path) -> dict[str, Any] | None:
        try:
            data = json.loads((lock / "owner.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def lock_owner(self, env_id: str) -> dict[str, Any] | None:
        return self._owner(self.lock_dir(env_id))

    def removal_dir(self, env_id: str) -> Path:
        """``tmp/removing-<env id>.<random>``: where prune renames an env out of ``envs/`` before deleting it."""
        return self.tmp_dir / f"removing-{env_id}.{uuid.uuid4().hex[:8]}"

    def clear_tmp(self, env_id: str) -> None:
        """Remove what earlier (killed) builds of ``env_id`` left: called by the lock holder."""
        base = self.tmp_dir
        if base.is_dir():
            for left in base.glob(f"{env_id}.*"):
                shutil.rmtree(left, ignore_errors=True)

    # ---------------------------------------------------------------- users
    def users_dir(self, env_id: str) -> Path:
        return self.env_dir(env_id) / USERS

    def add_user(self, env_id: str) -> Path:
        """Mark this process as using the env (prune never removes it), and its last use now."""
        who = me()
        path = self.users_dir(env_id) / f"{who['host']}-{who['pid']}"
        ensure_dir(path.parent)
        atomic_write_json(path, who)
        return path

    def live_users(self, env_id: str) -> list[dict[str, Any]]:
        return self.live_users_at(self.env_dir(env_id))

    def live_users_at(self, env: Path) -> list[dict[str, Any]]:
        out = []
        base = env / USERS
        for f in sorted(base.iterdir()) if base.is_dir() else []:
            try:
                who = json.loads(f.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(who, dict) and not owner_gone(who, f.stat().st_mtime if who.get("host") != socket.gethostname() else None):
                out.append(who)
        return out

    def last_used(self, env_id: str) -> float:
        stamps = [_mtime(self.env_dir(env_id) / READY)]
        base = self.users_dir(env_id)
        if base.is_dir():
            stamps += [_mtime(f) for f in base.iterdir()]
        stamps.append(_mtime(base))
        return max(stamps)

    def touch(self, env_id: str) -> None:
        try:
            os.utime(self.env_dir(env_id) / READY)
        except OSError:
            pass

    def ids(self) -> list[str]:
        base = self.envs_dir
        return sorted(p.name for p in base.iterdir() if (p / READY).is_file()) if base.is_dir() else []


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def tree_size(path: Path) -> int:
    """Bytes of the files under ``path`` (hardlinked files counted once per inode)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key not in seen:
                seen.add(key)
                total += st.st_size
    return total
