"""The cluster-backend protocol and the cluster state machine.

A *kind* (``local``, ``slurm``, ``pbs``, ``ssh``) maps to one backend class in
:mod:`merlin.clusters.registry`. A backend starts, observes, stops and lists
the clusters of its kind; it never decides a status on its own authority
outside :data:`CLUSTER_TRANSITIONS`. Adding a kind is one module plus one
registry line.

This module imports nothing heavy.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any, Callable, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from merlin.ledger.models import ClusterRecord
    from merlin.ledger.store import Ledger


class ClusterStatus(str, Enum):
    """Where a cluster merlin started is. ``str`` so records hold plain strings."""

    #: Accepted by a batch scheduler (Slurm, PBS), not yet allocated.
    QUEUED = "queued"
    #: Processes are being started; readiness handshake not done yet.
    STARTING = "starting"
    #: The head answers and Ray sees every node that was asked for.
    ACTIVE = "active"
    #: ``stop`` is ending the cluster's processes / allocation.
    STOPPING = "stopping"
    #: Nothing of the cluster is left (stopped by merlin, idle, or from outside).
    STOPPED = "stopped"
    #: Start failed, or the cluster died under merlin (head killed).
    FAILED = "failed"
    #: The allocation reached its walltime.
    EXPIRED = "expired"

    def __str__(self) -> str:
        return self.value

    def is_terminal(self) -> bool:
        return self in _TERMINAL

    def is_live(self) -> bool:
        """Something of the cluster may exist (queued job, processes)."""
        return not self.is_terminal()


_TERMINAL = frozenset({ClusterStatus.STOPPED, ClusterStatus.FAILED, ClusterStatus.EXPIRED})

#: old status (None: no record yet) -> statuses it may move to. A terminal
#: cluster moves again only by a new ``start`` of the same name (-> queued/starting).
CLUSTER_TRANSITIONS: dict[ClusterStatus | None, frozenset[ClusterStatus]] = {
    None: frozenset({ClusterStatus.QUEUED, ClusterStatus.STARTING}),
    ClusterStatus.QUEUED: frozenset({ClusterStatus.STARTING, ClusterStatus.STOPPING, ClusterStatus.STOPPED, ClusterStatus.FAILED}),
    ClusterStatus.STARTING: frozenset({ClusterStatus.ACTIVE, ClusterStatus.STOPPING, ClusterStatus.STOPPED, ClusterStatus.FAILED, ClusterStatus.EXPIRED}),
    ClusterStatus.ACTIVE: frozenset({ClusterStatus.STOPPING, ClusterStatus.STOPPED, ClusterStatus.FAILED, ClusterStatus.EXPIRED}),
    ClusterStatus.STOPPING: frozenset({ClusterStatus.STOPPED, ClusterStatus.FAILED}),
    ClusterStatus.STOPPED: frozenset({ClusterStatus.QUEUED, ClusterStatus.STARTING}),
    ClusterStatus.FAILED: frozenset({ClusterStatus.QUEUED, ClusterStatus.STARTING, ClusterStatus.STOPPED}),
    ClusterStatus.EXPIRED: frozenset({ClusterStatus.QUEUED, ClusterStatus.STARTING, ClusterStatus.STOPPED}),
}


def can_cluster_transition(old: ClusterStatus | str | None, new: ClusterStatus | str) -> bool:
    old_s = ClusterStatus(old) if old is not None else None
    return ClusterStatus(new) in CLUSTER_TRANSITIONS[old_s]


Progress = Callable[[str], None]


class ClusterBackend(Protocol):
    """One cluster kind. Constructed with the ledger; holds no connection at import."""

    #: the ``--kind`` value, e.g. "local", "slurm"
    kind: str

    def __init__(self, ledger: "Ledger") -> None: ...

    def start(self, name: str, *, wait: bool = True, progress: Progress | None = None, **options: Any) -> tuple["ClusterRecord", bool]:
        """Start a cluster (or find it already live). Returns (record, started_now).

        Returns once the scheduler accepted it (``queued``/``starting``), or with
        ``wait`` once it is ``active``. Raises ``MerlinError`` on bad options."""
        ...

    def observe(self, record: "ClusterRecord") -> "ClusterRecord":
        """Ask the scheduler / processes / Jobs API and return the record as it now is
        (status moved only along :data:`CLUSTER_TRANSITIONS`, written through the ledger)."""
        ...

    def stop(self, record: "ClusterRecord", *, grace: float = 5.0, progress: Progress | None = None) -> "ClusterRecord":
        """End exactly what this cluster started (recorded pids / scheduler job id), verify
        nothing is left, and return the record as ``stopped``."""
        ...
