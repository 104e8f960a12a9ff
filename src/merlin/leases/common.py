"""What every part of the lease book shares: the lease's shape, its timestamps, the caller's name."""

from __future__ import annotations

import functools
import os
from typing import Any

# the lease book's timestamps (merlin.clock) and a request's bundles in one line (merlin.leases.policy)
from merlin.clock import iso as iso
from merlin.clock import parse as parse_ts  # noqa: F401  (re-exported)
from merlin.leases.policy import describe as describe

Lease = dict[str, Any]


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
