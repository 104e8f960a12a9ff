"""How an attempt ended, by failure class: the one rule the retry budgets count by (docs/retries.md).

``infrastructure``: the attempt was taken from under the command (the run was lost, its node or
head died, its cluster was stopped under it, its lease was revoked, its waiter or supervisor was
killed, the Slurm allocation ended). ``program``: the command itself exited non-zero (or could not
start). Anything else (succeeded, cancelled by a person, blocked waiting for a person) has no class
and is never retried automatically. Plain Python: the listing path imports it.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from datetime import datetime
from typing import Any

INFRASTRUCTURE = "infrastructure"
PROGRAM = "program"

#: error types that say the infrastructure ended a failed or cancelled attempt (merlin's and Ray's JobErrorType)
INFRA_ERROR_TYPES = frozenset(
    {
        "SUPERVISOR_DIED",
        "SUBMITTER_DIED",
        "SUBMISSION_UNKNOWN",
        "CLUSTER_STOPPED",
        "CLUSTER_LOST",
        "ALLOCATION_ENDED",
        "cluster_ended",
        "LEASE_REVOKED",
        "LEASE_WAITER_DIED",
        "NODE_DIED",
        "REPLICA_LOST",
        "JOB_SUPERVISOR_ACTOR_DIED",
        "JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE",
        "JOB_SUPERVISOR_ACTOR_START_TIMEOUT",
        "JOB_SUPERVISOR_ACTOR_START_FAILURE",
        "JOB_SUPERVISOR_ACTOR_UNKNOWN_FAILURE",
    }
)


#: signals that end a process from outside (the OOM killer, a person, a node going down): a replica of a
#: gang ended by one is lost, an infrastructure end; any other signal (SIGSEGV, SIGABRT...) is the
#: program's own failure. The local supervisor and the Ray gang driver judge their replicas by it.
OUTSIDE_SIGNALS = frozenset({signal.SIGKILL, signal.SIGTERM, signal.SIGHUP, signal.SIGINT})


def ended_from_outside(returncode: int | None) -> bool:
    """Whether a process that exited with ``returncode`` (negative: killed by that signal, as
    ``subprocess`` reports it) was ended from outside, by one of :data:`OUTSIDE_SIGNALS`."""
    return returncode is not None and returncode < 0 and -returncode in OUTSIDE_SIGNALS


#: failed attempts that need a person, not another try: the lease can never be granted, the engine refused it
NO_CLASS_ERROR_TYPES = frozenset({"LEASE_NOT_GRANTED", "SUBMIT_ERROR", "GANG_UNPLACEABLE"})


def classify(status: str, error_type: str | None) -> str | None:
    """The failure class of an attempt that ended with ``status`` and ``error_type``, or None."""
    if status == "lost":
        return INFRASTRUCTURE
    if status == "cancelled":
        return INFRASTRUCTURE if error_type in INFRA_ERROR_TYPES else None  # a person's cancel has no class
    if status == "failed":
        if error_type in NO_CLASS_ERROR_TYPES:
            return None
        return INFRASTRUCTURE if error_type in INFRA_ERROR_TYPES else PROGRAM
    return None


def attempt_class(att: Any) -> str | None:
    """The recorded class of an attempt (a record or its JSON), else the class its end implies."""
    get = att.get if isinstance(att, dict) else lambda k: getattr(att, k, None)
    status = get("status")
    status = getattr(status, "value", status)
    recorded = get("failure_class")
    return recorded or classify(str(status), get("error_type"))


def ended_how(att: Mapping[str, Any]) -> str:
    """``lost: node died``: how an attempt (its JSON) ended, in a few words."""
    status = str(att.get("status"))
    lines = str(att.get("error_message") or att.get("error_type") or "").strip().splitlines()
    detail = lines[0].split("; ")[0][:160] if lines else (f"exit code {att['exit_code']}" if att.get("exit_code") is not None else "")
    if detail.startswith(f"{status}: "):
        detail = detail[len(status) + 2 :]  # "lost: lost: ..." reads once
    return f"{status}: {detail}" if detail else status


def attempt_line(run: Mapping[str, Any], now: datetime) -> str | None:
    """``attempt 3 of 4, retrying in 12 s after lost: node died`` (a retry pending, seconds from ``now``),
    or ``attempt 2 of 4`` for a run with retry budgets (its JSON, ``max_attempts`` set); else None."""
    most = run.get("max_attempts")
    attempts = run.get("attempts") or []
    if not most or not attempts:
        return None
    line = f"attempt {len(attempts)} of {most}"
    at = run.get("retry_at")
    if at and run.get("status") == "pending" and len(attempts) >= 2:
        from merlin.clock import parse

        due = parse(at) if isinstance(at, str) else at.timestamp()
        left = max(0.0, (due or 0.0) - now.timestamp())
        line += f", retrying in {left:.0f} s after {ended_how(attempts[-2])}"
    return line
