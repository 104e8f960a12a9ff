"""Run status vocabulary and the one table of legal transitions.

Modelled on Ray's ``JobStatus`` and SkyPilot's ``job_lib.JobStatus``: a
``str`` Enum whose values are what the ledger stores. Both machines (runs,
clusters) are :class:`merlin.statemachine.Machine` objects. Every status change in
the ledger goes through :func:`check_transition`, so an engine, a supervisor
and a user's ``cancel`` racing each other can never move a run backwards
(e.g. ``cancelled`` -> ``failed``).

This module imports nothing heavy: the fast ``jobs list`` path uses it.
"""

from __future__ import annotations

from enum import StrEnum

from merlin import statemachine


class RunStatus(StrEnum):
    """Where a run is. ``str`` so records and ``--json`` hold plain strings.

    The moves are :data:`TRANSITIONS` alone (the docs' table is generated from it).
    Three moves are deliberate and easy to miss:

    - ``None -> running``: work recorded in-process (``targetgen execute`` on the
      default engine) is already running when its record is created.
    - ``running -> blocked``: such an in-process run can meet a busy target lock
      or a ``Blocked`` error half-way. Nothing failed (a retry of the same command
      would fail the same way until a person acts), so it is recorded as blocked,
      the status that waits for a person, not as failed. An engine-observed run
      never reports it: engines map their states to running/succeeded/failed/...
    - ``waiting -> lost``: the process waiting for the run's lease (its recorded
      pid and start time) died before the lease was granted, so nothing will ever
      start the run. The next look at the run (``jobs status``, ``jobs list
      --refresh``, ``jobs wait``, ``resources queue``) records it lost, not
      failed (its command never ran) nor cancelled (nobody asked); a retry queues
      it again. The lease book cancels the dead waiter's request by itself.
    - ``waiting -> succeeded``: a Ray job whose env launcher builds the run's env
      on the node is ``waiting`` until the launcher reports the env ready; a
      command that ends between two looks goes from waiting to its end.
    """

    #: Could not be handed to its engine (Ray missing, no active cluster, cluster unreachable, token missing), its environment could not be built (its command never ran), or an in-process run met a busy lock or a Blocked error. The message and next steps name the fix.
    BLOCKED = "blocked"
    #: Waiting for a hardware lease (docs/leases.md): recorded, not handed to its
    #: engine yet; it starts by itself when the lease is granted. Not blocked (no
    #: person needs to act) and not pending (no engine has it). Or, handed to its
    #: engine, waiting for its environment to build (docs/environments.md: the local supervisor,
    #: or a Ray job's env launcher on the node).
    #: -> pending, running, cancelled, blocked, failed (the lease could never be granted),
    #: lost (its waiter process died before the grant), succeeded (a Ray job seen ready and ended at once).
    WAITING = "waiting"
    #: Recorded and handed to the engine, not started yet (Ray: PENDING).
    PENDING = "pending"
    #: The command is executing (Ray: RUNNING).
    RUNNING = "running"
    #: The command exited 0 (Ray: SUCCEEDED).
    SUCCEEDED = "succeeded"
    #: The command exited non-zero or the engine failed it (Ray: FAILED).
    FAILED = "failed"
    #: Stopped on request, ``jobs cancel`` (Ray: STOPPED).
    CANCELLED = "cancelled"
    #: The engine no longer knows the attempt (cluster stopped or restarted, supervisor killed), or a waiting run's lease waiter died. History stays in the ledger.
    LOST = "lost"

    def is_terminal(self) -> bool:
        """True when nothing is executing and no engine will change the run.

        Only a person (``jobs retry``) can move a terminal run again. ``blocked``
        counts as terminal: it waits for a person, not for an engine.
        """
        return self in RUNS.terminal

    def is_active(self) -> bool:
        """Pending or running: an engine may still change it."""
        return self in (RunStatus.PENDING, RunStatus.RUNNING)

    def is_retryable(self) -> bool:
        return self in _RETRYABLE


_RETRYABLE = frozenset({RunStatus.BLOCKED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.LOST})

#: The only legal moves. ``None`` is "no record yet".
TRANSITIONS: dict[RunStatus | None, frozenset[RunStatus]] = {
    None: frozenset({RunStatus.PENDING, RunStatus.BLOCKED, RunStatus.RUNNING, RunStatus.WAITING}),
    # waiting -> lost, waiting -> succeeded: deliberate, see the RunStatus docstring
    RunStatus.WAITING: frozenset(
        {RunStatus.PENDING, RunStatus.RUNNING, RunStatus.SUCCEEDED, RunStatus.CANCELLED, RunStatus.BLOCKED, RunStatus.FAILED, RunStatus.LOST}
    ),
    RunStatus.BLOCKED: frozenset({RunStatus.PENDING, RunStatus.WAITING, RunStatus.CANCELLED}),
    # pending -> waiting: its engine builds its environment first (docs/environments.md)
    RunStatus.PENDING: frozenset(
        {
            RunStatus.WAITING,
            RunStatus.RUNNING,
            RunStatus.SUCCEEDED,
            RunStatus.FAILED,
            RunStatus.CANCELLED,
            RunStatus.LOST,
            RunStatus.BLOCKED,
        }
    ),
    # running -> blocked: deliberate, see the RunStatus docstring
    RunStatus.RUNNING: frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.LOST, RunStatus.BLOCKED}),
    RunStatus.SUCCEEDED: frozenset(),
    # -> waiting: a retry of a run that needs hardware queues for its lease again
    RunStatus.FAILED: frozenset({RunStatus.PENDING, RunStatus.WAITING}),
    RunStatus.CANCELLED: frozenset({RunStatus.PENDING, RunStatus.WAITING}),
    RunStatus.LOST: frozenset({RunStatus.PENDING, RunStatus.WAITING}),
}


#: ``metadata.waiting_for`` of a run its engine has while the job's env launcher finds or builds its
#: env on the node (a Ray job: ``engines/ray_env.py``): its engine is asked about it as about a
#: running run, as no waiter of merlin's stands behind it (docs/environments.md).
JOB_ENV = "job_env"


def engine_waits(status: str, metadata: object) -> bool:
    """A ``waiting`` run its engine has (its job prepares its env on the node)."""
    return status == RunStatus.WAITING.value and isinstance(metadata, dict) and metadata.get("waiting_for") == JOB_ENV


def on_its_engine(status: str, metadata: object) -> bool:
    """A run its engine has and has not ended (pending, running, or waiting on its job's env):
    what holds a cluster from idling out, and what a cluster's end makes lost."""
    return status in (RunStatus.PENDING.value, RunStatus.RUNNING.value) or engine_waits(status, metadata)


class IllegalTransition(statemachine.IllegalTransition):
    """A lost race (or a bug): the caller tried to move a run where it cannot go,
    usually because another process moved it first. Exit 3, code ``illegal_transition``."""

    def __init__(self, run_id: str, old: RunStatus | None, new: RunStatus, message: str | None = None) -> None:
        super().__init__(message or RUNS.message(run_id, old, new), run_id, old, new)
        self.run_id = run_id


def _run_error(message: str, run_id: str, old: RunStatus | None, new: RunStatus) -> IllegalTransition:
    return IllegalTransition(run_id, old, new, message)


#: The run machine: no-ops are moves (a writer may record the status a run already has).
RUNS: statemachine.Machine[RunStatus] = statemachine.Machine(
    RunStatus, TRANSITIONS, noop_is_move=True, noun="run", error=_run_error,
    terminal=(RunStatus.BLOCKED, RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.LOST),
    hint=" (another process changed it first; look at it again)",
)  # fmt: skip


def can_transition(old: RunStatus | str | None, new: RunStatus | str) -> bool:
    return RUNS.can(old, new)


def check_transition(run_id: str, old: RunStatus | str | None, new: RunStatus | str) -> None:
    """Raise :class:`IllegalTransition` unless ``old -> new`` is in the table (or a no-op)."""
    RUNS.check(run_id, old, new)


# ----------------------------------------------------------------- clusters


class ClusterStatus(StrEnum):
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

    def is_terminal(self) -> bool:
        return self in CLUSTERS.terminal

    def is_live(self) -> bool:
        """Something of the cluster may exist (queued job, processes)."""
        return not self.is_terminal()


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


#: The cluster machine: a no-op is a move only where the table says so.
CLUSTERS: statemachine.Machine[ClusterStatus] = statemachine.Machine(
    ClusterStatus, CLUSTER_TRANSITIONS, noop_is_move=False, noun="cluster",
    terminal=(ClusterStatus.STOPPED, ClusterStatus.FAILED, ClusterStatus.EXPIRED),
)  # fmt: skip


def can_cluster_transition(old: ClusterStatus | str | None, new: ClusterStatus | str) -> bool:
    return CLUSTERS.can(old, new)
