"""Reads of the lease book without its lock: show, events, the queue, the items and why.

Each file is read whole (records are replaced whole, never removed first), so a
reader sees one consistent version of every file it opens. A lease is in the
journal while it lives and in its record always after its first pass: ``show``
looks in the journal first, then the record.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from merlin.errors import NotFound
from merlin.leases import policy
from merlin.leases.common import Lease
from merlin.leases.store import BookStore
from merlin.ledger.paths import validate_lease_id
from merlin.nextsteps import Action, step


class BookReads(BookStore):
    """The read side of :class:`merlin.leases.book.LeaseBook`."""

    clock: Callable[[], float]
    skew: float

    def snapshot(self) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """(book state, inventory) read without the lock: consistent per file, for listings."""
        return self._load(), self.load_inventory()

    def show(self, lease_id: str) -> Lease:
        validate_lease_id(lease_id)
        state = self._load()
        lease = state["live"].get(lease_id)
        if lease is None:
            lease = self._read_json(self._record_path(lease_id))
        if lease is None:
            raise NotFound(f"lease {lease_id}: no such lease", next_steps=[step(Action.LEASES_LIST), step(Action.LEASES_QUEUE)])
        return lease

    def events(self, lease_id: str) -> list[dict[str, Any]]:
        try:
            text = self.layout.lease_events(validate_lease_id(lease_id)).read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def queue(self) -> list[Lease]:
        """Waiting requests in queue order (position 1 first)."""
        state = self._load()
        return sorted((lease for lease in state["live"].values() if lease["state"] == "waiting"), key=policy.order_key)

    def live(self) -> list[Lease]:
        state = self._load()
        return sorted(state["live"].values(), key=policy.order_key)

    def all_leases(self) -> list[Lease]:
        """Every lease record on disk (live ones from the book), oldest first."""
        state = self._load()
        out = dict(state["live"])
        for path in self.layout.lease_records():
            lid = path.stem
            if lid not in out:
                rec = self._read_json(path)
                if rec:
                    out[lid] = rec
        return sorted(out.values(), key=lambda lease: (lease["created_at"], lease["lease_id"]))

    def items(self) -> list[dict[str, Any]]:
        """Inventory items with holder and queue: what `resources list` shows."""
        state, inv = self.snapshot()
        if inv is None:
            return []
        holders = {i: lease for lease in state["live"].values() if lease["state"] == "granted" for i in lease["items"]}
        queue = sorted((lease for lease in state["live"].values() if lease["state"] == "waiting"), key=policy.order_key)
        out = []
        for it in inv["items"]:
            holder = holders.get(it["id"])
            waiting = [lease["lease_id"] for lease in queue if any(policy.matches(it, b) for b in lease["bundles"])]
            out.append(dict(it, holder=_holder(holder), fence=state["fences"].get(it["id"], 0), waiting=waiting))
        return out

    def why(self, lease_id: str) -> list[dict[str, Any]]:
        """Every condition holding a waiting lease back, each with a code, evidence and the next step."""
        from merlin.leases.why import explain

        state, inv = self.snapshot()
        lease = state["live"].get(validate_lease_id(lease_id)) or self.show(lease_id)
        return explain(lease, state, inv, self.clock(), self.skew)


def _holder(lease: Lease | None) -> dict[str, Any] | None:
    if lease is None:
        return None
    o = lease["owner"]
    return {"lease_id": lease["lease_id"], "user": o["user"], "host": o["host"], "pid": o.get("pid"), "run_id": o.get("run_id"),
            "since": lease.get("granted_at"), "until": lease.get("expires_at")}  # fmt: skip
