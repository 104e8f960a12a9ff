"""What every part of the lease book shares: the lease's shape, its timestamps, the caller's name."""

from __future__ import annotations

import functools
import getpass
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
    """getpass.getuser(), whose passwd lookup (~40 ms per thousand calls) is done once per uid."""
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        found = os.environ.get(name)
        if found:
            return found
    return _passwd_name(os.getuid())


@functools.cache
def _passwd_name(uid: int) -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers)
        return str(uid)


def describe(bundles: Sequence[dict[str, Any]]) -> str:
    """``board:2,rack=r1 + fpga:1``: a request's bundles in one line."""
    return " + ".join(f"{b['pool']}:{b['count']}" + "".join(f",{k}={v}" for k, v in sorted(b["labels"].items())) for b in bundles)
