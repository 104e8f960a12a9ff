"""Sweeping SIGKILL debris: run directories without a record, and stale temp files.

A run is created in one order (directory, then under its lock: request,
``created`` event, record), so a process killed part-way leaves a directory
holding a lock, a request, an event or a ``.tmp``, but no ``run_record.json``;
nothing lists it. :func:`sweep` finds such directories once they are older
than :data:`MIN_AGE` (younger ones may be being created right now) and whose
lock is free:

* with a request, the run is *completed* as ``lost`` (its submitter died while
  creating it), with its ``created`` event, so ``jobs retry`` can run it;
* without one, nothing was asked for that can be recovered: it is *removed*.

Temp files (``.NAME.*.tmp``, left by a write killed before its rename) older
than :data:`MIN_AGE` are removed. ``jobs list`` sweeps the directories its
index saw without a record; ``merlin doctor`` sweeps the whole state root.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from merlin.ledger.store import Ledger

MIN_AGE = 60.0


@dataclass
class SweepReport:
    completed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    temp_files: list[str] = field(default_factory=list)
    #: directories without a record that are too young (or locked) to judge yet
    deferred: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.completed or self.removed or self.temp_files)

    def summary(self) -> str:
        parts = []
        if self.completed:
            parts.append(f"completed {len(self.completed)} half-created run{'s' if len(self.completed) != 1 else ''} as lost ({', '.join(self.completed[:3])}{', ...' if len(self.completed) > 3 else ''})")
        if self.removed:
            parts.append(f"removed {len(self.removed)} run director{'ies' if len(self.removed) != 1 else 'y'} with nothing to recover")
        if self.temp_files:
            parts.append(f"removed {len(self.temp_files)} stale temp file{'s' if len(self.temp_files) != 1 else ''}")
        return "; ".join(parts) or "nothing to sweep"

    def to_json(self) -> dict[str, Any]:
        return {"completed": self.completed, "removed": self.removed, "temp_files": self.temp_files, "deferred": self.deferred}


def _age(path: Path, now: float) -> float:
    """Seconds since anything in ``path`` (a run directory) last changed."""
    newest = 0.0
    for p in [path, *path.rglob("*")]:
        try:
            newest = max(newest, p.lstat().st_mtime)
        except OSError:
            continue
    return now - newest


def _stale_temps(directory: Path, now: float, min_age: float, depth: int = 1) -> list[Path]:
    out: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return out
    for e in entries:
        try:
            if e.is_file(follow_symlinks=False) and e.name.startswith(".") and e.name.endswith(".tmp"):
                if now - e.stat(follow_symlinks=False).st_mtime >= min_age:
                    out.append(Path(e.path))
            elif depth > 0 and e.is_dir(follow_symlinks=False):
                out.extend(_stale_temps(Path(e.path), now, min_age, depth - 1))
        except OSError:
            continue
    return out


def sweep(ledger: Ledger, run_ids: Iterable[str] | None = None, *, min_age: float = MIN_AGE, temps: bool = True) -> SweepReport:
    """Complete or remove ``run_ids`` (default: every run directory without a record)."""
    from merlin.errors import LockBusy

    layout = ledger.layout
    now = time.time()
    report = SweepReport()
    full = run_ids is None
    ids = ledger.run_ids() if full else list(run_ids or ())
    for run_id in ids:
        run_dir = layout.run_dir(run_id)
        if temps and full and run_dir.is_dir():
            report.temp_files.extend(str(p) for p in _stale_temps(run_dir, now, min_age))
        if layout.record(run_id).is_file() or not run_dir.is_dir():
            continue
        if _age(run_dir, now) < min_age:
            report.deferred.append(run_id)
            continue
        try:
            with ledger.lock(run_id, timeout=0):
                if layout.record(run_id).is_file():
                    continue
                if layout.request(run_id).is_file() and _complete(ledger, run_id):
                    report.completed.append(run_id)
                    continue
        except LockBusy:
            report.deferred.append(run_id)
            continue
        shutil.rmtree(run_dir, ignore_errors=True)
        report.removed.append(run_id)
    if temps:
        for d in (layout.root, layout.clusters, layout.index):
            report.temp_files.extend(str(p) for p in _stale_temps(Path(d), now, min_age, depth=0))
    for p in report.temp_files:
        try:
            os.unlink(p)
        except OSError:
            pass
    return report


def _complete(ledger: Ledger, run_id: str) -> bool:
    """Write the record of a run whose submitter died after writing its request (caller holds the lock)."""
    from merlin.atomic import atomic_write_json
    from merlin.ledger.index import note_changed
    from merlin.ledger.models import Attempt, ClusterRef, RunRecord
    from merlin.ledger.status import RunStatus
    from merlin.nextsteps import Action, step

    try:
        req = ledger.read_request(run_id)
    except Exception:
        return False  # a torn or foreign request: nothing to recover
    why = "its submitter ended while creating it (the run record was never written); retry it to run it"
    record = RunRecord(
        run_id=run_id, target=req.target, workflow=req.workflow, source=req.source, engine=req.engine, status=RunStatus.LOST,
        command=req.command, workdir=req.workdir, target_dir=req.target_dir, cluster=ClusterRef(name=req.cluster) if req.cluster else None,
        attempts=[Attempt(number=1, engine=req.engine, status=RunStatus.LOST, error_type="SUBMITTER_DIED", error_message=why)],
        message=f"lost: {why}", next_steps=[step(Action.RETRY, run_id=run_id)], metadata=req.metadata,  # type: ignore[list-item]
    )
    events = []
    try:
        created = any(e.get("event") == "created" for e in ledger.events(run_id))
    except Exception:
        created = False
    if not created:
        events.append({"event": "created", "to_status": RunStatus.PENDING, "cause": "completed by the debris sweep from its request", "attempt": 1})
    events.append({"event": "transition", "from_status": RunStatus.PENDING, "to_status": RunStatus.LOST, "cause": "debris sweep", "attempt": 1, "detail": {"message": record.message}})
    ledger._append_events(run_id, events)
    atomic_write_json(layout_record := ledger.layout.record(run_id), record.model_dump(mode="json"))
    del layout_record
    note_changed(ledger.root, run_id)
    return True
