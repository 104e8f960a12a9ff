"""The cluster-backend protocol and the cluster state machine.

A *kind* (``local``, ``slurm``, ``pbs``, ``ssh``) maps to one backend class in
:mod:`merlin.clusters.registry`. A backend starts, observes, stops and lists
the clusters of its kind; it never decides a status on its own authority
outside :data:`CLUSTER_TRANSITIONS`. Adding a kind is one module plus one
registry line.

This module imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from merlin.errors import BadInput
from merlin.values import Value, factory

if TYPE_CHECKING:  # pragma: no cover
    from merlin.ledger.models import ClusterRecord
    from merlin.ledger.store import Ledger


# The vocabulary lives with the ledger's other state machines (the ledger stores it);
# it is re-exported here, where backends look for it.
from merlin.ledger.status import CLUSTER_TRANSITIONS, ClusterStatus, can_cluster_transition  # noqa: F401

Progress = Callable[[str], None]


def not_taken(kind: str, options: Mapping[str, Any]) -> BadInput:
    """The refusal of start options a kind does not take, naming each as an argument."""
    names = sorted(options)
    return BadInput(f"`kind` {kind} does not take {', '.join(f'`{k}`' for k in names)}", argument=names[0] if names else None, related=["kind", *names[1:]])


def check_env_cache(value: Any) -> str | None:
    """The ``env_cache`` start option: a directory as the nodes see it, absolute or starting with
    ``~`` or ``$`` (expanded on each node: ``$TMPDIR/merlin-envs`` makes a per-node cache)."""
    if value in (None, ""):
        return None
    text = str(value)
    if "\x00" in text or "\n" in text or not text.startswith(("/", "~", "$")):
        raise BadInput(
            f"`env_cache` {text!r}: give a directory as the nodes see it: absolute, or starting with ~ or $ (e.g. $TMPDIR/merlin-envs)",
            argument="env_cache",
        )
    return text


class ClusterBackend(Protocol):
    """One cluster kind. Constructed with the ledger; holds no connection at import."""

    #: the ``--kind`` value, e.g. "local", "slurm"
    kind: str

    def __init__(self, ledger: Ledger) -> None: ...

    def start(self, name: str, *, wait: bool = True, progress: Progress | None = None, **options: Any) -> tuple[ClusterRecord, bool]:
        """Start a cluster (or find it already live). Returns (record, started_now).

        Returns once the scheduler accepted it (``queued``/``starting``), or with
        ``wait`` once it is ``active``. Raises ``MerlinError`` on bad options."""
        ...

    def observe(self, record: ClusterRecord) -> ClusterRecord:
        """Ask the scheduler / processes / Jobs API and return the record as it now is
        (status moved only along :data:`CLUSTER_TRANSITIONS`, written through the ledger)."""
        ...

    def stop(self, record: ClusterRecord, *, grace: float = 5.0, progress: Progress | None = None) -> ClusterRecord:
        """End exactly what this cluster started (recorded pids / scheduler job id), verify
        nothing is left, and return the record as ``stopped``."""
        ...

    # Optional: ``describe(record)`` (a live ClusterState; see :func:`describe`), and
    # ``hold_conditions(record, observed_at)``: the kind's own reasons a run on this cluster
    # waits, e.g. a queued allocation's scheduler reason (``jobs why``; merlin.clusters.why).


#: The kind a cluster has when none is named (``ray cluster start-local``).
DEFAULT_KIND = "local"


class ClusterState(Value):
    """What a live check found, for a person: ``state`` is one of active, unreachable,
    starting, stopped, failed, expired, queued or absent (richer than the record's
    status: a recorded ``active`` cluster that does not answer is ``unreachable``)."""

    name: str
    state: str
    message: str
    record: Any = None
    alive_processes: int = 0
    version: dict[str, Any] | None = None
    next_steps: list[dict[str, Any]] = factory(default_factory=list)
    #: Listening sockets of the cluster's processes, measured now (local clusters): port, service, bound_to, pid.
    sockets: list[dict[str, Any]] = factory(default_factory=list)
    #: Active jobs on it that merlin did not submit (``ray job submit``, the SDK): id, status, entrypoint.
    foreign_jobs: list[dict[str, Any]] = factory(default_factory=list)

    @property
    def exposed(self) -> list[dict[str, Any]]:
        """Sockets other machines can reach (bound to anything but loopback)."""
        from merlin.clusters.exposure import exposed

        return exposed(self.sockets)

    def to_json(self) -> dict[str, Any]:
        rec = self.record.model_dump(mode="json") if self.record is not None else None
        return {
            "name": self.name,
            "state": self.state,
            "message": self.message,
            "alive_processes": self.alive_processes,
            "record": rec,
            "next_steps": list(self.next_steps),
            "sockets": list(self.sockets),
            "exposed": self.exposed,
            "foreign_jobs": list(self.foreign_jobs),
        }


def describe(backend: Any, record: ClusterRecord, sockets: bool = True) -> ClusterState:
    """A backend's live view of ``record``: its own ``describe`` if it has one,
    else what :meth:`ClusterBackend.observe` says, as a :class:`ClusterState`.
    ``sockets`` False: its ``describe_state`` if it has one (no socket measurement: a third of a second)."""
    own = (None if sockets else getattr(backend, "describe_state", None)) or getattr(backend, "describe", None)
    if own is not None:
        return own(record)
    seen = backend.observe(record)
    return ClusterState(seen.name, str(seen.status), seen.message, seen)


class LockedObservation:
    """``describe`` and ``observe`` for kinds whose observation asks the scheduler or the head
    and writes the record (Slurm, PBS, ssh): under the cluster's lock, never after it ended.
    A subclass supplies ``ledger`` and ``_observe_locked(record)``."""

    ledger: Any

    def _observe_locked(self, record: Any) -> Any:
        raise NotImplementedError

    def describe(self, record: Any) -> ClusterState:
        """``cluster status``: the record as :meth:`observe` just left it (no second query)."""
        return ClusterState(record.name, str(getattr(record.status, "value", record.status)), record.message, record, len(record.processes))

    def observe(self, record: Any) -> Any:
        if record.status in ("stopped", "failed", "expired"):
            return record
        with self.ledger.cluster_lock(record.name):
            current = self.ledger.read_cluster(record.name) or record
            if current.status in ("stopped", "failed", "expired"):
                return current
            return self._observe_locked(current)


def unanswered_record(name: str, kind: str, status: ClusterStatus, token_file: str, **fields: Any) -> ClusterRecord:
    """A Slurm/PBS/ssh cluster's record before its head answers: no address or ports yet,
    the jobs API reached on this host's 127.0.0.1, token auth (always on for these kinds)."""
    from merlin.ledger.models import ClusterAuth, ClusterPorts, ClusterRecord

    return ClusterRecord(
        name=name,
        kind=kind,
        status=status,
        host="127.0.0.1",
        address="",
        dashboard_url="",
        temp_dir="",
        ports=ClusterPorts(gcs=0, dashboard=0),
        auth=ClusterAuth(mode="token", token_file=token_file),
        **fields,
    )
