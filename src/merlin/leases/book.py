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

Every write is atomic (temp file + rename): a reader sees the old file or the
new one, never half, whatever gets killed. ``MERLIN_LEASE_FSYNC=1`` also
fsyncs each write (survives a power cut; ~7 ms per write on a VM disk).

``.flushed`` marks the last pass whose outbox is written (the next pass skips
the repair reads), and a waiter sleeps on a doorbell that the granting pass
rings (:mod:`merlin.leases.doorbell`) instead of polling.

A pass: take the lock, load, finish the previous outbox if needed, settle
(expire leases past TTL + skew, release leases of holders dead on this host,
cancel waiting requests of dead processes), apply the operation, grant by
:func:`merlin.leases.policy.schedule`, commit, flush.
"""

from __future__ import annotations

import functools
import getpass
import json
import os
import re
import secrets
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from merlin.durations import parse_duration
from merlin.errors import BadInput, Blocked, MerlinError, NotFound
from merlin.leases import policy
from merlin.leases.locks import book_lock, close_quietly
from merlin.leases.states import Health, LeaseState, check_lease_transition
from merlin.ledger.paths import Layout, validate_lease_id
from merlin.nextsteps import Action, step

Lease = dict[str, Any]

SKEW_ENV = "MERLIN_LEASE_SKEW"
FSYNC_ENV = "MERLIN_LEASE_FSYNC"
#: Clock-skew margin (seconds): holders treat a lease as ending this much before expires_at,
#: and the book reclaims it only this much after. Hosts sharing a state root must agree within it.
DEFAULT_SKEW = 5.0
DEFAULT_TTL = 900.0
#: compact book.jsonl past this size
JOURNAL_MAX = 4 << 20
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


def iso(ts: float) -> str:
    """Fixed-width UTC ISO 8601 (sorts as text, parses as datetime)."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def parse_ts(text: str | None) -> float | None:
    return datetime.fromisoformat(text).timestamp() if text else None


_POOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


def parse_bundle(text: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """``POOL[:COUNT][,k=v...]`` -> a bundle; ``labels`` (from --label) apply as well."""
    head, *pairs = [p.strip() for p in str(text).split(",")]
    pool, sep, count_s = head.rpartition(":") if re.search(r":\d+$", head) else (head, "", "")
    if not _POOL.match(pool or ""):
        raise BadInput(f"{text!r}: expected POOL[:COUNT][,k=v...], e.g. firesim_fpga:1 or board:2,board=u250")
    count = int(count_s) if sep else 1
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


def new_lease(lease_id: str, owner: dict[str, Any], bundles: list[dict[str, Any]], priority: int, ttl: float, now: float) -> Lease:
    """A lease before its first event (the shape of LeaseRecord's JSON)."""
    return {
        "schema_version": 1, "lease_id": lease_id, "state": None, "owner": owner, "bundles": bundles,
        "items": [], "tokens": {}, "priority": priority, "ttl_seconds": ttl,
        "created_at": iso(now), "granted_at": None, "renewed_at": None, "expires_at": None,
        "ended_at": None, "reason": "", "changes": [], "rev": 0, "seq": 0,
    }  # fmt: skip


def whoami() -> str:
    return f"{_user()}@{socket.gethostname()}"


def _user() -> str:
    """getpass.getuser(), whose passwd lookup (~40 ms per thousand calls) is done once per uid."""
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        user = os.environ.get(name)
        if user:
            return user
    return _passwd_name(os.getuid())


@functools.cache
def _passwd_name(uid: int) -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers)
        return str(uid)


def process_start(pid: int) -> float | None:
    from merlin.leases.procinfo import start_time

    return start_time(pid)


class _Liveness:
    """Is a recorded holder process still the one that asked? (a signal-0 probe every pass; its
    start time and zombie state, one /proc read, once a second per process)."""

    def __init__(self) -> None:
        from merlin.leases.procinfo import look

        self._look = look
        self._host = socket.gethostname()
        self._seen: dict[tuple[int, float], float] = {}

    def __call__(self, owner: dict[str, Any], now: float) -> bool:
        pid, start = owner.get("pid"), owner.get("pid_start")
        if pid is None or owner.get("host") != self._host:
            return True  # not ours to judge: TTL decides
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
        if found is None or (start is not None and abs(found[0] - start) > 1.0) or found[1]:
            return False  # gone, the pid was reused by another process, or dead and not yet reaped
        self._seen[key] = now
        return True


class _Pass:
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


class LeaseBook:
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
        self.layout = root if isinstance(root, Layout) else Layout(Path(root))
        self.dir = self.layout.resources
        self.lock_kind = lock_kind
        self.clock = clock
        self.alive = alive or _Liveness()
        self.skew = float(os.environ.get(SKEW_ENV, DEFAULT_SKEW)) if skew is None else float(skew)
        self.fsync = (os.environ.get(FSYNC_ENV, "") not in ("", "0")) if fsync is None else fsync
        self.lock_timeout = lock_timeout
        self._kind: str | None = None
        self._flock: Any = None
        self._inv_cache: tuple[Any, Any] | None = None
        self._host = socket.gethostname()
        from merlin.atomic import file_mode

        self._mode = file_mode()
        self._line_hint = 65536  # bytes read from the journal's end: twice the last state line
        # the hot path works on plain strings: pathlib costs more than the syscalls it names
        self._dir_s = str(self.dir)
        self._book_s = str(self.layout.book)
        self._inv_s = str(self.layout.inventory)
        self._leases_s = str(self.layout.leases)
        self._flushed: tuple[int, int] | None = None  # (pid, fd) of resources/.flushed
        self._own_start: tuple[int, float | None] | None = None
        self._ringer: Any = None

    # ------------------------------------------------------------------ files

    def _write(self, path: str | Path, data: bytes, *, replace: bool = True) -> None:
        """Atomic write: temp file, then rename. Without fsync, a record is unlinked before the
        rename: ext4 flushes data synchronously on a rename *over* a file (auto_da_alloc, ~1 ms),
        and a reader that meets the microsecond gap retries (see _read_json)."""
        path = str(path)
        head, _, name = path.rpartition("/")
        tmp = f"{head}/.{name}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self._mode)
        try:
            os.fchmod(fd, self._mode)  # $MERLIN_STATE_UMASK, not the process umask (a lab's shared group)
            os.write(fd, data)
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        if not replace and not self.fsync:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        os.replace(tmp, path)

    def _append(self, path: str, lines: list[dict[str, Any]]) -> None:
        data = b"".join(orjson.dumps(e, option=orjson.OPT_APPEND_NEWLINE) for e in lines)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, self._mode)
        try:
            os.write(fd, data)
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)

    def _read_json(self, path: str | Path, retries: int = 3) -> Any:
        for attempt in range(retries + 1):
            try:
                with open(path, "rb") as handle:
                    return orjson.loads(handle.read())
            except FileNotFoundError:
                if attempt == retries:
                    return None
                time.sleep(0.0002 * (attempt + 1))  # a record being replaced (unlink + rename)
            except (OSError, ValueError) as exc:
                raise BadInput(f"{path}: unreadable lease file ({exc}); restore it from a backup or remove it") from None
        return None

    def _record_path(self, lease_id: str) -> str:
        """A lease's record (the id comes from the book itself, already validated)."""
        return f"{self._leases_s}/{lease_id}.json"

    def _empty_state(self) -> dict[str, Any]:
        return {"schema_version": 1, "seq": 0, "fences": {}, "live": {}, "outbox": []}

    def _load(self) -> dict[str, Any]:
        """The last whole line of the journal (a line cut short by SIGKILL does not parse and is skipped)."""
        try:
            with open(self._book_s, "rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                chunk = self._line_hint
                while True:
                    start = max(0, size - chunk)
                    handle.seek(start)
                    lines = handle.read().split(b"\n")
                    # lines[0] may be cut by the seek unless we read from the start
                    for line in reversed(lines[1:] if start else lines):
                        if line.strip():
                            try:
                                state = orjson.loads(line)
                            except ValueError:
                                continue
                            self._line_hint = max(4096, 2 * len(line))
                            return state
                    if start == 0:
                        return self._empty_state()
                    chunk *= 4
        except FileNotFoundError:
            return self._empty_state()

    def _commit(self, state: dict[str, Any]) -> None:
        """Append the new state as one line; compact the journal when it grows past JOURNAL_MAX."""
        data = b"\n" + orjson.dumps(state, option=orjson.OPT_APPEND_NEWLINE)
        path = self._book_s
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, self._mode)
        try:
            size = os.fstat(fd).st_size
            if size > JOURNAL_MAX:
                os.close(fd)
                fd = -1
                self._write(path, data)  # a fresh journal holding only the current state
                return
            os.write(fd, data)
            if self.fsync:
                os.fsync(fd)
        finally:
            if fd >= 0:
                os.close(fd)

    def load_inventory(self) -> dict[str, Any] | None:
        return self._read_json(self._inv_s)

    def _last_seq(self, path: str) -> int:
        try:
            with open(path, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                size = handle.tell()
                handle.seek(max(0, size - 65536))
                tail = handle.read().splitlines()
        except FileNotFoundError:
            return 0
        for line in reversed(tail):
            try:
                return int(orjson.loads(line)["seq"])
            except (ValueError, KeyError, TypeError):
                continue
        return 0

    def _flush(self, outbox: list[dict[str, Any]], repair: bool) -> None:
        """Write each changed lease's events, then its record (a repair skips what is already there)."""
        for entry in outbox:
            lease, events = entry["lease"], entry["events"]
            record_path = self._record_path(lease["lease_id"])
            events_path = record_path[: -len(".json")] + ".events.jsonl"
            if repair:
                on_disk = self._read_json(record_path)
                if on_disk is not None and on_disk.get("rev", 0) >= lease["rev"]:
                    continue
                last = self._last_seq(events_path)
                events = [e for e in events if e["seq"] > last]
            if events:
                try:
                    self._append(events_path, events)
                except FileNotFoundError:
                    from merlin.atomic import make_dir

                    make_dir(self.layout.leases)
                    self._append(events_path, events)
            self._write(record_path, orjson.dumps(lease, option=orjson.OPT_APPEND_NEWLINE), replace=False)

    # The flush mark: resources/.flushed holds "<seq> <nonce>" of the last pass whose outbox is
    # on disk, so the next pass skips re-reading that outbox's files. A stale or missing mark only
    # costs a repair (the safe direction); with MERLIN_LEASE_FSYNC=1 every pass repairs, since
    # the unsynced mark could outlive a power cut that the records did not.

    def _flushed_fd(self) -> int:
        pid = os.getpid()
        if self._flushed is None or self._flushed[0] != pid:  # a forked child opens its own
            import weakref

            fd = os.open(f"{self._dir_s}/.flushed", os.O_RDWR | os.O_CREAT, self._mode)
            weakref.finalize(self, close_quietly, fd)  # books are cheap to build: never leak their descriptor
            self._flushed = (pid, fd)
        return self._flushed[1]

    def _outbox_flushed(self, state: dict[str, Any]) -> bool:
        if self.fsync:
            return False
        mark = os.pread(self._flushed_fd(), 64, 0).split()
        return len(mark) == 2 and mark[0] == str(state["seq"]).encode() and mark[1] == str(state.get("nonce", "")).encode()

    def _mark_flushed(self, state: dict[str, Any]) -> None:
        if not self.fsync:
            os.pwrite(self._flushed_fd(), f"{state['seq']} {state.get('nonce', '')}".ljust(63).encode() + b"\n", 0)

    def _inventory_cached(self) -> dict[str, Any] | None:
        """inventory.json, parsed again only when its (mtime, size, inode) changes; shared, read-only
        (a pass that changes the inventory takes its own copy: :meth:`_Pass.own_inventory`)."""
        try:
            st = os.stat(self._inv_s)
        except FileNotFoundError:
            return None
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if self._inv_cache is None or self._inv_cache[0] != key:
            self._inv_cache = (key, self.load_inventory())
        return self._inv_cache[1]

    def _own_pid_start(self, pid: int) -> float | None:
        """The start time of ``pid``; this process's own is looked up once (psutil is not free)."""
        if pid != os.getpid():
            return process_start(pid)
        if self._own_start is None or self._own_start[0] != pid:
            self._own_start = (pid, process_start(pid))
        return self._own_start[1]

    @contextmanager
    def _locked(self, by: str | None = None) -> Iterator[_Pass]:
        if self._kind is None:
            from merlin.atomic import make_dir
            from merlin.leases.locks import choose_lock_kind

            make_dir(self.layout.leases)
            self._kind = choose_lock_kind(self.dir, self.lock_kind)
            if self._kind == "flock":
                from merlin.leases.locks import Flock

                self._flock = Flock(self.dir / ".book.lock")
        with book_lock(self.dir, kind=self._kind, timeout=self.lock_timeout, flock=self._flock):
            state = self._load()
            if state.get("outbox") and not self._outbox_flushed(state):
                self._flush(state["outbox"], repair=True)
                self._mark_flushed(state)
            tx = _Pass(state, self._inventory_cached(), self.clock(), by or f"{_user()}@{self._host}")
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

    def _finish(self, tx: _Pass, state: dict[str, Any]) -> None:
        """Commit the pass (one journal line), then write its records and events."""
        if tx.inventory_changed:
            self._write(self._inv_s, (json.dumps(tx.inventory, indent=2, sort_keys=True) + "\n").encode("utf-8"))
        if tx.touched:
            state["seq"] = tx.seq
            state["nonce"] = secrets.token_hex(4)
            state["outbox"] = [{"lease": lease, "events": tx.events.get(lid, [])} for lid, lease in tx.touched.items()]
            self._commit(state)
            self._flush(state["outbox"], repair=False)
            self._mark_flushed(state)
            self._ring(tx)

    def _ring(self, tx: _Pass) -> None:
        """Wake whoever on this host waits for a lease this pass granted (its record is on disk by now).
        Any process may wait for a lease, not only its owner: every grant rings (a ring nobody
        hears costs one refused sendto)."""
        for lease in tx.granted:
            if self._ringer is None:
                from merlin.leases.doorbell import Ringer

                self._ringer = Ringer(self._dir_s)
            self._ringer.ring(lease["lease_id"])

    # ------------------------------------------------------------ settle + grant

    def _settle(self, tx: _Pass) -> None:
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

    def _end(self, tx: _Pass, lease: Lease, to: LeaseState, event: str, reason: str, by: str | None = None) -> None:
        lease["ended_at"] = iso(tx.now)
        tx.event(lease, event, to, reason, by)
        del tx.state["live"][lease["lease_id"]]

    def _held(self, tx: _Pass) -> set[str]:
        return {i for lease in tx.state["live"].values() if lease["state"] == "granted" for i in lease["items"]}

    def _grant(self, tx: _Pass) -> None:
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

    def _get_live_or_file(self, tx: _Pass, lease_id: str) -> Lease:
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
        parsed = [parse_bundle(b) if isinstance(b, str) else dict(b, labels=dict(b.get("labels") or {}), count=int(b.get("count", 1))) for b in bundles]
        if not parsed:
            raise BadInput("reserve: name at least one POOL[:COUNT]")
        ttl_s = parse_duration(ttl, "ttl", above_zero=True, at_most=MAX_TTL)
        lid = validate_lease_id(lease_id) if lease_id else new_lease_id()
        owner = {"user": _user(), "host": self._host, "pid": pid, "pid_start": self._own_pid_start(pid) if pid else None, "run_id": run_id}
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
        return self.wait(lid, timeout=timeout)

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
        deadline = None if timeout is None else time.monotonic() + timeout
        last_pass = time.monotonic()
        delay = 0.0005
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
                time.sleep(max(0.0, min(left, delay)))
                delay = min(delay * 1.5, POLL_SLICE)

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
        if force and not (reason or "").strip():
            raise BadInput("release --force needs --reason WHY (it is recorded with your name)")
        with self._locked() as tx:
            self._settle(tx)
            lease = self._get_live_or_file(tx, lease_id)
            if LeaseState(lease["state"]).is_terminal():
                return dict(lease)
            mine = lease["owner"]["user"] == _user()
            if not mine and not force:
                raise BadInput(
                    f"lease {lease_id} belongs to {lease['owner']['user']}@{lease['owner']['host']}; "
                    "to take it back say `--force --reason WHY`"
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
        if not (reason or "").strip():
            raise BadInput("revoke needs --reason WHY (it is recorded with your name)")
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

    def _item(self, tx: _Pass, item_id: str) -> dict[str, Any]:
        """The item to change, in the pass's own copy of the inventory."""
        for n, it in enumerate(tx.items()):
            if it["id"] == item_id:
                return tx.own_inventory()["items"][n]
        raise NotFound(f"item {item_id!r}: not in the inventory", next_steps=[step(Action.LEASES_LIST)])

    def set_health(self, item_id: str, health: str, reason: str) -> dict[str, Any]:
        try:
            value = Health(health).value
        except ValueError:
            raise BadInput(f"health {health!r}: expected one of {', '.join(h.value for h in Health)}") from None
        if not (reason or "").strip():
            raise BadInput("health needs --reason WHY")
        with self._locked() as tx:
            it = self._item(tx, item_id)
            it.update(health=value, health_by=tx.by, health_reason=reason, health_at=iso(tx.now))
            tx.inventory_changed = True
            self._settle(tx)
            self._grant(tx)
            return dict(it)

    def drain(self, item_id: str, reason: str, undo: bool = False) -> dict[str, Any]:
        if not undo and not (reason or "").strip():
            raise BadInput("drain needs --reason WHY")
        with self._locked() as tx:
            it = self._item(tx, item_id)
            it.update(drained=not undo, drain_by=tx.by, drain_reason=reason or "undrained", drain_at=iso(tx.now))
            tx.inventory_changed = True
            self._settle(tx)
            self._grant(tx)
            return dict(it)

    # --------------------------------------------------------------------- reads

    def snapshot(self) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """(book state, inventory) read without the lock: consistent per file, for listings."""
        return self._load(), self.load_inventory()

    def show(self, lease_id: str) -> Lease:
        validate_lease_id(lease_id)
        state = self._load()
        lease = state["live"].get(lease_id)
        if lease is None:
            lease = self._read_json(self.layout.lease(lease_id))
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
        if self.layout.leases.is_dir():
            for path in self.layout.leases.glob("*.json"):
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


def _describe(bundles: Sequence[dict[str, Any]]) -> str:
    return " + ".join(f"{b['pool']}:{b['count']}" + "".join(f",{k}={v}" for k, v in sorted(b["labels"].items())) for b in bundles)
