"""Process identity: a pid plus the time it started (pids are reused; the pair is not).

The one place merlin reads when a process started and judges whether a recorded
start names the process running now. The lease book (holders, waiters), the
local engine (supervisors, submitters) and the clusters (Ray heads, helpers,
tunnels) all ask here.

**Reading.** On Linux, one read of ``/proc/<pid>/stat``: the boot time
(``btime`` of ``/proc/stat``, read again after a second) plus the start field (clock ticks since
boot) over ``CLK_TCK``. That is how psutil computes ``create_time()``, so both
agree (a test holds them equal); psutil builds a Process and re-reads
``/proc/stat`` on every call, ten times the cost, and the lease book asks about
every live holder on each pass. Elsewhere (macOS), psutil.

**Forms on disk.** A recorded start is one of three forms; :func:`same_start`
reads each:

- ``float`` seconds since the epoch: lease records (``owner.pid_start``) and a
  waiting run's ``lease_waiter_start``;
- ``int`` hundredths of a second since the epoch (:func:`ticks`, always
  >= 10**10): run attempts (``supervisor_start``, ``submitter_start``) and
  cluster records (``processes[].start_ticks``, nodes' ``*_ticks``);
- ``int`` clock ticks since boot (< 10**10): cluster records written before
  merlin read starts through psutil; converted through the boot time.

**Written now:** the same reading (:func:`look`) in each record's own unit:
``int`` hundredths of a second since the epoch in run and cluster records (their
schema fields are integers), ``float`` seconds since the epoch in lease records
(their schema's unit). No record is written in clock ticks since boot any more.

**Same process:** a recorded start within :data:`SLACK` of the live one. The boot
time the kernel reports moves: it is whole seconds (the true one truncated), and a
clock step or NTP's slewing moves it, so a start read now can differ from the one
recorded by a second or more. The boot time is therefore never kept for a
process's life (a worker, a keeper or the gateway that ran for an hour would judge
live holders dead against records a fresh process wrote); and a pid is not
reused within seconds of the start of the process it named (the pid space would
have to wrap).

Imports nothing of merlin; psutil only where ``/proc`` is missing (or for a pid
``/proc`` cannot show). No ``from __future__ import annotations``: :class:`Seen`'s field types
as text would be compiled on every import (a ``jobs submit`` imports this module).
"""

import os
import time
from typing import NamedTuple

#: seconds a recorded start may differ from the live one and still name the same process
#: (the boot time's truncation to a whole second, plus the slewing of hours)
SLACK = 3.0
#: seconds a read of the boot time is used before it is read again
_BOOT_TTL = 1.0
# at or above this, a recorded int is hundredths of a second since the epoch (from 1973 on);
# below it, an old record's clock ticks since boot
_EPOCH_TICKS_FLOOR = 10**10


class Seen(NamedTuple):
    """A process as :func:`look` saw it."""

    #: seconds since the epoch
    start: float
    #: it has ended; only its table entry is left
    zombie: bool


_boot_read: tuple[float, tuple[float, int] | None] | None = None  # (monotonic time of the read, what it read)


def _boot_and_hz() -> tuple[float, int] | None:
    """``(boot time, CLK_TCK)`` from ``/proc/stat``, or None where there is no ``/proc``: read
    again once :data:`_BOOT_TTL` has passed, as psutil reads it on every call (see the module's docstring)."""
    global _boot_read
    now = time.monotonic()
    if _boot_read is not None and now - _boot_read[0] < _BOOT_TTL:
        return _boot_read[1]
    got: tuple[float, int] | None = None
    try:
        with open("/proc/stat", "rb") as handle:
            for line in handle:
                if line.startswith(b"btime "):
                    got = float(line.split()[1]), os.sysconf("SC_CLK_TCK")
                    break
    except (OSError, ValueError):
        pass
    _boot_read = (now, got)
    return got


def look(pid: int) -> Seen | None:
    """When ``pid`` started and whether it is a zombie; None when no such process exists (or it cannot be seen)."""
    base = _boot_and_hz()
    if base is not None:
        try:
            with open(f"/proc/{int(pid)}/stat", "rb") as handle:
                data = handle.read()
        except OSError:
            return None
        fields = data[data.rindex(b")") + 2 :].split()  # the command name may hold spaces and parentheses
        try:
            return Seen(base[0] + int(fields[19]) / base[1], fields[0] in (b"Z", b"X"))
        except (IndexError, ValueError):
            pass
    return _look_psutil(pid)


def _look_psutil(pid: int) -> Seen | None:
    try:
        import psutil

        proc = psutil.Process(pid)
        with proc.oneshot():
            return Seen(proc.create_time(), proc.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD))
    except Exception:
        return None


def start_time(pid: int) -> float | None:
    """``pid``'s start in seconds since the epoch (the form lease records keep), None if there is no such process."""
    found = look(pid)
    return found.start if found else None


def ticks(seconds: float) -> int:
    """A start in seconds since the epoch as run and cluster records keep it (hundredths of a second)."""
    return int(round(seconds * 100))


def start_ticks(pid: int) -> int | None:
    """``pid``'s start as run and cluster records keep it (:func:`ticks`); None if it is not running."""
    found = look(pid)
    return None if found is None or found.zombie else ticks(found.start)


def seconds(recorded: float) -> float:
    """A recorded start, in any form written (see the module's docstring), as seconds since the epoch."""
    if isinstance(recorded, float) and recorded < _EPOCH_TICKS_FLOOR:
        return recorded  # seconds since the epoch (lease records)
    if recorded >= _EPOCH_TICKS_FLOOR:
        return recorded / 100  # hundredths of a second since the epoch
    return _boot_time() + recorded / _hz()  # clock ticks since boot (old cluster records)


def _boot_time() -> float:
    base = _boot_and_hz()
    if base is not None:
        return base[0]
    import psutil

    return float(psutil.boot_time())


def _hz() -> int:
    try:
        return int(os.sysconf("SC_CLK_TCK"))
    except (ValueError, OSError, AttributeError):
        return 100


def same_start(recorded: float | None, current: float) -> bool:
    """Does ``recorded`` (any form) name the process that started at ``current`` (seconds since the epoch)?
    None means "any"."""
    if recorded is None:
        return True
    return abs(seconds(recorded) - current) <= SLACK


def alive(pid: int | None, recorded: float | None = None) -> bool:
    """``pid`` runs (not a zombie) and, when ``recorded`` is given (any form), is the process that started then."""
    if not pid:
        return False
    found = look(pid)
    return found is not None and not found.zombie and same_start(recorded, found.start)
