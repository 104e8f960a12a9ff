"""Is a process still there, and since when: one read of ``/proc/<pid>/stat`` on Linux, psutil elsewhere.

The lease book asks this about the holder of every live lease on its passes.
psutil builds a Process and re-reads ``/proc/stat`` for the boot time on each
call (about 0.1 ms, three opens); one read of ``/proc/<pid>/stat`` costs a
tenth of that. The start time is computed as psutil computes it (boot time +
start ticks / CLK_TCK), so a start recorded by either agrees with the other.
"""

from __future__ import annotations

import functools
import os


@functools.cache
def _boot_and_ticks() -> tuple[float, int] | None:
    try:
        with open("/proc/stat", "rb") as handle:
            for line in handle:
                if line.startswith(b"btime "):
                    return float(line.split()[1]), os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        pass
    return None


def look(pid: int) -> tuple[float, bool] | None:
    """``(start time, is a zombie)`` of ``pid``, or None when no such process exists (or it cannot be seen)."""
    base = _boot_and_ticks()
    if base is not None:
        try:
            with open(f"/proc/{int(pid)}/stat", "rb") as handle:
                data = handle.read()
        except OSError:
            return None
        fields = data[data.rindex(b")") + 2 :].split()  # the command name may hold spaces and parentheses
        try:
            return base[0] + int(fields[19]) / base[1], fields[0] == b"Z"
        except (IndexError, ValueError):
            pass
    try:
        import psutil

        proc = psutil.Process(pid)
        with proc.oneshot():
            return proc.create_time(), proc.status() == psutil.STATUS_ZOMBIE
    except Exception:
        return None


def start_time(pid: int) -> float | None:
    found = look(pid)
    return found[0] if found else None
