"""The lease book on disk: the journal, each lease's record and events, the inventory file.

``book.jsonl`` is the commit point of every pass: its last whole line is the
current state (a line cut short by SIGKILL does not parse and is skipped), and
the *outbox* in it (the lease records and events that pass changed) is written
to ``leases/`` right after. A pass cut short after its commit is finished by the
next one (:meth:`BookStore._flush` with ``repair``). Every path comes from
:class:`merlin.ledger.paths.Layout`, every write goes through :mod:`merlin.atomic`:
a record is replaced whole, never removed first, so a reader without the lock
finds the old record or the new one, never neither.
"""

from __future__ import annotations

import json
import os
from typing import Any

import orjson

from merlin.atomic import append_bytes, make_dir, open_fd, replace_file
from merlin.errors import BadInput
from merlin.leases.locks import close_quietly
from merlin.ledger.paths import Layout

#: compact book.jsonl past this size
JOURNAL_MAX = 4 << 20


def empty_state() -> dict[str, Any]:
    return {"schema_version": 1, "seq": 0, "fences": {}, "live": {}, "outbox": []}


class BookStore:
    """The files of one book. ``fsync``: each write is fsynced (survives a power cut)."""

    layout: Layout
    fsync: bool

    def _init_store(self, layout: Layout, fsync: bool) -> None:
        from merlin.atomic import file_mode

        self.layout = layout
        self.fsync = fsync
        self._mode = file_mode()
        self._line_hint = 65536  # bytes read from the journal's end: twice the last state line
        # the hot path works on plain strings: pathlib costs more than the syscalls it names
        self._dir_s = str(layout.resources)
        self._book_s = str(layout.book)
        self._inv_s = str(layout.inventory)
        self._flushed: tuple[int, int] | None = None  # (pid, fd) of resources/.flushed
        self._inv_cache: tuple[Any, Any] | None = None

    # ------------------------------------------------------------------ files

    def _write(self, path: str, data: bytes) -> None:
        """Replace ``path`` whole (:func:`merlin.atomic.replace_file`): readers see the old file or the new one."""
        replace_file(path, data, mode=self._mode, fsync=self.fsync)

    def _append(self, path: str, lines: list[dict[str, Any]]) -> None:
        data = b"".join(orjson.dumps(e, option=orjson.OPT_APPEND_NEWLINE) for e in lines)
        append_bytes(path, data, mode=self._mode, fsync=self.fsync)

    def _read_json(self, path: str | os.PathLike[str]) -> Any:
        """The parsed file, or None when there is none (records are replaced whole, never removed first)."""
        try:
            with open(path, "rb") as handle:
                return orjson.loads(handle.read())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise BadInput(f"{path}: unreadable lease file ({exc}); restore it from a backup or remove it") from None

    def _record_path(self, lease_id: str) -> str:
        return os.fspath(self.layout.lease(lease_id))

    def _events_path(self, lease_id: str) -> str:
        return os.fspath(self.layout.lease_events(lease_id))

    # ---------------------------------------------------------------- journal

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
                        return empty_state()
                    chunk *= 4
        except FileNotFoundError:
            return empty_state()

    def _commit(self, state: dict[str, Any]) -> None:
        """Append the new state as one line; compact the journal when it grows past JOURNAL_MAX."""
        data = b"\n" + orjson.dumps(state, option=orjson.OPT_APPEND_NEWLINE)
        try:
            size = os.stat(self._book_s).st_size
        except FileNotFoundError:
            size = 0
        if size > JOURNAL_MAX:
            self._write(self._book_s, data)  # a fresh journal holding only the current state
        else:
            append_bytes(self._book_s, data, mode=self._mode, fsync=self.fsync)

    def load_inventory(self) -> dict[str, Any] | None:
        return self._read_json(self._inv_s)

    def _write_inventory(self, inventory: dict[str, Any]) -> None:
        self._write(self._inv_s, (json.dumps(inventory, indent=2, sort_keys=True) + "\n").encode("utf-8"))

    def _inventory_cached(self) -> dict[str, Any] | None:
        """inventory.json, parsed again only when its (mtime, size, inode) changes; shared, read-only
        (a pass that changes the inventory takes its own copy: ``Pass.own_inventory``)."""
        try:
            st = os.stat(self._inv_s)
        except FileNotFoundError:
            return None
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if self._inv_cache is None or self._inv_cache[0] != key:
            self._inv_cache = (key, self.load_inventory())
        return self._inv_cache[1]

    # ----------------------------------------------------------------- outbox

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
            events_path = self._events_path(lease["lease_id"])
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
                    make_dir(self.layout.leases, private=True)
                    self._append(events_path, events)
            self._write(record_path, orjson.dumps(lease, option=orjson.OPT_APPEND_NEWLINE))

    # The flush mark: resources/.flushed holds "<seq> <nonce>" of the last pass whose outbox is
    # on disk, so the next pass skips re-reading that outbox's files. A stale or missing mark only
    # costs a repair (the safe direction); with MERLIN_LEASE_FSYNC=1 every pass repairs, since
    # the unsynced mark could outlive a power cut that the records did not. It is a hint, not
    # state: rewritten in place (one pwrite of a fixed-width line), never read by anyone else.

    def _flushed_fd(self) -> int:
        pid = os.getpid()
        if self._flushed is None or self._flushed[0] != pid:  # a forked child opens its own
            import weakref

            fd = open_fd(self.layout.book_flushed, os.O_RDWR, self._mode)
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
