"""What a Ray run left on this machine: its processes, when its cluster's nodes are this machine
(a local head merlin started). Ray loses track of a job's processes when its head dies: they live
on, reparented to init, and a retry must not start beside them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from merlin.ledger.status import RunStatus

if TYPE_CHECKING:  # pragma: no cover
    from merlin.ledger import Ledger
    from merlin.ledger.models import RunRecord


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
