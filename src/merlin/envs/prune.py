"""``envs list | show | prune``: what the cache holds, and least-recently-used eviction.

Prune removes envs unused for longer than ``older_than`` seconds, then, while the
cache is over ``max_size`` bytes, the least recently used; never an env a live
process uses (``.users/``) or one being built; then ``uv cache prune``. An env is
removed by renaming it out of ``envs/`` first (never ready again), then deleting.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from typing import Any

from merlin.envs.cache import READY, EnvCache, tree_size


def describe_env(cache: EnvCache, eid: str, size: bool = True) -> dict[str, Any]:
    import json

    env = cache.env_dir(eid)
    try:
        marker = json.loads((env / READY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        marker = {}
    spec = marker.get("spec") or {}
    return {
        "env_id": eid,
        "path": str(env),
        "python": spec.get("python"),
        "packages": spec.get("packages") or [],
        "requirements": spec.get("requirements") or "",
        "lockfile_name": spec.get("lockfile_name") or None,
        "built_at": marker.get("built_at"),
        "build_seconds": marker.get("seconds"),
        "last_used": cache.last_used(eid),
        "users": cache.live_users(eid),
        "size": tree_size(env) if size else None,
    }


def list_envs(cache: EnvCache) -> list[dict[str, Any]]:
    """Ready envs (most recently used first), then the builds in progress or failed."""
    out = sorted((describe_env(cache, e) for e in cache.ids()), key=lambda d: -d["last_used"])
    for d in out:
        d["state"] = "ready"
    state_dir = cache.state_dir
    ready = set(cache.ids())
    for f in sorted(state_dir.glob("*.json")) if state_dir.is_dir() else []:
        st = cache.read_state(f.stem) or {}
        if f.stem not in ready and st.get("state") in ("building", "failed"):
            out.append({"env_id": f.stem, "state": st["state"], "line": st.get("line") or st.get("error"), "started_at": st.get("started_at")})
    return out


def prune(cache: EnvCache, *, older_than: float | None = None, max_size: int | None = None, uv_cache: bool = True) -> dict[str, Any]:
    """Evict; returns ``{removed: [...], kept_in_use: [...], freed, size}``."""
    now = time.time()
    envs = [describe_env(cache, e) for e in cache.ids()]
    envs.sort(key=lambda d: d["last_used"])  # least recently used first
    removed: list[dict[str, Any]] = []
    in_use: list[str] = []
    total = sum(d["size"] for d in envs)
    for d in envs:
        old = older_than is not None and now - d["last_used"] > older_than
        big = max_size is not None and total > max_size
        if not (old or big):
            continue
        if d["users"] or cache.lock_owner(d["env_id"]) is not None:
            in_use.append(d["env_id"])
            continue
        if _remove(cache, d["env_id"]):
            removed.append({"env_id": d["env_id"], "size": d["size"], "last_used": d["last_used"]})
            total -= d["size"]
    result: dict[str, Any] = {"removed": removed, "kept_in_use": in_use, "freed": sum(r["size"] for r in removed), "size": total}
    if uv_cache and cache.uv_cache.is_dir():
        from merlin.envs.build import uv_env
        from merlin.envs.spec import find_uv

        proc = subprocess.run([find_uv(), "cache", "prune", "--cache-dir", str(cache.uv_cache)], env=uv_env(cache), capture_output=True, text=True)
        result["uv_cache_pruned"] = proc.returncode == 0
    return result


def _remove(cache: EnvCache, eid: str) -> bool:
    env = cache.env_dir(eid)
    aside = cache.removal_dir(eid)
    aside.parent.mkdir(parents=True, exist_ok=True)
    try:
        env.rename(aside)
    except OSError:
        return False
    if cache.live_users_at(aside):  # a launcher registered between the check and the rename: put it back
        try:
            aside.rename(env)
            return False
        except OSError:
            pass
    shutil.rmtree(aside, ignore_errors=True)
    try:
        cache.state_file(eid).unlink()
    except OSError:
        pass
    return True
