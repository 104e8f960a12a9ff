"""The executor's two state machines, each defined once: a task's state and an
execute's outcome. ``str`` Enums, so the JSON files hold plain strings and the
members compare equal to them. Imports nothing heavy.

The task table is a :class:`merlin.statemachine.Machine` (:data:`TASKS`);
``docs/targetgen.md`` shows the tables generated from here (``tools/gen_state_docs.py``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from merlin import statemachine
from merlin.errors import ExitCode


class TaskState(StrEnum):
    """Where one task of a target is."""

    #: Not started, or sent back to the start (an answer, a retry).
    PLANNED = "planned"
    #: SDK probes, credentials and the device gate passed; validation commands are next.
    PREFLIGHT_READY = "preflight_ready"
    #: An SDK probe failed; an operator question says what to do.
    PREFLIGHT_FAILED = "preflight_failed"
    #: Waiting for an operator's answer (credential, device, failed validation, branch gate).
    AWAITING_OPERATOR = "awaiting_operator"
    #: Waiting for the response file of the task's prompt.
    AWAITING_RESPONSE = "awaiting_response"
    #: A proposal (or none) is recorded; the branch gate is next.
    PROPOSAL_READY = "proposal_ready"
    #: Done. Final.
    COMPLETED = "completed"
    #: An operator marked it blocked; ``targetgen retry`` sends it back to planned.
    BLOCKED = "blocked"


#: Task states in which an operator question is open.
QUESTION_STATES = (TaskState.PREFLIGHT_FAILED, TaskState.AWAITING_OPERATOR)

_T = TaskState
#: old state -> states it may move to (None: the task's record is created). ``targetgen retry``
#: sends any started, unfinished task back to planned; an answer ``mark_blocked`` blocks it.
TASK_TRANSITIONS: dict[TaskState | None, frozenset[TaskState]] = {
    None: frozenset({_T.PLANNED}),
    _T.PLANNED: frozenset({_T.PREFLIGHT_READY, _T.PREFLIGHT_FAILED, _T.AWAITING_OPERATOR, _T.BLOCKED}),
    _T.PREFLIGHT_READY: frozenset({_T.COMPLETED, _T.AWAITING_RESPONSE, _T.PROPOSAL_READY, _T.AWAITING_OPERATOR, _T.PLANNED, _T.BLOCKED}),
    _T.PREFLIGHT_FAILED: frozenset({_T.PLANNED, _T.BLOCKED}),
    _T.AWAITING_OPERATOR: frozenset({_T.PLANNED, _T.PREFLIGHT_READY, _T.COMPLETED, _T.BLOCKED}),
    _T.AWAITING_RESPONSE: frozenset({_T.PROPOSAL_READY, _T.PLANNED, _T.BLOCKED}),
    _T.PROPOSAL_READY: frozenset({_T.AWAITING_OPERATOR, _T.COMPLETED, _T.PLANNED, _T.BLOCKED}),
    _T.COMPLETED: frozenset(),
    _T.BLOCKED: frozenset({_T.PLANNED}),
}


def _task_error(message: str, task_id: str, old: Any, new: Any) -> AssertionError:
    return AssertionError(f"{message} (see merlin.targetgen.vocab)")


#: The task machine: completed is final (blocked waits for ``targetgen retry``); no-ops are moves.
#: An illegal move is a bug in the executor, never a user's doing: an AssertionError.
TASKS: statemachine.Machine[TaskState] = statemachine.Machine(
    TaskState, TASK_TRANSITIONS, noop_is_move=True, noun="task", what="task state", error=_task_error,
    terminal=(_T.COMPLETED,),
)  # fmt: skip


def can_task_transition(old: TaskState | str | None, new: TaskState | str) -> bool:
    return TASKS.can(old, new)


class Outcome(StrEnum):
    """Where an execute stopped (``status`` says ``ready`` when nothing waits)."""

    #: Nothing waits: execute can go on (only ``status`` reports it).
    READY = "ready"
    #: Every task is completed. Exit 0.
    COMPLETED = "completed"
    #: A task is blocked. Exit 3.
    BLOCKED = "blocked"
    #: An operator question is open. Exit 10.
    AWAITING_OPERATOR = "awaiting_operator"
    #: A prompt waits for its response file. Exit 10.
    AWAITING_RESPONSE = "awaiting_response"

    @property
    def exit_code(self) -> int:
        return OUTCOME_EXIT[self]


#: The CLI's exit code for each outcome (the executor's own).
OUTCOME_EXIT: dict[Outcome, int] = {
    Outcome.READY: ExitCode.OK,
    Outcome.COMPLETED: ExitCode.OK,
    Outcome.BLOCKED: ExitCode.BLOCKED,
    Outcome.AWAITING_OPERATOR: ExitCode.WAITING,
    Outcome.AWAITING_RESPONSE: ExitCode.WAITING,
}

#: An execute ends in one of these (``ready`` is a status, never an execute's end).
EXECUTE_OUTCOMES = (Outcome.COMPLETED, Outcome.BLOCKED, Outcome.AWAITING_OPERATOR, Outcome.AWAITING_RESPONSE)
