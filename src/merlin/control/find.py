"""Finding and keeping runs: unique-prefix run ids, listing filters, pruning old runs.

- :func:`resolve_run_id`: the one resolver every facade method that takes a run id
  goes through (CLI and gateway alike). A whole id is one ``stat``; otherwise the
  run directories starting with the text are the candidates: one is the run, none
  is "no such run", several are an error listing them (``argument="run_id"``).
- :func:`select`: the filters of a listing (target, cluster, engine, created
  since/until, a sort field) over the ledger's rows, as plain dicts.
- :func:`prune`: removes terminal runs older than a duration. It never touches an
  active run (waiting, pending, running), one a live lease names, or one whose lock
  is held (a sweep, a writer); it says what it freed (runs, bytes).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from merlin.errors import BadInput, LockBusy, NotFound
from merlin.ledger.paths import validate_run_id
from merlin.ledger.status import RunStatus

if TYPE_CHECKING:  # pragma: no cover
    from .plane import Plane

#: how many candidates an ambiguous prefix names
SHOWN_CANDIDATES = 10
#: fields a listing sorts by (newest first for times; ascending otherwise)
SORT_FIELDS = ("created", "updated", "status", "target", "engine", "cluster", "run_id")
_DESCENDING = {"created", "updated"}
#: what a run id (or the start of one) may hold
_PREFIX = re.compile(r"[a-z0-9][a-z0-9_.-]{0,127}\Z")


def resolve_run_id(cp: Plane, text: str) -> str:
    """The run id ``text`` names: itself when such a run exists, else the one run whose id starts with it."""
    if not isinstance(text, str) or not _PREFIX.match(text) or ".." in text:
        validate_run_id(text)  # says what a run id looks like
    if len(text) >= 3 and cp.layout.record(text).is_file():
        return text
    candidates = [rid for rid in cp.ledger.run_ids() if rid.startswith(text)]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        from merlin.nextsteps import Action, step

        raise NotFound(f"unknown run {text} in {cp.root}", next_steps=[step(Action.LIST_RUNS)])
    shown = ", ".join(candidates[:SHOWN_CANDIDATES]) + (f" (and {len(candidates) - SHOWN_CANDIDATES} more)" if len(candidates) > SHOWN_CANDIDATES else "")
    raise BadInput(f"`run_id` {text!r} is ambiguous: {len(candidates)} runs start with it: {shown}; give more of the id", argument="run_id")


def select(
    rows: Iterable[dict[str, Any]],
    *,
    targets: Sequence[str] = (),
    clusters: Sequence[str] = (),
    engines: Sequence[str] = (),
    since: float | None = None,
    until: float | None = None,
    sort: str | None = None,
    now: float | None = None,
) -> list[dict[str, Any]]:
    """The rows matching every filter given (each repeatable filter: any of its values).
    ``since``/``until`` are ages in seconds: created at most ``since`` ago, at least ``until`` ago."""
    from merlin.clock import parse

    if sort is not None and sort not in SORT_FIELDS:
        raise BadInput(f"`sort` {sort!r}: expected one of {', '.join(SORT_FIELDS)}", argument="sort")
    if now is None:
        import time

        now = time.time()
    out = []
    for d in rows:
        if targets and d.get("target") not in targets:
            continue
        if engines and d.get("engine") not in engines:
            continue
        if clusters and cluster_of(d) not in clusters:
            continue
        if since is not None or until is not None:
            created = parse(d.get("created_at")) or 0.0
            if since is not None and created < now - since:
                continue
            if until is not None and created > now - until:
                continue
        out.append(d)
    if sort is not None:
        out.sort(key=lambda d: str(_sort_value(d, sort)), reverse=sort in _DESCENDING)
    return out


def select_entries(entries: Iterable[tuple[dict[str, Any], bytes]], **filters: Any) -> list[tuple[dict[str, Any], bytes]]:
    """:func:`select` over (record, bytes) pairs, keeping each record's bytes."""
    entries = list(entries)
    by_id = {id(d): (d, raw) for d, raw in entries}
    return [by_id[id(d)] for d in select([d for d, _raw in entries], **filters)]


def cluster_of(d: dict[str, Any]) -> str | None:
    """The cluster a run went to (None for an engine without clusters)."""
    cl = d.get("cluster")
    return cl.get("name") if isinstance(cl, dict) else cl


def _sort_value(d: dict[str, Any], key: str) -> Any:
    if key == "created":
        return d.get("created_at") or ""
    if key == "updated":
        return d.get("updated_at") or ""
    if key == "cluster":
        return cluster_of(d) or ""
    return d.get(key) or ""


@dataclass
class PruneReport:
    """What a prune removed (or, with ``dry_run``, would remove), and what it kept and why."""

    dry_run: bool
    removed: list[str] = field(default_factory=list)
    freed_bytes: int = 0
    kept: dict[str, str] = field(default_factory=dict)  # run id -> why it was kept

    def to_json(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "removed": self.removed, "runs": len(self.removed), "freed_bytes": self.freed_bytes, "kept": self.kept}


def _size(path: str) -> int:
    total = 0
    for base, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(base, name)).st_size
            except OSError:
                pass
    return total


def check_policy(older_than: float, statuses: Sequence[str]) -> None:
    """A prune's arguments as :func:`prune` takes them, or the BadInput naming the one that is not."""
    valid = {s.value for s in RunStatus}
    bad = [s for s in statuses if s not in valid]
    if bad:
        raise BadInput(f"`status` {bad[0]!r}: expected one of {', '.join(sorted(valid))}", argument="status")
    active = [s for s in statuses if not RunStatus(s).is_terminal()]
    if active:
        raise BadInput(f"`status` {active[0]!r}: an active run is never pruned; choose among blocked, succeeded, failed, cancelled, lost", argument="status")
    if older_than < 0:
        raise BadInput("`older_than` must not be negative", argument="older_than")


def prune(cp: Plane, older_than: float, statuses: Sequence[str] = (), *, dry_run: bool = False, now: float | None = None) -> PruneReport:
    """Remove terminal runs last updated more than ``older_than`` seconds ago (of ``statuses``, if given)."""
    import time

    from merlin.clock import parse

    check_policy(older_than, statuses)
    valid = {s.value for s in RunStatus}
    now = time.time() if now is None else now
    held = {str((lease.get("owner") or {}).get("run_id")) for lease in cp.leases.live()}
    report = PruneReport(dry_run=dry_run)
    for d, _raw in cp.ledger.list_entries():
        rid = d.get("run_id") or ""
        status = d.get("status") or ""
        if status not in valid or not RunStatus(status).is_terminal():
            continue
        if statuses and status not in statuses:
            continue
        when = parse(d.get("updated_at") or d.get("created_at")) or now
        if when > now - older_than:
            continue
        if rid in held:
            report.kept[rid] = "a live lease names it"
            continue
        run_dir = str(cp.layout.run_dir(rid))
        if dry_run:
            report.removed.append(rid)
            report.freed_bytes += _size(run_dir)
            continue
        try:
            with cp.ledger.lock(rid, timeout=0):
                now_status = cp.ledger.read_raw(rid).get("status")
                if now_status != status:  # retried meanwhile
                    report.kept[rid] = f"it became {now_status}"
                    continue
                size = _size(run_dir)
                _remove(cp, rid, run_dir)
        except LockBusy:
            report.kept[rid] = "its lock is held (a writer or a sweep)"
            continue
        report.removed.append(rid)
        report.freed_bytes += size
    if report.removed and not dry_run:
        from merlin.ledger.index import invalidate

        invalidate(cp.root)
    return report


def _remove(cp: Plane, run_id: str, run_dir: str) -> None:
    """Take the run out of the ledger in one rename (readers see it or not), then delete its files."""
    trash = str(cp.layout.pruning(run_id))
    os.rename(run_dir, trash)
    shutil.rmtree(trash, ignore_errors=True)
