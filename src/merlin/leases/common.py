"""What every part of the lease book shares: the lease's shape, its timestamps, the caller's name."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

Lease = dict[str, Any]


def iso(ts: float) -> str:
    """Fixed-width UTC ISO 8601 (sorts as text, parses as datetime)."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def parse_ts(text: str | None) -> float | None:
    return datetime.fromisoformat(text).timestamp() if text else None


def user() -> str:
    """Who acts, from the operating system: the name of the real uid (never ``$LOGNAME`` or
    ``$USER``, which anyone can set to act as someone else on a group-shared state root)."""
    return _passwd_name(os.getuid())


def uid() -> int:
    """The real uid: what decides whether a lease is one's own."""
    return os.getuid()


def owned_by_me(owner: dict[str, Any]) -> bool:
    """Is a lease's ``owner`` this process's user? By uid (recorded since identity came from the
    OS); a record from before that is judged by the uid's name."""
    if owner.get("uid") is not None:
        return bool(owner["uid"] == uid())
    return bool(owner.get("user") == user())


@functools.cache
def _passwd_name(number: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(number).pw_name
    except (KeyError, OSError):  # no passwd entry (containers)
        return str(number)


def describe(bundles: Sequence[dict[str, Any]]) -> str:
    """``board:2,rack=r1 + fpga:1``: a request's bundles in one line."""
    return " + ".join(f"{b['pool']}:{b['count']}" + "".join(f",{k}={v}" for k, v in sorted(b["labels"].items())) for b in bundles)
