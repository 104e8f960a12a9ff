"""Run summaries (the gateway's ``runs_list``), kept between calls by a long-lived control plane.

A listing of 1,000 runs must not parse 1,000 records, nor stat them (a stat
per record cost most of the time). The ledger already says which records
changed: every record write appends the run id to ``index/changed`` after the
record is in place (``merlin.ledger.index.note_changed``). So a summary is
kept until its run id shows up in that journal; each call reads only the
journal's new lines (one stat and usually one short read). A replaced or
shortened journal (the index rotates it) drops every summary. Order, count
and status filter come from the run index (``RunIndex.rows``), as for
``merlin ray jobs list``.

A record edited by hand outside merlin (no journal line) is seen when the
server restarts or the journal rotates; ``runs_status`` always reads the record.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from merlin.errors import BadInput

if TYPE_CHECKING:  # pragma: no cover
    from merlin.control.plane import Plane

#: The fields of a run in a listing, copied from its record; then ``cluster`` (the cluster's
#: name, or null) and ``attempts`` (how many). The whole record: runs_status, or runs_list full=true.
SUMMARY_FIELDS = ("run_id", "target", "workflow", "source", "engine", "status", "outcome", "message", "waiting_on", "created_at", "updated_at")


def summary(record: dict[str, Any]) -> dict[str, Any]:
    """One run's summary: flat, short values (what a table of runs shows)."""
    out = {k: record.get(k) for k in SUMMARY_FIELDS}
    cluster = record.get("cluster")
    out["cluster"] = cluster.get("name") if isinstance(cluster, dict) else cluster
    out["attempts"] = len(record.get("attempts") or [])
    return out


class RunSummaries:
    """Summaries of one state root's runs, forgotten when the ledger's change journal names them."""

    def __init__(self, root: Path) -> None:
        from merlin.ledger.paths import Layout

        self.root = Path(root)
        self._runs = str(Layout(self.root).runs)
        self._record = Layout.RECORD_NAME
        self._journal = str(Layout(self.root).index_journal)
        self._ino = -1  # nothing read yet: the first call starts at the journal's end
        self._offset = 0
        self._by_id: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()  # handlers run in worker threads, several at once

    def _forget_changed(self) -> None:
        try:
            st = os.stat(self._journal)
            ino, size = st.st_ino, st.st_size
        except FileNotFoundError:
            ino, size = 0, 0
        if ino != self._ino or size < self._offset:
            self._by_id.clear()  # a new journal: what changed before it is unknown
            self._ino, self._offset = ino, size
            return
        if size == self._offset:
            return
        with open(self._journal, "rb") as fh:
            fh.seek(self._offset)
            chunk = fh.read(size - self._offset)
        whole = chunk.rfind(b"\n") + 1  # a line being appended now is read next time
        for run_id in chunk[:whole].decode("utf-8", "replace").split("\n"):
            self._by_id.pop(run_id, None)
        self._offset += whole

    def _read(self, run_id: str) -> dict[str, Any] | None:
        try:
            with open(os.path.join(self._runs, run_id, self._record), "rb") as fh:
                data = json.loads(fh.read())
        except (OSError, ValueError):
            return None  # gone, or being created: left out of this listing
        return summary(data) if isinstance(data, dict) else None

    def listing(self, status: list[str] | None, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """(how many runs match, the newest ``limit`` of their summaries; 0: all)."""
        from merlin.ledger.index import RunIndex, row_id, row_status

        wanted = set(status or ())
        with self._lock:
            self._forget_changed()  # before the index and the records: a write meanwhile is seen next time
            rows = RunIndex(self.root).rows()
            if wanted:
                rows = [r for r in rows if row_status(r) in wanted]
            out = []
            for row in rows[:limit] if limit else rows:
                rid = row_id(row)
                got = self._by_id.get(rid)
                if got is None:
                    got = self._read(rid)
                    if got is None:
                        continue
                    self._by_id[rid] = got
                if wanted and got["status"] not in wanted:
                    continue
                out.append(got)
        return len(rows), out


def listing(cp: Plane, summaries: RunSummaries, status: Sequence[str] | None, limit: int, *, full: bool = False, refresh: bool = False) -> tuple[int, list[dict[str, Any]]]:
    """(how many runs match, the newest ``limit`` of them; 0: all): summaries kept in ``summaries``,
    or whole records as stored with ``full``; ``refresh`` asks the engines first (then reads every match)."""
    from merlin.ledger.status import RunStatus

    known = [v.value for v in RunStatus]
    bad = [x for x in status or [] if x not in known]
    if bad:
        raise BadInput(f"status {bad[0]!r}: expected one of {', '.join(known)}")
    if not (full or refresh or os.environ.get("MERLIN_RUN_INDEX", "1") == "0"):
        return summaries.listing(list(status) if status else None, limit)
    if refresh:
        from merlin.control.observe import list_entries

        entries = list_entries(cp, status, True)
    else:
        entries = cp.ledger.list_entries(status=status)
    rows = [d for d, _raw in (entries[:limit] if limit else entries)]
    return len(entries), rows if full else [summary(r) for r in rows]
