"""What wakes a sweep's driver (docs/sweeps.md): the end of a busy run's supervisor, through a pidfd.

A run whose engine records a supervisor process (the local engine's ``supervisor_pid``) ends when
that process does: the driver waits on a pidfd of each (Linux 5.3+), so it passes over the record
the moment an item's slot frees instead of polling it. Supervisors the driver forked are its
children: each wake reaps them. Where there is no pidfd, or no supervisor to watch (a Ray job, a
Slurm job, a run waiting for its lease), the driver polls.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from merlin.control.plane import Plane


class Exits:
    """The supervisors a driver watches: run id -> (pid, pidfd)."""

    def __init__(self) -> None:
        self.watched: dict[str, tuple[int, int]] = {}

    def watch_run(self, cp: Plane, run_id: str | None) -> bool:
        """Watch ``run_id``'s live supervisor (True), or say it has none to watch (False: poll it)."""
        if not run_id:
            return False
        if run_id in self.watched:
            return True
        if not hasattr(os, "pidfd_open"):
            return False
        try:
            raw = cp.ledger.read_raw(run_id)
        except Exception:  # unreadable now: polled instead
            return False
        att = (raw.get("attempts") or [{}])[-1]
        pid, start = att.get("supervisor_pid"), att.get("supervisor_start")
        if raw.get("status") not in ("pending", "running"):
            return False
        forked = getattr(cp.engine(raw.get("engine") or "local"), "forked", {}).pop(run_id, None)
        if not pid:  # a supervisor this driver forked, not recorded yet: its child, watched from the start
            return self._watch(run_id, forked)
        from merlin.clusters import procs

        if not procs.alive(pid, start):  # ended already: the next pass settles it
            return False
        return self._watch(run_id, pid)

    def _watch(self, run_id: str, pid: int | None) -> bool:
        if not pid:
            return False
        try:
            fd = os.pidfd_open(pid)
        except OSError:  # gone (and reaped) already: the next pass settles it
            return False
        self.watched[run_id] = (pid, fd)
        return True

    def wait(self, timeout: float) -> None:
        """Until a watched supervisor ends, or ``timeout`` seconds; reap the driver's ended children."""
        if self.watched:
            import select

            fds = {fd: run_id for run_id, (_pid, fd) in self.watched.items()}
            poller = select.poll()  # not select(): a driver of many items may hold a pidfd past 1024
            for fd in fds:
                poller.register(fd, select.POLLIN)
            for fd, _event in poller.poll(max(0, int(timeout * 1000))):
                del self.watched[fds[fd]]
                os.close(fd)
        else:
            time.sleep(timeout)
        reap()

    def close(self) -> None:
        for _pid, fd in self.watched.values():
            os.close(fd)
        self.watched.clear()
        reap()


def reap() -> None:
    """Collect every ended child of this process (the supervisors a driver forked), never blocking."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
