"""The lease book: every lease operation is one locked scheduling pass over one file.

State (under ``resources/`` of the state root, see docs/leases.md):

- ``book.jsonl``: the scheduling state, the commit point of every pass: the
  pass counter, the fencing counter of every item, every live (waiting or
  granted) lease, and the *outbox* of the last pass (the lease records and
  events that pass changed);
- ``leases/<lease_id>.json`` and ``leases/<lease_id>.events.jsonl``: each
  lease's record and event log, written from the outbox right after the
  commit. A pass cut short by SIGKILL after its commit is finished by the
  next pass (records whose ``rev`` is behind, events whose ``seq`` is
  missing), so a record never disagrees with the book for long and no event
  is lost or doubled;
- ``inventory.json``: the items, their health and drain flags.

Every write goes through :mod:`merlin.atomic`: a record is replaced whole,
never removed first, so a reader sees the old file or the new one, never half
and never neither, whatever gets killed. ``MERLIN_LEASE_FSYNC=1`` also fsyncs
each write (survives a power cut; ~7 ms per write on a VM disk).

``.flushed`` marks the last pass whose outbox is written (the next pass skips
the repair reads), and a waiter sleeps on a doorbell that the granting pass
rings (:mod:`merlin.leases.doorbell`) instead of polling.

The parts: :mod:`merlin.leases.store` (the files), :mod:`merlin.leases.passes`
(one locked pass: settle, grant, commit, flush), :mod:`merlin.leases.reads`
(show, queue, items, why, without the lock); here, the operations.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from merlin.durations import parse_duration
from merlin.errors import BadInput, Blocked, MerlinError, NotFound
from merlin.leases import policy
from merlin.leases.common import Lease, iso, owned_by_me, parse_ts
from merlin.leases.common import describe as _describe
from merlin.leases.common import user as _user
from merlin.leases.passes import MAX_PID, BookPasses, Liveness, Pass
from merlin.leases.reads import BookReads
from merlin.leases.states import Health, LeaseState
from merlin.ledger.paths import Layout, validate_lease_id
from merlin.nextsteps import Action, step

__all__ = ["Lease", "LeaseBook", "LeaseLost", "NotGranted", "iso", "new_lease", "new_lease_id", "parse_bundle", "parse_duration", "parse_ts"]

SKEW_ENV = "MERLIN_LEASE_SKEW"
FSYNC_ENV = "MERLIN_LEASE_FSYNC"
#: Clock-skew margin (seconds): holders treat a lease as ending this much before expires_at,
#: and the book reclaims it only this much after. Hosts sharing a state root must agree within it.
DEFAULT_SKEW = 5.0
DEFAULT_TTL = 900.0
MAX_TTL = 7 * 86400.0
#: seconds between a waiter's locked housekeeping passes (when no other pass ran meanwhile)
HOUSEKEEPING = 0.5
#: longest a waiter sleeps between reads of its record (grants from another host ring no doorbell)
POLL_SLICE = 0.1


class LeaseLost(MerlinError):
    """The holder's lease ended (expired, revoked, force-released): stop using its items."""

    exit_code = 3


class NotGranted(MerlinError):
    """The request is recorded as waiting; it was not grantable now."""

    exit_code = 3

    def __init__(self, message: str, lease: Lease, next_steps: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message, next_steps=next_steps)
        self.lease = lease




_POOL_CHARS = r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}"
_POOL = re.compile(rf"^{_POOL_CHARS}\Z")
_COUNT = r"(?:[1-9][0-9]{0,2}|10[01][0-9]|102[0-4])"
#: ``parse_bundle``'s grammar as published in JSON Schemas (the gateway's inputs): a pool (whose last
#: ``:N`` is the count, 1 to 1024), then ``k=v`` labels; tests/test_gateway_schema_strict.py keeps them in step.
BUNDLE_PATTERN = (
    rf"^\s*(?:(?![^,]*:[0-9]+\s*(?:,|$)){_POOL_CHARS}|{_POOL_CHARS}:{_COUNT})\s*(?:,\s*{_POOL_CHARS}=[^,]*[^,\s]\s*)*$"
)


def parse_bundle(text: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """``POOL[:COUNT][,k=v...]`` -> a bundle; ``labels`` apply as well."""
    head, *pairs = [p.strip() for p in str(text).split(",")]
    pool, sep, count_s = head.rpartition(":") if re.search(r":\d+$", head) else (head, "", "")
    if not _POOL.match(pool or ""):
        raise BadInput(f"{text!r}: expected POOL[:COUNT][,k=v...], e.g. firesim_fpga:1 or board:2,board=u250")
    count = int(count_s) if sep and len(count_s) <= 6 else (10**6 if sep else 1)  # a longer count is out of range anyway
    if not 1 <= count <= 1024:
        raise BadInput(f"{text!r}: COUNT must be 1 to 1024")
    out = dict(labels or {})
    for pair in pairs:
        k, eq, v = pair.partition("=")
        if not eq or not _POOL.match(k) or not v:
            raise BadInput(f"{text!r}: label {pair!r} must be k=v")
        out[k] = v
    return {"pool": pool, "count": count, "labels": out}


def new_lease_id() -> str:
    return f"lease-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(4)}"


#: Priorities are small integers; a bound keeps every record's numbers in JSON's safe range.
MAX_PRIORITY = 1_000_000


def said(reason: str | None) -> str | None:
    """A person's reason as the book keeps it: one line, no terminal escapes or control characters,
    secret-shaped values redacted (reasons are shown to everyone who reads the book)."""
    from merlin.ledger.text import plain, scrub_shapes

    return plain(scrub_shapes(reason.replace("\n", " ")), limit=500) if reason else reason


def check_int(value: Any, name: str, low: int, high: int) -> int:
    """An integer argument within ``[low, high]``, or ``BadInput`` naming it (before anything is written)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(f"{name}: {value!r} is not a whole number")
    if not low <= value <= high:
        raise BadInput(f"{name}: {value} is out of range ({low} to {high})")
    return value


def new_lease(lease_id: str, owner: dict[str, Any], bundles: list[dict[str, Any]], priority: int, ttl: float, now: float) -> Lease:
    """A lease before its first event (the shape of LeaseRecord's JSON)."""
    return {
        "schema_version": 1, "lease_id": lease_id, "state": None, "owner": owner, "bundles": bundles,
        "items": [], "tokens": {}, "priority": priority, "ttl_seconds": ttl,
        "created_at": iso(now), "granted_at": None, "renewed_at": None, "expires_at": None,
        "ended_at": None, "reason": "", "changes": [], "rev": 0, "seq": 0,
    }  # fmt: skip



def process_start(pid: int) -> float | None:
    from merlin.procid import start_time

    return start_time(pid)


class LeaseBook(BookReads, BookPasses):
    """The lease book of one state root. Cheap to build; holds no open file between calls."""

    def __init__(
        self,
        root: Path | Layout,
        *,
        lock_kind: str | None = None,
        clock: Callable[[], float] = time.time,
        alive: Callable[[dict[str, Any], float], bool] | None = None,
        skew: float | None = None,
        fsync: bool | None = None,
        lock_timeout: float = 60.0,
    ) -> None:
        layout = root if isinstance(root, Layout) else Layout(Path(root))
        self._init_store(layout, (os.environ.get(FSYNC_ENV, "") not in ("", "0")) if fsync is None else fsync)
        self._init_passes()
        self.dir = layout.resources
        self.lock_kind = lock_kind
        self.clock = clock
        self.alive = alive or Liveness()
        self.skew = float(os.environ.get(SKEW_ENV, DEFAULT_SKEW)) if skew is None else float(skew)
        self.lock_timeout = lock_timeout
        self._own_start: tuple[int, float | None] | None = None

    def _own_pid_start(self, pid: int) -> float | None:
        """The start time of ``pid``; this process's own is looked up once (psutil is not free)."""
        if pid != os.getpid():
            return process_start(pid)
        if self._own_start is None or self._own_start[0] != pid:
            self._own_start = (pid, process_start(pid))
        return self._own_start[1]

    # --------------------------------------------------------------- operations

    def reserve(
        self,
        bundles: Sequence[dict[str, Any] | str],
        *,
        priority: int = 0,
        ttl: float | str = DEFAULT_TTL,
        pid: int | None = None,
        run_id: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
        lease_id: str | None = None,
    ) -> Lease:
        """Record a request (a gang if several bundles) and grant it if the order rule allows.

        ``pid`` binds the lease to a holder process (freed when it dies). Returns
        the lease; with ``wait``, returns once granted (or raises NotGranted after
        ``timeout``)."""
        parsed = [
            parse_bundle(b) if isinstance(b, str) else dict(b, labels=dict(b.get("labels") or {}), count=check_int(b.get("count", 1), "count", 1, 1024))
            for b in bundles
        ]
        if not parsed:
            raise BadInput("reserve: name at least one POOL[:COUNT]")
        check_int(priority, "priority", -MAX_PRIORITY, MAX_PRIORITY)
        if pid is not None:
            check_int(pid, "pid", 1, MAX_PID)
        ttl_s = parse_duration(ttl, "ttl", above_zero=True, at_most=MAX_TTL)
        lid = validate_lease_id(lease_id) if lease_id else new_lease_id()
        owner = {"user": _user(), "uid": os.getuid(), "host": self._host, "pid": pid, "pid_start": self._own_pid_start(pid) if pid else None, "run_id": run_id}
        if wait and pid is None:
            # the process waiting for it: if it dies while the request waits, the next pass withdraws the
            # request (a grant to nobody would hold the items for a whole TTL). Once granted it is not asked.
            me = os.getpid()
            owner["waiter"] = {"pid": me, "pid_start": self._own_pid_start(me), "host": self._host}
        with self._locked() as tx:
            if tx.inventory is None:
                raise Blocked("no inventory yet: describe the hardware in a YAML file and define it", next_steps=[step(Action.DEFINE_INVENTORY)])
            problem = policy.capacity_problem(parsed, tx.items())
            if problem:
                raise BadInput(f"reserve: {problem}; it could never be granted", next_steps=[step(Action.LEASES_LIST)])
            if lid in tx.state["live"] or self.layout.lease(lid).exists():
                raise BadInput(f"lease {lid}: already exists")
            self._settle(tx)
            lease = new_lease(lid, owner, parsed, int(priority), ttl_s, tx.now)
            tx.event(lease, "reserved", LeaseState.WAITING, f"requested {_describe(parsed)} (priority {priority})")
            tx.state["live"][lid] = lease
            self._grant(tx)
            result = dict(lease)
        if result["state"] == "granted" or not wait:
            return result
        try:
            return self.wait(lid, timeout=timeout)
        except NotGranted:
            self._forget_waiter(lid)  # it stays queued, as NotGranted says, after this process exits
            raise

    def _forget_waiter(self, lease_id: str) -> None:
        with self._locked() as tx:
            lease = tx.state["live"].get(lease_id)
            if lease is not None and lease["owner"].pop("waiter", None) is not None:
                lease["rev"] += 1
                tx.changes += 1
                tx.touched[lease_id] = lease

    def wait(self, lease_id: str, timeout: float | None = None) -> Lease:
        """Block until the lease is granted; NotGranted after ``timeout``; LeaseLost if it ends first.

        The waiter sleeps on its doorbell (:mod:`merlin.leases.doorbell`), rung by the pass that
        grants it, and reads its record between rings at most every POLL_SLICE seconds (a grant
        made on another host rings nothing). Every 0.5 s it makes a locked housekeeping pass
        (expiries, dead holders) only when no other pass changed the book in that time: under
        contention the holders' own passes settle the book, and the waiters stay off its lock."""
        path = self._record_path(validate_lease_id(lease_id))
        from merlin.leases.doorbell import Doorbell

        bell = Doorbell.open(self._dir_s, lease_id)  # before the first read: no ring can be missed
        try:
            return self._wait_on(lease_id, path, bell, timeout)
        finally:
            if bell is not None:
                bell.close()

    def _wait_on(self, lease_id: str, path: str, bell: Any, timeout: float | None) -> Lease:
        from merlin.clock import pauses

        deadline = None if timeout is None else time.monotonic() + timeout
        last_pass = time.monotonic()
        delay = pauses(0.0005, POLL_SLICE)
        while True:
            now = time.monotonic()
            lease = None
            if now - last_pass > HOUSEKEEPING:
                last_pass = now
                if self._book_idle(HOUSEKEEPING):
                    lease = self.refresh_one(lease_id)  # a locked pass: expiries and dead holders free items
            if lease is None:
                lease = self._read_json(path) or {"state": "waiting"}
            if lease["state"] == "granted":
                return lease
            if lease["state"] != "waiting":
                raise LeaseLost(f"lease {lease_id} is {lease['state']} ({lease.get('reason', '')})")
            if deadline is not None and now >= deadline:
                raise NotGranted(f"lease {lease_id} is still waiting after {timeout:g}s", self.show(lease_id), next_steps=[step(Action.LEASES_QUEUE), step(Action.LEASE_WHY, lease_id=lease_id)])
            left = HOUSEKEEPING - (time.monotonic() - last_pass)
            if deadline is not None:
                left = min(left, deadline - time.monotonic())
            if bell is not None:
                bell.wait(max(0.0, min(left, POLL_SLICE)))
            else:  # no doorbell here: poll the record, finely at first
                time.sleep(max(0.0, min(left, next(delay))))

    def _book_idle(self, seconds: float) -> bool:
        """No pass changed the book in the last ``seconds`` (its journal's mtime, one stat)."""
        try:
            return time.time() - os.stat(self._book_s).st_mtime > seconds
        except FileNotFoundError:
            return True

    def refresh_one(self, lease_id: str) -> Lease:
        with self._locked() as tx:
            self._settle(tx)
            self._grant(tx)
            return dict(self._get_live_or_file(tx, lease_id))

    def refresh(self) -> int:
        """One scheduling pass with no request: expiries, dead holders, grants. Returns leases changed."""
        with self._locked() as tx:
            self._settle(tx)
            self._grant(tx)
            return len(tx.touched)

    def renew(self, lease_id: str, ttl: float | str | None = None) -> Lease:
        """Push expires_at to now + TTL. Raises LeaseLost when the lease already ended."""
        ttl_s = parse_duration(ttl, "ttl", above_zero=True, at_most=MAX_TTL)
        with self._locked() as tx:
            self._settle(tx)
            lease = self._get_live_or_file(tx, lease_id)
            state = lease["state"]
            if state == "waiting":
                if ttl_s:
                    lease["ttl_seconds"] = ttl_s
                    tx.event(lease, "renewed", LeaseState.WAITING, f"TTL set to {ttl_s:g}s while waiting")
                self._grant(tx)
                return dict(lease)
            if state != "granted":
                raise LeaseLost(f"lease {lease_id} is {state}: {lease.get('reason', '')}; stop using {', '.join(lease.get('items') or []) or 'its items'}")
            if ttl_s:
                lease["ttl_seconds"] = ttl_s
            lease["renewed_at"] = iso(tx.now)
            lease["expires_at"] = iso(tx.now + lease["ttl_seconds"])
            tx.event(lease, "renewed", LeaseState.GRANTED, f"renewed until {lease['expires_at']}")
            self._grant(tx)
            return dict(lease)

    def release(self, lease_id: str, *, force: bool = False, reason: str | None = None) -> Lease:
        """Give a granted lease back (or withdraw a waiting one). Someone else's needs force + reason."""
        reason = said(reason)
        if force and not (reason or "").strip():
            raise BadInput("`force` needs a `reason` saying why (it is recorded with your name)", argument="reason", related="force")
        with self._locked() as tx:
            self._settle(tx)
            lease = self._get_live_or_file(tx, lease_id)
            if LeaseState(lease["state"]).is_terminal():
                return dict(lease)
            mine = owned_by_me(lease["owner"])
            if not mine and not force:
                raise BadInput(
                    f"lease {lease_id} belongs to {lease['owner']['user']}@{lease['owner']['host']}; "
                    "to take it back give `force` and a `reason` saying why",
                    argument="force",
                    related="reason",
                )
            why = f"force-released by {tx.by}: {reason}" if force else (reason or f"released by {tx.by}")
            if lease["state"] == "waiting":
                self._end(tx, lease, LeaseState.CANCELLED, "cancelled", why)
            else:
                self._end(tx, lease, LeaseState.RELEASED, "released", why)
            self._grant(tx)
            return dict(lease)

    def cancel(self, lease_id: str, reason: str | None = None) -> Lease:
        """Withdraw a waiting request."""
        reason = said(reason)
        with self._locked() as tx:
            self._settle(tx)
            lease = self._get_live_or_file(tx, lease_id)
            if lease["state"] == "granted":
                raise BadInput(f"lease {lease_id} is granted, not waiting: release it instead", next_steps=[step(Action.RELEASE, lease_id=lease_id)])
            if lease["state"] != "waiting":
                return dict(lease)
            self._end(tx, lease, LeaseState.CANCELLED, "cancelled", reason or f"cancelled by {tx.by}")
            self._grant(tx)
            return dict(lease)

    def revoke(self, lease_id: str, reason: str) -> Lease:
        """An admin takes a lease away; the holder's next renew raises LeaseLost."""
        reason = said(reason) or ""
        if not (reason or "").strip():
            raise BadInput("revoking needs a `reason` saying why (it is recorded with your name)", argument="reason")
        with self._locked() as tx:
            self._settle(tx)
            lease = self._get_live_or_file(tx, lease_id)
            if lease["state"] == "waiting":
                self._end(tx, lease, LeaseState.CANCELLED, "cancelled", f"revoked while waiting by {tx.by}: {reason}")
            elif lease["state"] == "granted":
                self._end(tx, lease, LeaseState.REVOKED, "revoked", f"revoked by {tx.by}: {reason}")
            self._grant(tx)
            return dict(lease)

    # ------------------------------------------------------------------ inventory

    def define(self, items: list[dict[str, Any]], source: str | None = None) -> dict[str, Any]:
        """Replace the inventory; health and drain set at run time survive for ids that stay."""
        with self._locked() as tx:
            old = {it["id"]: it for it in tx.items()}
            held = self._held(tx)
            gone = sorted(held - {it["id"] for it in items})
            if gone:
                raise BadInput(f"define: item(s) {', '.join(gone)} are held by a lease; release or revoke it first")
            now = iso(tx.now)
            out = []
            for it in items:
                prev = old.get(it["id"])
                entry = {"id": it["id"], "pool": it["pool"], "labels": dict(it.get("labels") or {}), "host": it.get("host"),
                         "health": str(it.get("health") or "good"), "health_by": tx.by, "health_reason": "defined", "health_at": now,
                         "drained": False, "drain_by": None, "drain_reason": None, "drain_at": None}  # fmt: skip
                if prev is not None:
                    for key in ("health", "health_by", "health_reason", "health_at", "drained", "drain_by", "drain_reason", "drain_at"):
                        entry[key] = prev.get(key)
                out.append(entry)
            tx.inventory = {"schema_version": 1, "source": source, "defined_at": now, "defined_by": tx.by, "items": out}
            tx.inventory_changed = True
            self._settle(tx)
            self._grant(tx)
            return tx.inventory

    def _item(self, tx: Pass, item_id: str) -> dict[str, Any]:
        """The item to change, in the pass's own copy of the inventory."""
        for n, it in enumerate(tx.items()):
            if it["id"] == item_id:
                return tx.own_inventory()["items"][n]
        raise NotFound(f"item {item_id!r}: not in the inventory", next_steps=[step(Action.LEASES_LIST)])

    def set_health(self, item_id: str, health: str, reason: str) -> dict[str, Any]:
        reason = said(reason) or ""
        try:
            value = Health(health).value
        except ValueError:
            raise BadInput(f"`health` {health!r}: expected one of {', '.join(h.value for h in Health)}", argument="health") from None
        if not (reason or "").strip():
            raise BadInput("setting health needs a `reason` saying why", argument="reason")
        with self._locked() as tx:
            it = self._item(tx, item_id)
            it.update(health=value, health_by=tx.by, health_reason=reason, health_at=iso(tx.now))
            tx.inventory_changed = True
            self._settle(tx)
            self._grant(tx)
            return dict(it)

    def drain(self, item_id: str, reason: str, undo: bool = False) -> dict[str, Any]:
        reason = said(reason) or ""
        if not undo and not (reason or "").strip():
            raise BadInput("draining needs a `reason` saying why", argument="reason")
        with self._locked() as tx:
            it = self._item(tx, item_id)
            it.update(drained=not undo, drain_by=tx.by, drain_reason=reason or "undrained", drain_at=iso(tx.now))
            tx.inventory_changed = True
            self._settle(tx)
            self._grant(tx)
            return dict(it)
