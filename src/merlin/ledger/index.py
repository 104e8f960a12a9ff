"""A rebuildable cache of run summaries, so `jobs list` need not parse every record.

The records under ``runs/`` stay the truth. The index (``index/runs.json`` under
the state root) only says, for every run, its ``created_at``, id and status,
newest first: enough to count, filter by status and pick the newest N. It is a
JSON header line and then one ``created_at<TAB>run_id<TAB>status`` line per run
(splitting 50,000 lines costs milliseconds; parsing them as JSON, ~0.1 s). The rows
shown are then read from their own records, so what a listing prints is always
what the records say.

Keeping it fresh without a stat per record (50,000 stats cost ~0.2 s):

* every record write appends its run id to ``index/changed`` (one short
  ``O_APPEND`` line, after the record is in place); the index remembers how
  much of that journal it has read, and re-reads only those runs;
* the ``runs/`` directory's mtime moves when a run directory is created or
  removed; then the names are listed again (names only, no stat) and the
  differences applied.

A missing, unreadable or other-version index, a journal that was replaced, or
an index from an earlier boot (the journal is not fsynced) means a full rebuild. The index is written by atomic replace, so a SIGKILL
mid-write leaves the old index (or none), never half of one. A record edited by
hand, outside merlin, is seen when its run is shown; its place in the order is
corrected at the next full rebuild (delete ``index/`` to force one).

On a full disk or quota the journal line may not be written, or only part of it.
The record is already in place, so that is no error of the write (no exit 75):
the journal and the index are removed (which needs no space) and the next listing
rebuilds from the records. A journal line that names no run (a torn tail that the
next append glued itself to) also means a rebuild, never a run id taken from it.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, overload

from merlin.atomic import atomic_write_bytes, file_mode, make_dir, open_fd
from merlin.ledger.paths import _RUN_ID, Layout

VERSION = 1
RECORD = Layout.RECORD_NAME
# Past this size the journal is started again (with a full rebuild, which reads everything anyway).
JOURNAL_MAX = 1 << 20
_CHUNK = 1 << 16

Row = str  # "created_at\trun_id\tstatus": sorting these strings sorts by (created_at, run_id), as a scan does
Entry = tuple[dict[str, Any], bytes]


def note_changed(root: Path, run_id: str) -> None:
    """Tell the index that ``run_id``'s record changed (called after the write, under the run's lock).

    One O_APPEND write and no fsync: it survives any process crash, and after
    an OS crash the index is rebuilt anyway (it remembers the boot it was made in).

    Never an error: the record is already in place, so a full disk or quota
    (ENOSPC, EDQUOT) here is not the caller's failure. A line that could not be
    written whole (none, or a short write that leaves a torn tail) drops the
    journal and the index instead, which needs no space; the next listing rebuilds
    from the records, which are the truth.
    """
    from merlin.errors import MerlinError

    path = Layout(root).index_journal
    data = (run_id + "\n").encode("utf-8")
    try:
        _append(path, data)
    except (OSError, MerlinError):  # MerlinError: NoSpace from creating index/
        invalidate(root)


def _append(path: Path, data: bytes) -> None:
    try:
        fd = open_fd(path, os.O_WRONLY | os.O_APPEND, file_mode())
    except FileNotFoundError:
        make_dir(path.parent, private=True)
        fd = open_fd(path, os.O_WRONLY | os.O_APPEND, file_mode())
    try:
        written = os.write(fd, data)
        if written != len(data):  # a regular file writes short only when it is out of space
            raise OSError(errno.ENOSPC, f"short write ({written} of {len(data)} bytes)", str(path))
    finally:
        os.close(fd)


def invalidate(root: Path) -> None:
    """Make the next listing rebuild the index from the records: remove the journal
    (its inode is part of the index's header, so even a listing saving right now
    saves an index the next one rejects) and the index itself."""
    layout = Layout(root)
    for path in (layout.index_journal, layout.index_file):
        try:
            os.unlink(path)
        except OSError:
            pass


def _boot_id() -> str:
    """This boot's id (Linux); "" elsewhere, where an OS crash is not detected."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def _read_bytes(runs_dir: str, run_id: str) -> bytes:
    """The record's bytes (OSError if it is gone). os.open/os.read: a third cheaper
    than open() for 50,000 small files; a short first read is the end of the file."""
    fd = os.open(os.path.join(runs_dir, run_id, RECORD), os.O_RDONLY)
    try:
        raw = os.read(fd, _CHUNK)
        if len(raw) < _CHUNK:
            return raw
        chunks = [raw]
        while chunk := os.read(fd, _CHUNK):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _read_record(runs_dir: str, run_id: str) -> Entry | None:
    try:
        raw = _read_bytes(runs_dir, run_id)
        data = json.loads(raw)
    except (OSError, ValueError):
        return None
    return (data, raw) if isinstance(data, dict) else None


def _looks_whole(raw: bytes) -> bool:
    """One JSON object from its first byte to its last: what merlin writes (atomic
    replace, never half a record). An emptied or cut file fails this and is parsed."""
    body = raw.strip()
    return body[:1] == b"{" and body[-1:] == b"}"


def _torn(line: str, by_id: dict[str, Row], runs_dir: str) -> bool:
    """A journal line that names no run: not a run id, or an id neither indexed nor on
    disk (the torn tail of a short write, with the next writer's line glued to it)."""
    if not _RUN_ID.match(line):
        return True
    return line not in by_id and not os.path.isdir(os.path.join(runs_dir, line))


def _row(run_id: str, data: dict[str, Any]) -> Row:
    fields = (data.get("created_at") or "", data.get("run_id") or run_id, data.get("status") or "")
    return "\t".join(str(f).replace("\t", " ").replace("\n", " ") for f in fields)


def row_id(row: Row) -> str:
    return row.split("\t", 2)[1]


def row_status(row: Row) -> str:
    return row.rsplit("\t", 1)[-1]


class RunIndex:
    """The index of one state root: load, bring up to date, save."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        layout = Layout(self.root)
        self.runs_dir = str(layout.runs)
        self.dir = layout.index
        self.path = layout.index_file
        self.journal = layout.index_journal
        #: run directories seen without a readable record (half-created, or being created now)
        self.unrecorded: set[str] = set()

    # -------------------------------------------------------------- reading

    def _load(self) -> tuple[dict[str, Any], list[Row]] | None:
        try:
            text = self.path.read_bytes().decode("utf-8")
            head, _, body = text.partition("\n")
            header = json.loads(head)
        except (OSError, ValueError):
            return None
        if not isinstance(header, dict) or header.get("version") != VERSION or not body.endswith("\n") and body:
            return None
        rows = body.split("\n")
        rows.pop()  # after the last newline
        if len(rows) != header.get("count"):
            return None
        return header, rows

    def _journal_state(self) -> tuple[int, int]:
        try:
            st = os.stat(self.journal)
        except OSError:  # none yet, or index/ is unusable (then nothing is saved either)
            return (0, 0)
        return (st.st_ino, st.st_size)

    def _runs_mtime(self) -> int:
        try:
            return os.stat(self.runs_dir).st_mtime_ns
        except FileNotFoundError:
            return 0

    def _names(self) -> set[str]:
        try:
            return {n for n in os.listdir(self.runs_dir) if not n.startswith(".")}
        except FileNotFoundError:
            return set()

    def rows(self) -> list[Row]:
        """Every run's [created_at, run_id, status], newest first, brought up to date."""
        # Read the change signals before the data they guard: a write that lands
        # meanwhile is seen now or at the next listing, never lost.
        journal_ino, journal_size = self._journal_state()
        runs_mtime = self._runs_mtime()
        loaded = self._load()
        if loaded is None:
            return self.rebuild()
        data, rows = loaded
        self.unrecorded = set(data.get("unrecorded") or [])
        if data.get("journal_ino") != journal_ino or data.get("journal_offset", 0) > journal_size or data.get("boot") != _boot_id():
            return self.rebuild()
        changed: set[str] = set()
        offset = int(data.get("journal_offset", 0))
        if journal_size > offset:
            with open(self.journal, "rb") as fh:
                fh.seek(offset)
                chunk = fh.read(journal_size - offset)
            # only whole lines: a line being appended right now is read next time
            whole = chunk.rfind(b"\n") + 1
            changed.update(line for line in chunk[:whole].decode("utf-8", "replace").split("\n") if line)
            journal_size = offset + whole
        names_changed = data.get("runs_mtime_ns") != runs_mtime
        if not changed and not names_changed:
            return rows
        by_id = {row_id(r): r for r in rows}
        if any(_torn(line, by_id, self.runs_dir) for line in changed):
            return self.rebuild()  # a torn line (a writer ran out of space mid-line) is never taken as a run id
        if names_changed:
            names = self._names()
            for gone in set(by_id) - names:
                del by_id[gone]
            self.unrecorded &= names
            changed.update(names - set(by_id))
        for run_id in changed:
            entry = _read_record(self.runs_dir, run_id)
            if entry is None:
                by_id.pop(run_id, None)
                if os.path.isdir(os.path.join(self.runs_dir, run_id)):
                    self.unrecorded.add(run_id)  # a directory without a readable record: debris, or being created
            else:
                by_id[run_id] = _row(run_id, entry[0])
                self.unrecorded.discard(run_id)
        rows = sorted(by_id.values(), reverse=True)
        if journal_size >= JOURNAL_MAX:
            return self.rebuild()
        self._save(rows, runs_mtime, journal_ino, journal_size)
        return rows

    def rebuild(self) -> list[Row]:
        """Read every record again and write a fresh index (starting a long journal again)."""
        if self._journal_state()[1] >= JOURNAL_MAX:
            try:  # appends racing with this land in the old file; the full read below covers them
                os.replace(self.journal, self.dir / "changed.old")
            except FileNotFoundError:
                pass
        journal_ino, journal_size = self._journal_state()
        runs_mtime = self._runs_mtime()
        rows = []
        self.unrecorded = set()
        for run_id in self._names():
            entry = _read_record(self.runs_dir, run_id)
            if entry is not None:
                rows.append(_row(run_id, entry[0]))
            else:
                self.unrecorded.add(run_id)
        rows.sort(reverse=True)
        self._save(rows, runs_mtime, journal_ino, journal_size)
        return rows

    def _save(self, rows: list[Row], runs_mtime: int, journal_ino: int, journal_offset: int) -> None:
        header = {
            "version": VERSION, "boot": _boot_id(), "runs_mtime_ns": runs_mtime, "journal_ino": journal_ino, "journal_offset": journal_offset,
            "count": len(rows), "unrecorded": sorted(self.unrecorded),
        }
        text = json.dumps(header, separators=(",", ":")) + "\n" + "".join(r + "\n" for r in rows)
        from merlin.errors import MerlinError

        try:
            make_dir(self.dir, private=True)
            atomic_write_bytes(self.path, text.encode("utf-8"))
        except (OSError, MerlinError):
            pass  # a read-only or full state root still lists, just without the cache (NoSpace is a MerlinError)

    def unrecorded_ids(self) -> list[str]:
        """Run directories the last listing saw without a record (the saved header only: cheap)."""
        try:
            with open(self.path, "rb") as fh:
                header = json.loads(fh.readline() or b"{}")
        except (OSError, ValueError):
            return []
        return list(header.get("unrecorded") or []) if isinstance(header, dict) else []

    # -------------------------------------------------------------- listing

    def entries(self, status: Iterable[str] | None = None) -> RunEntries:
        wanted = set(status) if status else None
        rows = self.rows()
        if wanted is not None:
            rows = [r for r in rows if row_status(r) in wanted]
        return RunEntries(self.runs_dir, rows, wanted)


class RunEntries(Sequence[Entry]):
    """(parsed record, its bytes) of every listed run, newest first, read on access.

    ``len()`` is the count from the index; slicing reads only the records in
    the slice (a record that vanished or no longer matches the status filter
    since the index was read is left out)."""

    def __init__(self, runs_dir: str, rows: list[Row], wanted: set[str] | None) -> None:
        self._runs_dir = runs_dir
        self._rows = rows
        self._wanted = wanted

    def __len__(self) -> int:
        return len(self._rows)

    def _read(self, rows: Iterable[Row]) -> Iterator[Entry]:
        for row in rows:
            entry = _read_record(self._runs_dir, row_id(row))
            if entry is not None and (self._wanted is None or entry[0].get("status") in self._wanted):
                yield entry

    @overload
    def __getitem__(self, i: int) -> Entry: ...
    @overload
    def __getitem__(self, i: slice) -> list[Entry]: ...
    def __getitem__(self, i: int | slice) -> Entry | list[Entry]:
        if isinstance(i, slice):
            return list(self._read(self._rows[i]))
        found = list(self._read([self._rows[i]]))
        if not found:
            raise IndexError(f"run {row_id(self._rows[i])} is no longer listed")
        return found[0]

    def __iter__(self) -> Iterator[Entry]:
        return self._read(self._rows)

    def record_bytes(self, limit: int = 0) -> Iterator[bytes]:
        """The stored bytes of the newest ``limit`` (0: all) listed records, as
        :meth:`__getitem__` would give them, without parsing each: ``--json`` of
        50,000 runs spent a third of its time in ``json.loads``. Records hold
        redacted text only (the models redact when a record is made), so their
        bytes are safe to print. With a status filter each record is parsed, to
        check its status now rather than the index's."""
        rows = self._rows[:limit] if limit else self._rows
        if self._wanted is not None:
            yield from (raw for _d, raw in self._read(rows))
            return
        runs_dir = self._runs_dir
        for row in rows:
            run_id = row_id(row)
            try:
                raw = _read_bytes(runs_dir, run_id)
            except OSError:
                continue
            if _looks_whole(raw):
                yield raw
            elif (entry := _read_record(runs_dir, run_id)) is not None:  # odd shape: parse, skip if broken
                yield entry[1]


def record_bytes(entries: Sequence[Entry], limit: int = 0) -> Iterator[bytes]:
    """Stored bytes of the first ``limit`` (0: all) entries of a listing, index-backed or scanned."""
    if isinstance(entries, RunEntries):
        return entries.record_bytes(limit)
    return (raw for _d, raw in (entries[:limit] if limit else entries))
