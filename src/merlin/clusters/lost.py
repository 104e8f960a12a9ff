"""Runs whose cluster ended under them become ``lost``, with the reason and a retry step.

Called by the scheduler-backed backends when an allocation ends (walltime,
``scancel`` from outside, preemption, idle stop, ``cluster stop``); the
control plane may call it too. Logs already copied into the ledger stay.
"""

from __future__ import annotations

from typing import Any

from merlin.ledger.status import RunStatus, on_its_engine
from merlin.nextsteps import Action, step


def active_runs_on(ledger, cluster: str) -> list[str]:
    """Run ids of the runs recorded on ``cluster`` that its Ray has (pending, running, or waiting on
    their job's env: ``on_its_engine``), from plain JSON, no locks."""
    return [
        d["run_id"]
        for d in ledger.list_raw(status=("pending", "running", "waiting"))
        if (d.get("cluster") or {}).get("name") == cluster and d.get("run_id") and on_its_engine(d["status"], d.get("metadata"))
    ]


def mark_runs_lost(ledger, cluster: str, reason: str) -> list[str]:
    """Record every active run of ``cluster`` as lost because ``reason``; returns their ids."""
    from merlin.ledger.store import set_status

    lost: list[str] = []
    for run_id in active_runs_on(ledger, cluster):

        def mutate(r, run_id=run_id):
            if not on_its_engine(r.status.value, r.metadata):
                return None
            set_status(
                r,
                RunStatus.LOST,
                f"lost: Ray cluster '{cluster}' ended under it: {reason}. Retry it on a live cluster",
                [step(Action.RETRY, run_id=run_id)],
            )
            if r.attempts:
                r.attempts[-1].error_type = "cluster_ended"
                r.attempts[-1].error_message = reason
            lost.append(run_id)
            return None

        try:
            ledger.update(run_id, mutate, cause=f"cluster '{cluster}' ended: {reason}")
        except Exception:  # a run record being rewritten by someone else: the next observation retries
            continue
    return lost


def end_on_hosts(ledger: Any, record: Any, grace: float = 2.0, timeout: float = 10.0) -> int:
    """End what the lost run ``record`` left on its cluster's hosts, where the cluster's backend reaches
    them (``end_run_processes``: SSH), asking each at most ``timeout`` seconds more; how many were ended."""
    cluster = ledger.read_cluster(record.cluster.name) if record.cluster else None
    if cluster is None:
        return 0
    from merlin.clusters.registry import backend

    reach = getattr(backend(cluster.kind, ledger), "end_run_processes", None)
    return len(reach(cluster, [record.run_id], grace=grace, timeout=timeout)[0]) if reach is not None else 0
