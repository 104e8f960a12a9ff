"""The env cache directory: ready envs, locks, state files, users, uv's own cache.

Layout of a cache (``merlin.envs.spec.cache_root``)::

    envs/<env id>/            a ready venv (relocatable), .merlin-ready inside it
    envs/<env id>/.users/     one file per process running a command in it
    tmp/<env id>.<random>/    a build in progress (never used by a run)
    locks/<env id>/owner      one builder per env id: merlin.dirlock.MkdirLock (safe on NFS)
    state/<env id>.json       building (uv's last line, start), ready, or failed (uv's error line)
    uv/                       uv's cache (same filesystem as envs/, so uv hardlinks)

The lock is the lease book's class (``merlin.dirlock``): stale when its owner is
provably gone (same host, and its pid no longer runs with the recorded start time),
or when its heartbeat (the owner file, touched by the holder's heartbeat thread) is
older than :data:`STALE_AFTER` (the only sign of another host's owner).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from merlin.atomic import atomic_write_json, ensure_dir, file_mode, replace_file
from merlin.dirlock import MkdirLock, me, owner_gone

READY = ".merlin-ready"
#: inside a ready env: one file per process running a command in it
USERS = ".users"
#: a lock whose heartbeat (its owner file, touched by its holder's heartbeat thread) is this old is stale (seconds)
STALE_AFTER = 600.0
#: another host's mark this much older than its last touch is removed by any reader (it stopped
#: counting as a user after STALE_AFTER; a shared cache would otherwise keep every host's marks)
FORGET_AFTER = 86400.0


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
        path = self.tmp_dir / f"{env_id}.{os.urandom(6).hex()}"
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
    def lock(self, env_id: str) -> MkdirLock:
        """The build lock of ``env_id``: :class:`merlin.dirlock.MkdirLock` (one class for the
        lease book and the env cache), its heartbeat beating while the holder builds."""
        return MkdirLock(self.lock_dir(env_id), stale_after=STALE_AFTER, busy=f"environment {env_id[:12]} is being built")

    def lock_owner(self, env_id: str) -> dict[str, Any] | None:
        return self.lock(env_id).owner()

    def removal_dir(self, env_id: str) -> Path:
        """``tmp/removing-<env id>.<random>``: where prune renames an env out of ``envs/`` before deleting it."""
        return self.tmp_dir / f"removing-{env_id}.{os.urandom(4).hex()}"

    def clear_tmp(self, env_id: str) -> None:
        """Remove what earlier (killed) builds of ``env_id`` left: called by the lock holder."""
        import shutil

        base = self.tmp_dir
        if base.is_dir():
            for left in base.glob(f"{env_id}.*"):
                shutil.rmtree(left, ignore_errors=True)

    # ---------------------------------------------------------------- users
    def users_dir(self, env_id: str) -> Path:
        return self.env_dir(env_id) / USERS

    def add_user(self, env_id: str) -> Path:
        """Mark this process as using the env (prune never removes it), and its last use now.
        The mark names the process by pid and start time, so it holds across the launcher's
        ``exec`` of the command and lapses when the command ends (:meth:`live_users_at` then
        removes it). Written whole (``merlin.atomic.replace_file``) without fsync: a crash takes
        the process with it, and the warm path's budget is milliseconds."""
        who = me()
        path = self.users_dir(env_id) / f"{who['host']}-{who['pid']}"
        data = json.dumps(who).encode("utf-8")
        try:
            replace_file(str(path), data, mode=file_mode(), fsync=False)
        except FileNotFoundError:
            ensure_dir(path.parent)
            replace_file(str(path), data, mode=file_mode(), fsync=False)
        return path

    def live_users(self, env_id: str) -> list[dict[str, Any]]:
        return self.live_users_at(self.env_dir(env_id))

    def live_users_at(self, env: Path) -> list[dict[str, Any]]:
        out = []
        base = env / USERS
        for f in sorted(base.iterdir()) if base.is_dir() else []:
            if f.name.startswith("."):
                continue  # a mark being written
            try:
                who = json.loads(f.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if not isinstance(who, dict):
                continue
            if owner_gone(who):  # its command ended: the mark lapsed
                try:
                    f.unlink()
                except OSError:
                    pass
            elif who.get("host") == socket.gethostname() or time.time() - _mtime(f) <= STALE_AFTER:
                out.append(who)
            elif time.time() - _mtime(f) > FORGET_AFTER:  # another host's, long lapsed: no host is left to sweep it
                try:
                    f.unlink()
                except OSError:
                    pass
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
