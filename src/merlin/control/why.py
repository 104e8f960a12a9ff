"""``jobs why``: every condition holding a run back, layer by layer, each from its own layer.

The order is :data:`merlin.conditions.LAYERS`: the run's leases (the lease
book explains each lease), its cluster (not active, a resource it lacks), the
engine itself (``hold_conditions`` of the engine, e.g. Ray's PENDING job with
its demands), the cluster's scheduler (the backend's ``hold_conditions``:
Slurm's REASON, PBS's comment), then the run record (a blocked run's reason).
This module only assembles them; it interprets no layer's evidence.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from merlin.clock import iso
from merlin.conditions import condition
from merlin.errors import MerlinError
from merlin.ledger.status import engine_waits
from merlin.nextsteps import Action, step

if TYPE_CHECKING:  # pragma: no cover
    from merlin.control.plane import Plane
    from merlin.engines.base import Engine
    from merlin.ledger.models import RunRecord, RunRequest


def run_conditions(cp: Plane, run_id: str) -> list[dict[str, Any]]:
    """Every condition holding ``run_id`` back, in layer order; empty when nothing does
    (a finished run: nothing holds it back, whatever became of its leases)."""
    rec = cp.get(run_id)
    blocked = rec.status.value == "blocked"
    if rec.status.is_terminal() and not blocked:
        return []
    at = iso(time.time())
    out = lease_layer(cp, rec, at)
    engine = cp.engine(rec.engine)
    if engine.uses_cluster and (not rec.status.is_terminal() or blocked):
        request = _request(cp, run_id)
        state = cp.cluster_status(rec.cluster.name if rec.cluster else (getattr(request, "cluster", None) or "default"), sockets=False)
        from merlin.clusters.fit import requested_resources
        from merlin.clusters.why import cluster_conditions, hold_conditions

        own = hold_conditions(cp.cluster_backend(state.record.kind), state.record, at) if state.record is not None else []
        out += [c for c in own if c["layer"] == "cluster"]
        out += cluster_conditions(state, requested_resources(request) if request is not None else {}, run_id, blocked, at)
        out += _engine_layer(engine, rec, request, at)
        out += [c for c in own if c["layer"] != "cluster"]
    elif not rec.status.is_terminal():
        out += _engine_layer(engine, rec, _request(cp, run_id), at)
    if (rec.status.is_active() or engine_waits(rec.status.value, rec.metadata)) and rec.environment and rec.attempt is not None and not rec.attempt.env_cache:
        report = _env_report(cp, rec)
        if report.get("state") == "building":
            out.append(env_condition(rec, at, report))
        elif engine_waits(rec.status.value, rec.metadata) and (rec.waiting_on or "").endswith(" building"):  # said in the job's log (an SSH host)
            out.append(condition("run", "env_building", rec.message, {"waiting_on": rec.waiting_on}, at,
                                 [step(Action.CANCEL, run_id=run_id)], "it starts by itself once the environment is built"))  # fmt: skip
        elif engine_waits(rec.status.value, rec.metadata):  # its job's launcher has not reported yet
            out.append(condition("run", "env_preparing", f"{rec.message} (no report from it yet)", {"report": report.get("state")}, at,
                                 [step(Action.CANCEL, run_id=run_id)], "it starts by itself once the environment is ready"))  # fmt: skip
    if rec.retry_at is not None:
        from merlin.control.retries import retry_conditions

        out += retry_conditions(rec, at)
    if blocked:
        out.append(condition("run", "run_blocked", rec.message, {"status": "blocked"}, at,
                             [step(Action.LOGS, run_id=run_id), step(Action.RETRY, run_id=run_id)], "fix what the message says, then retry"))  # fmt: skip
    return out


def why_document(cp: Plane, run_id: str) -> dict[str, Any]:
    """The run, whether anything holds it (``held``), the conditions and the steps they offer (then the run's status), once each."""
    conds = run_conditions(cp, run_id)
    rec = cp.get(run_id)
    steps: list[dict[str, Any]] = []
    for s in [x for c in conds for x in c.get("next_steps") or []] + [step(Action.STATUS, run_id=run_id)]:
        if s not in steps:
            steps.append(s)
    return {"run_id": rec.run_id, "status": rec.status.value, "message": rec.message, "held": bool(conds), "conditions": conds, "next_steps": steps[:6]}


def lease_layer(cp: Plane, rec: RunRecord, at: str) -> list[dict[str, Any]]:
    """The conditions of every lease the run holds or waits for (the lease book explains each)."""
    book = cp.leases
    named = list(rec.leases) + [x for x in (rec.metadata.get("leases") or []) if isinstance(x, str) and x not in rec.leases]
    named += [x["lease_id"] for x in book.live() if x["owner"].get("run_id") == rec.run_id and x["lease_id"] not in named]  # taken from inside the run
    out: list[dict[str, Any]] = []
    for lid in named:
        try:
            out += book.why(lid)
        except MerlinError as exc:  # NotFound: the record names a lease the book does not know
            out.append(condition("leases", "lease_missing", f"lease {lid}: {exc.message}", {"lease_id": lid}, at,
                                 [step(Action.LEASES_LIST)], "the book does not know this lease"))  # fmt: skip
    if rec.status.value == "waiting" and rec.metadata.get("waiting_for") == "env":
        out.append(env_condition(rec, at))
    elif rec.status.value == "waiting" and not out and not rec.metadata.get("waiting_for"):
        out.append(condition("leases", "run_waiting_no_lease", "the run is waiting but names no waiting lease", {"leases": list(rec.leases)}, at,
                             [step(Action.CANCEL, run_id=rec.run_id)], "cancel it, then submit it again"))  # fmt: skip
    return out


def _env_report(cp: Plane, rec: RunRecord) -> dict[str, Any]:
    import json

    try:
        data = json.loads(cp.layout.env_report(rec.run_id, len(rec.attempts)).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def env_condition(rec: RunRecord, at: str, where: dict[str, Any] | None = None) -> dict[str, Any]:
    """``env_building``: the run waits while its environment builds (uv's last line, the elapsed time).
    ``where``: the env id and cache dir (default: the run's metadata, set by the local supervisor)."""
    from merlin.durations import describe
    from merlin.envs.cache import EnvCache

    where = where or rec.metadata
    eid, cache_dir = str(where.get("env_id") or ""), where.get("env_cache_dir") or where.get("cache_dir")
    state = (EnvCache(cache_dir).read_state(eid) if cache_dir and eid else None) or {}
    line = str(state.get("line") or "starting")
    started = state.get("started_at")
    elapsed = max(0.0, time.time() - float(started)) if isinstance(started, (int, float)) else None
    took = f" for {describe(round(elapsed))}" if elapsed is not None else ""
    return condition("run", "env_building", f"its environment {eid[:12]} has been building{took}: {line}",
                     {"env_id": eid, "line": line, "elapsed_s": round(elapsed, 1) if elapsed is not None else None, "state": state.get("state")}, at,
                     [step(Action.CANCEL, run_id=rec.run_id)], "it starts by itself once the environment is built")  # fmt: skip


def _engine_layer(engine: Engine, rec: RunRecord, request: RunRequest | None, at: str) -> list[dict[str, Any]]:
    """The engine's own conditions, for a run handed to it and not running yet."""
    from merlin.control.observe import observable
    from merlin.engines.base import hold_conditions

    if rec.status.value != "pending" or not observable(rec):
        return []
    return hold_conditions(engine, rec, request, at)


def _request(cp: Plane, run_id: str) -> RunRequest | None:
    try:
        return cp.ledger.read_request(run_id)
    except (MerlinError, OSError, ValueError):
        return None
