"""The process that waits for a run's lease: who it is, whether it still runs, and what it waits on.

A run recorded ``waiting`` starts only when its waiter (the detached
``lease_waiter``, or the ``targetgen execute`` process itself) sees the grant.
The run's record keeps that process's identity (pid, start time, host and the
attempt it waits for) in its metadata, so whoever next looks at the run can
tell that a SIGKILLed waiter will never start it. The record also keeps a short
``waiting_on`` line, written by the waiter, so that listings show what each
waiting run waits on without a lease-book pass per row.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from typing import Any

from merlin.leases.policy import describe


def identity(pid: int, attempt: int) -> dict[str, Any]:
    """The metadata a waiting run records about its waiter."""
    from merlin.procid import start_time

    return {"lease_waiter_pid": pid, "lease_waiter_start": start_time(pid), "lease_waiter_host": socket.gethostname(), "lease_waiter_attempt": attempt}


def gone(status: str, metadata: Mapping[str, Any], attempts: int) -> int | None:
    """The pid of the waiter of a ``waiting`` run's latest attempt when it provably no longer runs, else None.

    Only a waiter recorded for this very attempt on this host is judged (a
    retry's new attempt has no waiter yet; another host's process cannot be seen)."""
    if status != "waiting":
        return None
    pid = metadata.get("lease_waiter_pid")
    if not isinstance(pid, int) or metadata.get("lease_waiter_attempt") != attempts:
        return None
    if metadata.get("lease_waiter_host") != socket.gethostname():
        return None
    from merlin.procid import look, same_start

    found = look(pid)
    recorded = metadata.get("lease_waiter_start")
    if found is None or found.zombie:
        return pid  # no such process, or dead and not yet reaped
    if isinstance(recorded, (int, float)) and not same_start(recorded, found.start):
        return pid  # the pid now belongs to another process
    return None


def waiting_on(lease: Mapping[str, Any], why: Sequence[Mapping[str, Any]]) -> str:
    """One short line for listings: ``lease firesim_fpga:1, #2 in queue behind lease-...``."""
    what = f"lease {describe(lease.get('bundles') or [])}"
    if not why:
        return f"{what}, queued"
    first = why[0]
    ev = first.get("evidence") or {}
    code = first.get("code")
    if code == "lease_queued":
        ahead = ev.get("ahead") or []
        return f"{what}, #{ev.get('position')} in queue behind {ahead[-1] if ahead else 'earlier requests'}"
    if code == "lease_item_held":
        run = f", run {ev['run_id']}" if ev.get("run_id") else ""
        until = str(ev.get("until") or "?")
        return f"{what}, {ev.get('item')} held by {ev.get('holder_lease')}{run} until {until[:19]}Z"
    if code == "lease_item_not_good":
        return f"{what}, {ev.get('item')} is {ev.get('health')}"
    if code == "lease_item_drained":
        return f"{what}, {ev.get('item')} is drained"
    if code == "lease_pending_pass":
        return f"{what}, grantable at the next pass"
    return f"{what}: {first.get('message', '')}"
