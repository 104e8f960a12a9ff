"""``merlin envs``: the run environments in the cache, for the facade (docs/environments.md)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from merlin.errors import BadInput, Blocked, NotFound

if TYPE_CHECKING:  # pragma: no cover
    from merlin.control.plane import Plane


def _cache(cp: Plane, cache: str | None) -> Any:
    from merlin.envs.cache import EnvCache
    from merlin.envs.spec import cache_root

    return EnvCache(cache_root(cp.layout, cache))


def envs(cp: Plane, action: str, *, env_id: str | None = None, runtime: Any = None, older_than: float | None = None,
         max_size: int | str | None = None, cache: str | None = None) -> Any:  # fmt: skip
    """``list`` (ready envs, then builds in progress or failed), ``show`` one, ``build`` a runtime now, ``prune``."""
    from merlin.envs import prune as pr

    c = _cache(cp, cache)
    if action == "list":
        return {"cache": str(c.root), "envs": pr.list_envs(c)}
    if action == "show":
        found = [e for e in c.ids() if env_id and e.startswith(env_id)]
        if len(found) != 1:
            state = c.read_state(env_id) if env_id and len(env_id) == 64 else None
            if state:
                return {"env_id": env_id, **state}
            raise NotFound(f"no env {env_id!r} in {c.root}" if not found else f"`env_id` {env_id} names {len(found)} envs: give more of it", argument="env_id")
        return {**pr.describe_env(c, found[0]), "state": "ready"}
    if action == "build":
        from merlin.control.runtime import prepare
        from merlin.envs.build import BuildFailed, ensure

        rt, _ = prepare(cp, runtime)
        if rt is None:
            raise BadInput("`runtime` is empty: give requirements, a lockfile or packages", argument="runtime")
        started = time.monotonic()
        try:
            path, eid, how = ensure(rt.model_dump(mode="json"), c)
        except BuildFailed as exc:
            raise Blocked(f"the environment could not be built: {exc.line}", "env_build_failed") from None
        return {"env_id": eid, "path": str(path), "cache": how, "seconds": round(time.monotonic() - started, 3)}
    if action == "prune":
        from merlin.units import parse_bytes

        size = parse_bytes(max_size, "max_size") if max_size is not None else None
        return {"cache": str(c.root), **pr.prune(c, older_than=older_than, max_size=size)}
    raise BadInput(f"`action` {action!r}: list, show, build or prune", argument="action")
