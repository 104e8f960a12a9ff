"""Is a sweep's driver alive, and may this process start one (docs/sweeps.md)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from merlin.control.plane import Plane


def driver_alive(cp: Plane, name: str) -> bool:
    """A driver holds the sweep's lock, or the last one a look started still runs (it may not have taken
    the lock yet: a second look in that window must not start another)."""
    from merlin.atomic import lock_is_free
    from merlin.procid import alive

    if not lock_is_free(cp.layout.sweep_driver_lock(name)):
        return True
    try:
        started = json.loads(cp.layout.sweep_driver_started(name).read_text(encoding="utf-8"))
        return bool(alive(int(started["pid"]), started.get("start")))
    except (OSError, ValueError, KeyError, TypeError):
        return False


def missing_secrets(rec: Mapping[str, Any]) -> list[str]:
    """The sweep's ``secret_env`` names this process's environment lacks: a driver started here could not
    hand them to its items (they would be lost), so none is started; a look from a shell that has them does."""
    runtime = rec.get("runtime") or {}
    names = runtime.get("secret_env") if isinstance(runtime, Mapping) else None
    return [n for n in names or [] if n not in os.environ]
