"""What a Ray run left on this machine: its processes, when its cluster's nodes are this machine
(a local head merlin started). Ray loses track of a job's processes when its head dies: they live
on, reparented to init, and a retry must not start beside them. And what else runs on a cluster:
the Ray jobs merlin did not submit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from merlin.ledger.status import RunStatus

if TYPE_CHECKING:  # pragma: no cover
    from merlin.ledger import Ledger
    from merlin.ledger.models import ClusterRecord, RunRecord


def local_processes(ledger: Ledger, record: RunRecord) -> list[int]:
    """Processes on this machine that carry the run's id (``MERLIN_RUN_ID`` in their environment),
    for a run on a cluster of kind ``local``."""
    from merlin.clusters import procs

    cluster = ledger.read_cluster(record.cluster.name) if record.cluster else None
    if cluster is None or cluster.kind != "local":
        return []
    return procs.processes_with_env("MERLIN_RUN_ID", record.run_id)


def leftovers(ledger: Ledger, record: RunRecord) -> str | None:
    """A lost run's processes still running here, in a few words; None when there are none."""
    if record.status != RunStatus.LOST:
        return None
    left = local_processes(ledger, record)
    return f"{len(left)} of its processes still run on this machine (pids {', '.join(map(str, left[:5]))})" if left else None


def end_leftovers(ledger: Ledger, record: RunRecord, grace: float = 2.0) -> int:
    """End what a lost run left running here; returns how many processes were signalled."""
    from merlin.clusters import procs

    if record.status != RunStatus.LOST:
        return 0
    ended: set[int] = set()
    for _ in range(3):  # a process may still be forking as its parent is ended: look again until none is left
        left = local_processes(ledger, record)
        if not left:
            break
        procs.terminate(left, grace=grace)
        ended.update(left)
    return len(ended)


def foreign_jobs(engine: Any, cluster: ClusterRecord) -> list[dict[str, str]] | None:
    """Active jobs on ``cluster`` that merlin did not submit (``ray job submit``, the SDK): stopping the
    cluster would end them. None when the cluster cannot be asked. ``engine``: the Ray engine (its client)."""
    from merlin.engines import ray_api
    from merlin.engines.base import EngineBlocked
    from merlin.errors import Blocked

    if not cluster.address or cluster.status.is_terminal():
        return []
    try:
        jobs = engine.client(cluster).list_jobs()
    except (EngineBlocked, Blocked, ray_api.RayApiError):
        return None
    out = []
    for job in jobs:
        if job.terminal:
            continue
        run_id = job.metadata.get("merlin_run_id")
        if run_id and _ours(engine.ledger, run_id):
            continue
        out.append({"id": job.submission_id or job.job_id or "?", "status": job.status, "entrypoint": job.entrypoint[:200]})
    return out


def _ours(ledger: Ledger, run_id: str) -> bool:
    try:
        return ledger.exists(run_id)
    except Exception:  # not a run id merlin would write: not ours
        return False
