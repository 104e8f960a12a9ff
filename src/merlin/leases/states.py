"""Lease states, item health, and the one table of legal lease transitions.

Like :mod:`merlin.ledger.status`: ``str`` Enums whose values are what the
files hold, and a transition table every change goes through, so a renewal,
an expiry and an admin's revoke racing each other can never move a lease
backwards (e.g. ``expired`` -> ``granted``). The table is a
:class:`merlin.statemachine.Machine` (:data:`LEASES`). Imports nothing heavy.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from merlin import statemachine


class LeaseState(StrEnum):
    """Where a lease request is."""

    #: Recorded, queued by priority then age; holds no item (a gang never holds part).
    WAITING = "waiting"
    #: Every bundle granted at once; the items are the holder's until it ends.
    GRANTED = "granted"
    #: Given back by its holder, by an admin (``release --force``), or because its holder process died.
    RELEASED = "released"
    #: Not renewed before its TTL ran out (plus the clock-skew margin).
    EXPIRED = "expired"
    #: Taken away by an admin (``revoke``); the holder's next renewal is told.
    REVOKED = "revoked"
    #: Withdrawn while waiting (``cancel``), or its waiting process died.
    CANCELLED = "cancelled"

    def is_terminal(self) -> bool:
        return self in LEASES.terminal

    def is_live(self) -> bool:
        return not self.is_terminal()


#: old state (None: no record yet) -> states it may move to. Terminal states are final.
LEASE_TRANSITIONS: dict[LeaseState | None, frozenset[LeaseState]] = {
    None: frozenset({LeaseState.WAITING}),
    LeaseState.WAITING: frozenset({LeaseState.GRANTED, LeaseState.CANCELLED}),
    LeaseState.GRANTED: frozenset({LeaseState.RELEASED, LeaseState.EXPIRED, LeaseState.REVOKED}),
    LeaseState.RELEASED: frozenset(),
    LeaseState.EXPIRED: frozenset(),
    LeaseState.REVOKED: frozenset(),
    LeaseState.CANCELLED: frozenset(),
}


class IllegalLeaseTransition(Exception):
    """A bug or a lost race: something tried to move a lease where it cannot go (every move is
    made under the book's lock, so this is never a user's doing: not a MerlinError)."""

    def __init__(self, message: str, lease_id: str, old: Any, new: Any) -> None:
        super().__init__(message)
        self.lease_id, self.old, self.new = lease_id, old, new


#: The lease machine: terminal states are final, a no-op is no move.
LEASES: statemachine.Machine[LeaseState] = statemachine.Machine(
    LeaseState, LEASE_TRANSITIONS, noop_is_move=False, noun="lease", what="state", error=IllegalLeaseTransition,
    terminal=(LeaseState.RELEASED, LeaseState.EXPIRED, LeaseState.REVOKED, LeaseState.CANCELLED),
)  # fmt: skip



def check_lease_transition(lease_id: str, old: LeaseState | str | None, new: LeaseState | str) -> None:
    LEASES.check(lease_id, old, new)


class Health(StrEnum):
    """An item's health, kept apart from lease state (as LAVA does). Only ``good`` is granted."""

    GOOD = "good"
    #: Not checked yet, or a check was inconclusive.
    UNKNOWN = "unknown"
    BAD = "bad"
    #: Taken out on purpose by a lab maintainer.
    MAINTENANCE = "maintenance"
    #: Gone for good; kept so old leases still name it.
    RETIRED = "retired"

