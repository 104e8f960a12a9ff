"""Ending a cluster's processes and proving they are gone: the one loop every non-local kind uses.

A cluster's processes are named by what its record holds -- pids with their
start times, the node temp dirs their command lines carry -- and by their
descendants, never by process name, so another Ray on the same node survives.
Slurm/PBS stop (after the scheduler's cancel), their clean-up of an allocation
that ended by itself, and the ssh kind's remote ``reap`` all go through
:func:`members` then :func:`end`; :func:`mark_stopped` writes the outcome into
the record the same way for each kind.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from merlin.clusters import procs

#: the per-node temp dirs merlin gives Ray on Slurm, PBS and ssh nodes (see slurm_node.py)
TEMP_PREFIX = "/tmp/mrl-"
POLL = 0.25


def members(recorded: Mapping[int, int | None], markers: Iterable[str] = (), roots: Iterable[int] = ()) -> set[int]:
    """Live processes of a cluster on this host: the ``recorded`` pids (pid -> start ticks; None
    means any start), ``roots``, anything whose command line names one of ``markers`` (its temp
    dirs), and all their descendants. Never this process."""
    all_p = procs.all_procs()
    pids = {p.pid for p in all_p if p.pid in recorded and not p.gone and procs.same_start(recorded[p.pid], p.start_ticks)}
    pids |= set(roots)
    marks = [m for m in markers if m]
    if marks:
        for p in all_p:
            if p.pid not in pids and not p.gone and any(m in procs.cmdline(p.pid) for m in marks):
                pids.add(p.pid)
    pids |= procs.descendants(pids, all_p)
    pids.discard(os.getpid())
    return {p for p in pids if procs.alive(p)}


#: what of a Ray node to stop first, in order: a head's autoscaler monitor, then the raylet.
#: Signalled all at once (as a scheduler's cancel signals them), the GCS, raylet, monitor and
#: runtime env agent each wait for another that is going too and outlive SIGTERM: a local head's
#: stop took its whole grace, then SIGKILL, and a Slurm cluster's 15 s. In this order a head ends
#: in under a second, as `ray stop` ends it.
STOP_FIRST = ("autoscaler/_private/monitor.py", "/raylet/raylet")


def stop_stages(pids: Iterable[int]) -> list[set[int]]:
    """``pids``' processes to stop before the rest (:data:`STOP_FIRST`), for ``procs.terminate``."""
    pids = set(pids)
    return [procs.matching(pids, needle) for needle in STOP_FIRST]


@dataclass
class Ended:
    """What :func:`end` found: ``left`` outlived the polite end and were signalled; ``survivors`` outlived SIGKILL too."""

    left: set[int] = field(default_factory=set)
    survivors: set[int] = field(default_factory=set)


def end(find: Callable[[], set[int]], *, snapshot: Iterable[int] = (), grace: float = 5.0) -> Ended:
    """Give ``snapshot`` (taken before the scheduler's cancel or the helper's SIGTERM) ``grace``
    seconds to exit by itself, then end what is left of it and whatever ``find`` still names
    (SIGTERM, then SIGKILL), and say what that was."""
    snap = set(snapshot)
    deadline = time.monotonic() + grace
    while snap and time.monotonic() < deadline and any(procs.alive(p) for p in snap):
        time.sleep(POLL)
    left = {p for p in snap if procs.alive(p)} | find()
    survivors = procs.terminate(left, grace=grace, first=stop_stages(left)).survivors if left else set()
    return Ended(left=left, survivors=survivors)


def remove_temp_dirs(dirs: Iterable[str]) -> None:
    """Remove the node temp dirs merlin made (only those under its own prefix)."""
    for d in dirs:
        if d and d.startswith(TEMP_PREFIX):
            shutil.rmtree(d, ignore_errors=True)


def mark_stopped(record: Any, message: str, lost: Iterable[str]) -> None:
    """Record a cluster merlin stopped: ``stopped`` (from ``stopping``), why, when, the runs lost with it."""
    from merlin.clock import utcnow
    from merlin.clusters.base import can_cluster_transition

    lost = sorted(lost)
    record.lost_runs = sorted(set(record.lost_runs) | set(lost))
    if lost:
        message += f"; {len(lost)} runs recorded lost"
    if record.status == "stopped" or can_cluster_transition(record.status, "stopped"):
        record.status = "stopped"
    record.message = message
    record.stop_reason = "stopped by merlin"
    record.stopped_at = utcnow()
    record.processes = []
