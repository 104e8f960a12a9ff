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


def dead_here(name: str, kind: str | None, address: str | None, processes: Any) -> str | None:
    """Why a head merlin started on this machine (kind ``local``) is dead, judged from ``/proc`` before any
    HTTP call (a dead GCS's dashboard holds a request for its whole timeout): its recorded GCS and
    raylet are gone. None otherwise. ``processes``: the record's, as records or their JSON dicts."""
    from merlin.clusters import head_gone
    from merlin.clusters.base import DEFAULT_KIND

    if (kind or DEFAULT_KIND) != DEFAULT_KIND or not head_gone(processes or []):
        return None
    return f"Ray cluster '{name}' at {address}: its head's GCS and raylet are gone (killed)"


#: seconds between two questions about one cluster whose head does not answer, where asking costs more
#: than a ``/proc`` read: its batch scheduler (``squeue``, ``qstat``) or its head's host (over ssh). While
#: the answer is "it runs" (a slow head), a waiter polling twice a second would ask twice a second.
ASK_EVERY = 10.0


def dead(engine: Any, cluster: ClusterRecord) -> str | None:
    """Why ``cluster`` (not answering) is known to be dead: its head's GCS and raylet are gone (Ray's
    monitors may outlive them: they serve no job), its scheduler says its allocation ended, or 0 of
    its processes are alive. None: it may come back (say, stopped with SIGSTOP, or slow). A question
    that leaves this machine (an SSH head's host, a scheduler) is asked at most once every
    :data:`ASK_EVERY` seconds per cluster by one engine; an end it finds is recorded then."""
    import time

    from merlin.clusters import registry

    try:
        backend = registry.backend(cluster.kind, engine.ledger)
    except Exception:
        return None
    where = f"Ray cluster '{cluster.name}' at {cluster.address} does not answer and"
    from merlin.clusters.base import DEFAULT_KIND

    here = cluster.kind == DEFAULT_KIND  # its head's processes are read from /proc: cheap, asked every time
    asked = engine._asked.get(cluster.name)
    due = asked is None or time.monotonic() - asked >= ASK_EVERY
    head = getattr(backend, "head_alive", None)
    if head is not None and (here or due) and head(cluster) is False:
        engine._asked.pop(cluster.name, None)
        return f"{where} its head's GCS and raylet are gone (killed)"
    ended = getattr(backend, "ended", None)  # a batch scheduler's word (Slurm, PBS)
    if ended is not None and due and (why := ended(cluster)):
        engine._asked.pop(cluster.name, None)
        return f"{where} {why}"
    if due and not here:
        engine._asked[cluster.name] = time.monotonic()
    count = getattr(backend, "processes_alive", None)
    alive = count(cluster) if count is not None else None
    if alive != 0:
        return None
    return f"{where} 0 of its processes are alive (its head was killed)"
