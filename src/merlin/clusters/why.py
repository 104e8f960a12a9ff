"""The cluster and scheduler layers of ``merlin ray jobs why``.

Cluster layer (every kind): the run's cluster is not active, or lacks a
resource the run asks for. Scheduler layer (kinds with a batch scheduler):
the allocation is still queued, and the scheduler says why; each backend
supplies that itself through ``hold_conditions(record, at)`` (Slurm's pending
REASON in ``slurm.py``, PBS's ``comment`` in ``pbs.py``), built here with
:func:`scheduler_queued`. Both read the cluster record as the backend's last
observation left it (``cluster_status`` observes just before): no extra
scheduler call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from merlin.conditions import condition
from merlin.nextsteps import Action, step


def hold_conditions(backend: Any, record: Any, observed_at: str) -> list[dict[str, Any]]:
    """A backend's own conditions for ``record`` (its ``hold_conditions``, if it has one; else none)."""
    own = getattr(backend, "hold_conditions", None)
    return list(own(record, observed_at)) if own is not None else []


def scheduler_queued(record: Any, observed_at: str, scheduler: str, hint: str, query: list[str]) -> list[dict[str, Any]]:
    """One ``scheduler_queued`` condition while ``record``'s allocation waits in ``scheduler``; else none.

    ``hint`` is what the scheduler's reason means for a person; ``query`` the argv
    of the scheduler's own tool that shows the reason."""
    if str(getattr(record.status, "value", record.status)) != "queued":
        return []
    reason = record.scheduler_reason or "no reason reported yet"
    job = record.scheduler_job_id
    return [
        condition(
            "scheduler",
            "scheduler_queued",
            f"cluster {record.name}: {scheduler} job {job} is still queued: {reason}",
            {"cluster": record.name, "kind": record.kind, "job_id": job, "reason": record.scheduler_reason, "requested": dict(record.requested or {})},
            observed_at,
            [step(Action.SCHEDULER_QUERY, argv=query), step(Action.STOP_CLUSTER, name=record.name)],
            f"{hint} (stopping the cluster gives up the request)",
        )
    ]


def cluster_conditions(state: Any, want: Mapping[str, float], run_id: str, blocked: bool, observed_at: str) -> list[dict[str, Any]]:
    """The cluster layer: ``cluster_not_active``, else one ``cluster_resource_missing`` per
    resource the run asks for beyond what the cluster recorded (``state``: a ClusterState)."""
    from merlin.clusters import start_step

    name = state.name
    retry = [step(Action.RETRY, run_id=run_id)] if blocked else []
    if state.state != "active":
        return [
            condition(
                "cluster", "cluster_not_active", f"cluster {name} is {state.state}: {state.message}",
                {"cluster": name, "state": state.state, "kind": getattr(state.record, "kind", None)}, observed_at,
                [start_step(name, state.record), *retry],
                "start it as it was recorded" + (", then retry the run" if blocked else ""),
            )
        ]  # fmt: skip
    rec = state.record
    have = dict((rec.resources or {}) if rec is not None else {})
    if not have:
        return []  # totals not reported yet: say nothing rather than guess
    out = []
    for key, amount in sorted(want.items()):
        if have.get(key, 0) >= amount:
            continue
        local = rec is None or getattr(rec, "kind", "local") == "local"
        steps: list[dict[str, Any]] = []
        if local and key not in ("CPU", "GPU"):
            bigger = start_step(name, rec)
            bigger["args"]["resources"] = {**(bigger["args"].get("resources") or {}), key: amount}
            steps = [step(Action.STOP_CLUSTER, name=name), bigger, *retry]
        out.append(
            condition(
                "cluster", "cluster_resource_missing", f"cluster {name} has {have.get(key, 0):g} {key}, the run asks for {amount:g}",
                {"cluster": name, "resource": key, "have": have.get(key, 0), "want": amount}, observed_at, steps,
                f"start the cluster with {amount:g} {key} (or more), or ask for less",
            )
        )  # fmt: skip
    return out
