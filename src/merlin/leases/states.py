"""Lease states for the lease book: re-exported from :mod:`merlin.ledger.lease_status`
(the ledger's records use them), plus the state table of docs/leases.md."""

from __future__ import annotations

from merlin.ledger.lease_status import (  # noqa: F401
    LEASE_TRANSITIONS,
    Health,
    IllegalLeaseTransition,
    LeaseState,
    can_lease_transition,
    check_lease_transition,
)

#: one line per state for docs/leases.md (tests/test_leases.py checks the page holds this table)
MEANINGS: dict[LeaseState, str] = {
    LeaseState.WAITING: "recorded and queued (priority, then age); holds no item",
    LeaseState.GRANTED: "every bundle granted at once; each item carries a new fencing token",
    LeaseState.RELEASED: "given back: by its holder, by an admin (`release --force --reason`), or because its holder process on this host died",
    LeaseState.EXPIRED: "not renewed before `expires_at` + the skew margin",
    LeaseState.REVOKED: "taken away by an admin (`revoke --reason`); the holder's next renew exits 3",
    LeaseState.CANCELLED: "withdrawn while waiting (`cancel`, `release`, `revoke`), or its waiting process died",
}


def state_table() -> str:
    """The lease state table of docs/leases.md, generated from the enum and its transition table."""
    rows = ["| state | meaning | can become |", "| --- | --- | --- |"]
    for state in LeaseState:
        nxt = ", ".join(f"`{s.value}`" for s in LeaseState if s in LEASE_TRANSITIONS[state]) or "— (final)"
        rows.append(f"| `{state.value}` | {MEANINGS[state]} | {nxt} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(state_table(), end="")
