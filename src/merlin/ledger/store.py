"""The ledger: merlin's source of truth for runs, clusters and leases.

Files, not a database, so a person can open them and a crash cannot lose more
than the write in flight:

* every record write is atomic (temp file in the same directory, fsync,
  rename) and skipped when the bytes did not change, so reading never
  rewrites anything;
* every read-modify-write of a run holds that run's file lock, so concurrent
  CLIs, supervisors and Ray jobs never lose each other's updates;
* every status change passes :func:`merlin.ledger.status.check_transition`
  and appends one line to ``events.jsonl`` with its time and cause.

Listing orders and counts runs through a rebuildable index of summaries
(``ledger/index.py``) and reads the raw JSON (no pydantic) of only the rows it
shows, which keeps ``merlin ray jobs list`` fast over 50,000 runs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from merlin.atomic import append_line, atomic_write_json, dump_json, file_lock, make_dir, write_if_changed
from merlin.clock import utcnow
from merlin.errors import BadInput, NotFound
from merlin.ledger.index import note_changed
from merlin.ledger.paths import Layout
from merlin.ledger.status import RunStatus, check_transition

if TYPE_CHECKING:  # pragma: no cover
    from merlin.ledger.models import ArtifactIndex, ClusterRecord, RunRecord, RunRequest

LOCK_TIMEOUT = 30.0

Mutation = Callable[["RunRecord"], "Iterable[dict[str, Any]] | None"]


def set_status(record: RunRecord, status: RunStatus | str, message: str | None = None, next_steps: list[dict[str, Any]] | None = None) -> None:
    """Move a run (and its latest attempt) to ``status``; legality is checked on write.

    A new ``message`` replaces the record's next steps too (``next_steps``, default none)."""
    status = RunStatus(status)
    record.status = status
    if status != RunStatus.WAITING:
        record.waiting_on = None  # only a waiting run waits on something
    if record.attempts:
        att = record.attempts[-1]
        att.status = status
        if status.is_terminal():
            from merlin.ledger.failures import classify

            att.failure_class = classify(status.value, att.error_type)  # type: ignore[assignment]
    if message is not None:
        record.message = message
        record.next_steps = list(next_steps or [])  # type: ignore[arg-type]


class Ledger:
    """Reads and writes one state root. No globals: pass the root explicitly."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.layout = Layout(self.root)

    # ------------------------------------------------------------------ runs

    def exists(self, run_id: str) -> bool:
        return self.layout.record(run_id).is_file()

    @contextmanager
    def lock(self, run_id: str, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
        path = self.layout.lock(run_id)
        with file_lock(path, timeout=timeout, holder=f"pid {os.getpid()} (run {run_id})"):
            yield

    def create_run(self, request: RunRequest, record: RunRecord, *, cause: str) -> RunRecord:
        """Write a new run's request, record and first event. Refuses an existing run id."""
        run_dir = self.layout.run_dir(request.run_id)
        self.layout.ensure()
        make_dir(self.root, private=True)
        make_dir(run_dir.parent, private=True)
        try:
            make_dir(run_dir, exist_ok=False, private=True)  # 0700 unless $MERLIN_STATE_UMASK says otherwise
        except FileExistsError:
            raise BadInput(f"run {request.run_id} already exists in {self.root}") from None
        check_transition(record.run_id, None, record.status)
        try:
            with self.lock(record.run_id):
                # write-ahead order: request, its 'created' event, then the record. A record
                # never exists without its created event; a kill part-way leaves a directory
                # without a record, which the debris sweep completes or removes (ledger/sweep.py)
                atomic_write_json(self.layout.request(request.run_id), request.model_dump(mode="json"))
                self._append_events(
                    record.run_id,
                    [{"event": "created", "to_status": record.status, "cause": cause, "attempt": len(record.attempts) or None}],
                )
                atomic_write_json(self.layout.record(record.run_id), record.model_dump(mode="json"))
        except BaseException:
            if not self.layout.record(record.run_id).is_file():
                import shutil

                shutil.rmtree(run_dir, ignore_errors=True)  # a failed create leaves no orphan directory
            raise
        note_changed(self.root, record.run_id)
        return record

    def read_request(self, run_id: str) -> RunRequest:
        from merlin.ledger.models import RunRequest

        return RunRequest.model_validate_json(self._read_bytes(self.layout.request(run_id), run_id))

    def read_record(self, run_id: str) -> RunRecord:
        from merlin.ledger.models import RunRecord

        return RunRecord.model_validate_json(self._read_bytes(self.layout.record(run_id), run_id))

    def read_raw(self, run_id: str) -> dict[str, Any]:
        return json.loads(self._read_bytes(self.layout.record(run_id), run_id))

    def _read_bytes(self, path: Path, run_id: str) -> bytes:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"unknown run {run_id} in {self.root}", next_steps=[{"action": "list_runs", "args": {}}]) from None

    def update(self, run_id: str, mutate: Mutation, *, cause: str, observed: bool = False) -> RunRecord:
        """Locked read-modify-write of one run record.

        ``mutate`` changes the record in place and may return extra event dicts
        (``{"event": ..., "cause": ..., "detail": {...}}``). A status change is
        checked against the transition table and logged as a ``transition``
        event with ``cause``. Nothing is written when nothing changed.
        """
        with self.transaction(run_id, cause=cause, observed=observed) as txn:
            txn.events.extend(mutate(txn.record) or [])
        return txn.record

    @contextmanager
    def transaction(self, run_id: str, *, cause: str, observed: bool = False) -> Iterator[Transaction]:
        """Hold the run's lock around a block that edits ``txn.record``.

        For callers that must do something else under the same lock (the local
        supervisor starts the command and records its pid atomically with
        respect to ``cancel``). An exception or ``txn.abort()`` writes nothing.
        """
        with self.lock(run_id):
            old = self.read_record(run_id)
            txn = Transaction(old.model_copy(deep=True), cause)
            yield txn
            if txn.aborted:
                return
            self._commit(run_id, old, txn, observed)

    def touch_observed(self, run_id: str, attempts: int, status: str, attempt_fields: dict[str, Any]) -> dict[str, Any] | None:
        """Record "observed, nothing changed" on the raw JSON, without pydantic (see ``observe.status_json``).

        Under the run's lock: if the run still has ``attempts`` attempts and
        ``status``, is not waiting for its engine to answer again, and its latest
        attempt already holds ``attempt_fields``, only ``observed_at`` and
        ``updated_at`` change, as :meth:`update` would change them. Returns the
        record written, or None when the full (validated) path must decide.
        """
        with self.lock(run_id):
            raw = self.read_raw(run_id)
            runs = raw.get("attempts") or []
            if len(runs) != attempts or raw.get("status") != status or not runs or str(raw.get("message", "")).startswith("could not observe"):
                return None
            if runs[-1].get("status") != status or any(runs[-1].get(k) != v for k, v in attempt_fields.items()):
                return None
            raw["observed_at"] = raw["updated_at"] = utcnow().isoformat().replace("+00:00", "Z")
            if write_if_changed(self.layout.record(run_id), dump_json(raw).encode("utf-8")):
                note_changed(self.root, run_id)
            return raw

    def _commit(self, run_id: str, old: RunRecord, txn: Transaction, observed: bool) -> None:
        new = txn.record
        check_transition(run_id, old.status, new.status)
        if observed:
            new.observed_at = utcnow()
        before = old.model_dump(mode="json", exclude={"updated_at"})
        after = new.model_dump(mode="json", exclude={"updated_at"})
        events: list[dict[str, Any]] = []
        if new.status != old.status:
            events.append(
                {
                    "event": "transition",
                    "from_status": old.status,
                    "to_status": new.status,
                    "attempt": len(new.attempts) or None,
                    "cause": txn.cause,
                    "detail": {"message": new.message} if new.message else {},
                }
            )
        events.extend(txn.events)
        # events first: a record never shows a change its history does not (on a full disk the
        # record write then fails and is retried; the history may say it twice, never not at all)
        self._append_events(run_id, events)
        if before != after:
            new.updated_at = utcnow()
            if write_if_changed(self.layout.record(run_id), dump_json(new.model_dump(mode="json")).encode("utf-8")):
                note_changed(self.root, run_id)

    def append_event(self, run_id: str, event: str, cause: str, **fields: Any) -> None:
        """Append one event outside a status change (e.g. a note, an outcome)."""
        if not self.exists(run_id):
            raise NotFound(f"unknown run {run_id} in {self.root}")
        self._append_events(run_id, [{"event": event, "cause": cause, **fields}])

    def _append_events(self, run_id: str, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        from merlin.ledger.models import RunEvent

        lines = []
        for item in events:
            ev = RunEvent(run_id=run_id, pid=os.getpid(), **item)
            lines.append(json.dumps(ev.model_dump(mode="json", exclude_none=True), sort_keys=True, ensure_ascii=False))
        # one write(2) for all lines: O_APPEND keeps concurrent writers' lines whole
        append_line(self.layout.events(run_id), "\n".join(lines))

    def events(self, run_id: str) -> list[dict[str, Any]]:
        """Parsed events; a torn last line (crash mid-append) is skipped, not fatal."""
        path = self.layout.events(run_id)
        if not path.is_file():
            if not self.exists(run_id):
                raise NotFound(f"unknown run {run_id} in {self.root}")
            return []
        out = []
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def run_ids(self) -> list[str]:
        try:
            entries = os.listdir(self.layout.runs)
        except FileNotFoundError:
            return []
        return sorted(e for e in entries if not e.startswith("."))

    def list_raw(self, status: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Every run record as plain JSON, newest first (no pydantic, no locks).

        A record that cannot be read (being created, or damaged by hand) is
        skipped rather than breaking the whole listing.
        """
        return [d for d, _raw in self.list_entries(status)]

    def list_entries(self, status: Iterable[str] | None = None) -> Sequence[tuple[dict[str, Any], bytes]]:
        """(parsed record, its bytes on disk), newest first: ``--json`` prints the
        bytes as they are instead of serialising everything again. Ordered and
        counted through the run index (a rebuildable cache, see ledger/index.py);
        records are read only for the rows taken. MERLIN_RUN_INDEX=0 scans instead."""
        if os.environ.get("MERLIN_RUN_INDEX", "1") == "0":
            return self.scan_entries(status)
        from merlin.ledger.index import RunIndex

        return RunIndex(self.root).entries(status)

    def scan_entries(self, status: Iterable[str] | None = None) -> list[tuple[dict[str, Any], bytes]]:
        """Like :meth:`list_entries`, reading and parsing every record (no index)."""
        wanted = set(status) if status else None
        runs_dir = str(self.layout.runs)
        record_name = self.layout.RECORD_NAME
        out: list[tuple[dict[str, Any], bytes]] = []
        try:
            it = os.scandir(runs_dir)
        except FileNotFoundError:
            return out
        with it:
            for entry in it:
                if entry.name.startswith("."):
                    continue
                try:
                    with open(os.path.join(entry.path, record_name), "rb") as fh:
                        raw = fh.read()
                    data = json.loads(raw)
                except (OSError, ValueError):
                    continue
                if wanted is not None and data.get("status") not in wanted:
                    continue
                out.append((data, raw))
        out.sort(key=lambda e: (e[0].get("created_at") or "", e[0].get("run_id") or ""), reverse=True)
        return out

    # ------------------------------------------------------------- artifacts

    def write_artifacts(self, index: ArtifactIndex, *, locked: bool = False) -> bool:
        """Write artifacts.json unless only ``indexed_at`` would change.

        ``locked=True`` when the caller already holds the run's lock (inside a
        :meth:`transaction`)."""
        if not locked:
            with self.lock(index.run_id):
                return self.write_artifacts(index, locked=True)
        from merlin.ledger.artifacts import snapshot

        snapshot(self.layout, index)  # the run keeps its own copy, whatever later rewrites the target directory
        old = self.read_artifacts_raw(index.run_id)
        new = index.model_dump(mode="json")
        if old is not None:
            cmp_old = {k: v for k, v in old.items() if k != "indexed_at"}
            cmp_new = {k: v for k, v in new.items() if k != "indexed_at"}
            if cmp_old == cmp_new:
                return False
        return write_if_changed(self.layout.artifacts(index.run_id), dump_json(new).encode("utf-8"))

    def read_artifacts_raw(self, run_id: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.layout.artifacts(run_id).read_bytes())
        except FileNotFoundError:
            return None

    def read_artifacts(self, run_id: str) -> ArtifactIndex | None:
        from merlin.ledger.models import ArtifactIndex

        raw = self.read_artifacts_raw(run_id)
        return ArtifactIndex.model_validate(raw) if raw is not None else None

    # -------------------------------------------------------------- clusters

    @contextmanager
    def cluster_lock(self, name: str, timeout: float = 120.0) -> Iterator[None]:
        make_dir(self.layout.cluster_lock(name).parent, private=True)
        with file_lock(self.layout.cluster_lock(name), timeout=timeout, holder=f"pid {os.getpid()} (cluster {name})"):
            yield

    def read_cluster(self, name: str) -> ClusterRecord | None:
        from merlin.ledger.models import ClusterRecord

        try:
            data = self.layout.cluster_record(name).read_bytes()
        except FileNotFoundError:
            return None
        return ClusterRecord.model_validate_json(data)

    def write_cluster(self, record: ClusterRecord) -> bool:
        """Write a cluster record (callers hold :meth:`cluster_lock`)."""
        path = self.layout.cluster_record(record.name)
        self.layout.ensure()
        try:
            old = json.loads(path.read_bytes())
        except (FileNotFoundError, ValueError):
            old = None
        new = record.model_dump(mode="json")
        if old is not None and {k: v for k, v in old.items() if k != "updated_at"} == {
            k: v for k, v in new.items() if k != "updated_at"
        }:
            return False
        record.updated_at = utcnow()
        return write_if_changed(path, dump_json(record.model_dump(mode="json")).encode("utf-8"))

    def cluster_names(self) -> list[str]:
        d = self.layout.clusters
        if not d.is_dir():
            return []
        names = {n for n in (self.layout.cluster_name_of(p) for p in d.glob("*.json")) if n}
        return sorted(names, key=lambda n: (n != self.layout.DEFAULT_CLUSTER, n))


class Transaction:
    """The record being edited under a run's lock, plus events to append with it."""

    def __init__(self, record: RunRecord, cause: str) -> None:
        self.record = record
        self.cause = cause
        self.events: list[dict[str, Any]] = []
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True
