"""One locked scheduling pass: take the lock, load, finish the previous outbox if needed,
settle (expire leases past TTL + skew, release leases of holders dead on this host,
cancel waiting requests of dead processes), apply the operation, grant by
:func:`merlin.leases.policy.schedule`, commit, flush, ring the doorbells of the granted.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from merlin.errors import MerlinError, NotFound
from merlin.leases import policy
from merlin.leases.common import Lease, iso, parse_ts, user
from merlin.leases.locks import book_lock
from merlin.leases.states import LeaseState, check_lease_transition
from merlin.leases.store import BookStore
from merlin.ledger.paths import validate_lease_id
from merlin.nextsteps import Action, step

#: Linux's largest pid_max (2**22); a pid beyond it names no process on any system merlin runs on.
MAX_PID = 4_194_304


class Liveness:
    """Is a recorded holder process still the one that asked? (a signal-0 probe every pass; its
    start time and zombie state, one /proc read, once a second per process)."""

    def __init__(self) -> None:
        from merlin.procid import look, same_start

        self._look = look
        self._same_start = same_start
        self._host = socket.gethostname()
        self._seen: dict[tuple[int, float], float] = {}

    def __call__(self, owner: dict[str, Any], now: float) -> bool:
        pid, start = owner.get("pid"), owner.get("pid_start")
        if pid is None or owner.get("host") != self._host:
            return True  # not ours to judge: TTL decides
        if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid <= MAX_PID:
            return False  # no process can have it (a record written before pids were checked): never alive
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # exists, another user's
        key = (pid, start or 0.0)
        if now - self._seen.get(key, -10.0) < 1.0:
            return True
        found = self._look(pid)
        if found is None or found.zombie or not self._same_start(start, found.start):
            return False  # gone, the pid was reused by another process, or dead and not yet reaped
        self._seen[key] = now
        return True


class Pass:
    """What one locked pass changes: the book state plus the outbox it will flush."""

    def __init__(self, state: dict[str, Any], inventory: dict[str, Any] | None, now: float, by: str) -> None:
        self.state = state
        self.inventory = inventory
        self.now = now
        self.by = by
        self.seq = state["seq"] + 1
        self.touched: dict[str, Lease] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.granted: list[Lease] = []
        self.inventory_changed = False
        self.changes = 0  # lease events and inventory edits so far in this pass
        self.scheduled_at = -1  # ``changes`` when the last scheduling ran (nothing new since: skip it)

    def own_inventory(self) -> dict[str, Any]:
        """The inventory for this pass to change: a private copy (the book's cached one is shared)."""
        self.changes += 1
        if not self.inventory_changed:
            self.inventory = json.loads(json.dumps(self.inventory))
            self.inventory_changed = True
        assert self.inventory is not None
        return self.inventory

    @property
    def changed(self) -> bool:
        return bool(self.touched) or self.inventory_changed

    def items(self) -> list[dict[str, Any]]:
        return (self.inventory or {}).get("items", [])

    def event(self, lease: Lease, event: str, to: LeaseState, reason: str, by: str | None = None) -> None:
        old = lease.get("state")
        if event != "renewed":
            check_lease_transition(lease["lease_id"], old, to)
            lease["changes"].append({"time": iso(self.now), "from_state": old, "to_state": to.value, "by": by or self.by, "reason": reason})
        lease["state"] = to.value
        lease["reason"] = reason
        self.changes += 1
        lease["seq"] += 1
        lease["rev"] += 1
        self.touched[lease["lease_id"]] = lease
        self.events.setdefault(lease["lease_id"], []).append(
            {
                "schema_version": 1,
                "time": iso(self.now),
                "lease_id": lease["lease_id"],
                "seq": lease["seq"],
                "book_seq": self.seq,
                "event": event,
                "from_state": None if event == "reserved" else old,
                "to_state": to.value,
                "by": by or self.by,
                "reason": reason,
                "items": list(lease["items"]),
                "tokens": dict(lease["tokens"]),
                "expires_at": lease.get("expires_at"),
            }
        )


class BookPasses(BookStore):
    """The locked pass of :class:`merlin.leases.book.LeaseBook` and what every pass does."""

    lock_kind: str | None
    lock_timeout: float
    clock: Callable[[], float]
    alive: Callable[[dict[str, Any], float], bool]
    skew: float

    def _init_passes(self) -> None:
        self._kind: str | None = None
        self._flock: Any = None
        self._host = socket.gethostname()
        self._ringer: Any = None

    @contextmanager
    def _locked(self, by: str | None = None) -> Iterator[Pass]:
        if self._kind is None:
            from merlin.atomic import make_dir
            from merlin.leases.locks import choose_lock_kind

            make_dir(self.layout.leases, private=True)  # the state root too, when a lease command is the first
            self._kind = choose_lock_kind(self.layout.resources, self.lock_kind)
            if self._kind == "flock":
                from merlin.leases.locks import Flock

                self._flock = Flock(self.layout.book_lock)
        with book_lock(self.layout.book_lock, self.layout.book_lockdir, kind=self._kind, timeout=self.lock_timeout, flock=self._flock):
            state = self._load()
            if state.get("outbox") and not self._outbox_flushed(state):
                self._flush(state["outbox"], repair=True)
                self._mark_flushed(state)
            tx = Pass(state, self._inventory_cached(), self.clock(), by or f"{user()}@{self._host}")
            try:
                yield tx
            except MerlinError:
                # What the pass settled (an expiry it found) stands, and so do the grants
                # it frees up; operations raise before changing anything themselves.
                self._grant(tx)
                self._finish(tx, state)
                raise
            self._grant(tx)  # every pass ends by granting, whatever path the operation took
            self._finish(tx, state)

    def _finish(self, tx: Pass, state: dict[str, Any]) -> None:
        """Commit the pass (one journal line), then write its records and events."""
        if tx.inventory_changed:
            assert tx.inventory is not None
            self._write_inventory(tx.inventory)
        if tx.touched:
            state["seq"] = tx.seq
            state["nonce"] = secrets.token_hex(4)
            state["outbox"] = [{"lease": lease, "events": tx.events.get(lid, [])} for lid, lease in tx.touched.items()]
            self._commit(state)
            self._flush(state["outbox"], repair=False)
            self._mark_flushed(state)
            self._ring(tx)

    def _ring(self, tx: Pass) -> None:
        """Wake whoever on this host waits for a lease this pass granted (its record is on disk by now).
        Any process may wait for a lease, not only its owner: every grant rings (a ring nobody
        hears costs one refused sendto)."""
        for lease in tx.granted:
            if self._ringer is None:
                from merlin.leases.doorbell import Ringer

                self._ringer = Ringer(self._dir_s)
            self._ringer.ring(lease["lease_id"])

    # ------------------------------------------------------------ settle + grant

    def _settle(self, tx: Pass) -> None:
        """Expire, free the leases of dead holders, cancel dead waiters."""
        live = tx.state["live"]
        for lid in list(live):
            lease = live[lid]
            if lease["state"] == LeaseState.GRANTED.value:
                exp = parse_ts(lease.get("expires_at"))
                if exp is not None and tx.now > exp + self.skew:
                    self._end(tx, lease, LeaseState.EXPIRED, "expired", f"not renewed before its TTL ended (expired {lease['expires_at']}, skew margin {self.skew:g}s)", "merlin")
                elif not self.alive(lease["owner"], tx.now):
                    self._end(tx, lease, LeaseState.RELEASED, "released", f"holder process {lease['owner'].get('pid')} on {lease['owner'].get('host')} is gone", "merlin")
            elif not self.alive(lease["owner"], tx.now):
                self._end(tx, lease, LeaseState.CANCELLED, "cancelled", f"waiting process {lease['owner'].get('pid')} on {lease['owner'].get('host')} is gone", "merlin")
            elif (waiter := lease["owner"].get("waiter")) and not self.alive(waiter, tx.now):
                self._end(tx, lease, LeaseState.CANCELLED, "cancelled", f"the process waiting for it ({waiter.get('pid')} on {waiter.get('host')}) is gone: withdrawn", "merlin")

    def _end(self, tx: Pass, lease: Lease, to: LeaseState, event: str, reason: str, by: str | None = None) -> None:
        lease["ended_at"] = iso(tx.now)
        tx.event(lease, event, to, reason, by)
        del tx.state["live"][lease["lease_id"]]

    def _held(self, tx: Pass) -> set[str]:
        return {i for lease in tx.state["live"].values() if lease["state"] == "granted" for i in lease["items"]}

    def _grant(self, tx: Pass) -> None:
        if tx.scheduled_at == tx.changes and not tx.inventory_changed:
            return  # scheduled already in this pass, and nothing changed since
        waiting = [lease for lease in tx.state["live"].values() if lease["state"] == "waiting"]
        if not waiting:
            tx.scheduled_at = tx.changes
            return
        fences = tx.state["fences"]
        for lease, picked in policy.schedule(waiting, tx.items(), self._held(tx)):
            tokens = {}
            for item in picked:
                fences[item] = fences.get(item, 0) + 1
                tokens[item] = fences[item]
            lease["items"], lease["tokens"] = picked, tokens
            lease["granted_at"] = iso(tx.now)
            lease["expires_at"] = iso(tx.now + lease["ttl_seconds"])
            tx.event(lease, "granted", LeaseState.GRANTED, "granted: every bundle could be filled at once", "merlin")
            tx.granted.append(lease)
        tx.scheduled_at = tx.changes

    def _get_live_or_file(self, tx: Pass, lease_id: str) -> Lease:
        """The lease as this pass sees it: changed in this pass, live in the book, or its record
        (the previous pass's outbox was flushed when this pass began, so the record is current)."""
        validate_lease_id(lease_id)
        lease = tx.touched.get(lease_id) or tx.state["live"].get(lease_id)
        if lease is not None:
            return lease
        found = self._read_json(self._record_path(lease_id))
        if found is None:
            raise NotFound(f"lease {lease_id}: no such lease", next_steps=[step(Action.LEASES_LIST), step(Action.LEASES_QUEUE)])
        return found
