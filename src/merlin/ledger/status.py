"""Run status vocabulary and the one table of legal transitions.

Modelled on Ray's ``JobStatus`` and SkyPilot's ``job_lib.JobStatus``: a
``str`` Enum whose values are what the ledger stores. Every status change in
the ledger goes through :func:`check_transition`, so an engine, a supervisor
and a user's ``cancel`` racing each other can never move a run backwards
(e.g. ``cancelled`` -> ``failed``).

This module imports nothing heavy: the fast ``jobs list`` path uses it.
"""

from __future__ import annotations

from enum import Enum


class RunStatus(str, Enum):
    """Where a run is. ``str`` so records and ``--json`` hold plain strings."""

    #: Could not be handed to its engine: Ray missing, no active cluster, cluster
    #: unreachable, token missing. The message names the fix.
    #: -> pending (``jobs retry``), cancelled.
    BLOCKED = "blocked"
    #: Waiting for a hardware lease (docs/leases.md): recorded, not handed to its
    #: engine yet; it starts by itself when the lease is granted. Not blocked (no
    #: person needs to act) and not pending (no engine has it).
    #: -> pending, running, cancelled, blocked, failed (the lease could never be granted).
    WAITING = "waiting"
    #: Recorded and handed to the engine, not started yet (Ray: PENDING).
    #: -> running, succeeded, failed, cancelled, lost, blocked (submission refused).
    PENDING = "pending"
    #: The command is executing. -> succeeded, failed, cancelled, lost.
    RUNNING = "running"
    #: The command exited 0. Final: no transition out.
    SUCCEEDED = "succeeded"
    #: The command exited non-zero or the engine failed it. -> pending (retry).
    FAILED = "failed"
    #: Stopped on request (``jobs cancel``). -> pending (retry).
    CANCELLED = "cancelled"
    #: The engine no longer knows the attempt (cluster stopped or restarted,
    #: supervisor killed). History stays in the ledger. -> pending (retry).
    LOST = "lost"

    def __str__(self) -> str:
        return self.value

    def is_terminal(self) -> bool:
        """True when nothing is executing and no engine will change the run.

        Only a person (``jobs retry``) can move a terminal run again. ``blocked``
        counts as terminal: it waits for a person, not for an engine.
        """
        return self in _TERMINAL

    def is_active(self) -> bool:
        """Pending or running: an engine may still change it."""
        return self in (RunStatus.PENDING, RunStatus.RUNNING)

    def is_retryable(self) -> bool:
        return self in _RETRYABLE


_TERMINAL = frozenset(
    {RunStatus.BLOCKED, RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.LOST}
)
_RETRYABLE = frozenset({RunStatus.BLOCKED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.LOST})

#: The only legal moves. ``None`` is "no record yet".
TRANSITIONS: dict[RunStatus | None, frozenset[RunStatus]] = {
    None: frozenset({RunStatus.PENDING, RunStatus.BLOCKED, RunStatus.RUNNING, RunStatus.WAITING}),
    RunStatus.WAITING: frozenset({RunStatus.PENDING, RunStatus.RUNNING, RunStatus.CANCELLED, RunStatus.BLOCKED, RunStatus.FAILED}),
    RunStatus.BLOCKED: frozenset({RunStatus.PENDING, RunStatus.CANCELLED}),
    RunStatus.PENDING: frozenset(
        {
            RunStatus.RUNNING,
            RunStatus.SUCCEEDED,
            RunStatus.FAILED,
            RunStatus.CANCELLED,
            RunStatus.LOST,
            RunStatus.BLOCKED,
        }
    ),
    # running -> blocked: an in-process run (targetgen execute --engine local) that met a busy lock or a Blocked error
    RunStatus.RUNNING: frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.LOST, RunStatus.BLOCKED}),
    RunStatus.SUCCEEDED: frozenset(),
    RunStatus.FAILED: frozenset({RunStatus.PENDING}),
    RunStatus.CANCELLED: frozenset({RunStatus.PENDING}),
    RunStatus.LOST: frozenset({RunStatus.PENDING}),
}


class IllegalTransition(Exception):
    """A bug or a lost race: the caller tried to move a run where it cannot go."""

    def __init__(self, run_id: str, old: RunStatus | None, new: RunStatus) -> None:
        super().__init__(f"run {run_id}: illegal status change {old} -> {new}")
        self.run_id = run_id
        self.old = old
        self.new = new


def can_transition(old: RunStatus | str | None, new: RunStatus | str) -> bool:
    old_s = RunStatus(old) if old is not None else None
    new_s = RunStatus(new)
    return old_s == new_s or new_s in TRANSITIONS[old_s]


def check_transition(run_id: str, old: RunStatus | str | None, new: RunStatus | str) -> None:
    """Raise :class:`IllegalTransition` unless ``old -> new`` is in the table (or a no-op)."""
    if not can_transition(old, new):
        raise IllegalTransition(run_id, RunStatus(old) if old is not None else None, RunStatus(new))
