"""Process trees through psutil, so merlin signals only processes it can prove are its own.

A pid alone is not an identity (pids are reused); a pid plus its start time
is, and :mod:`merlin.procid` is the one judge of it: :func:`start_of`,
:func:`alive` and :func:`same_start` ask it. Here a start is kept as run and
cluster records keep it, an integer in hundredths of a second since the epoch
(``ProcInfo.start_ticks``); records written before psutil held Linux clock ticks
since boot, which :func:`same_start` still recognises.

psutil is imported inside the functions: ``merlin --help`` and the listing
commands never pay for it.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from merlin import procid

KILL_WAIT = 5.0  # seconds to wait for SIGKILLed processes to disappear

# psutil's status names as the one-letter states of ps(1) ("Z" zombie, "X" dead)
_STATE = {
    "running": "R", "sleeping": "S", "disk-sleep": "D", "stopped": "T", "tracing-stop": "t",
    "zombie": "Z", "dead": "X", "wake-kill": "K", "waking": "W", "idle": "I", "locked": "L",
    "waiting": "W", "suspended": "T", "parked": "P",
}

class ProcInfo(NamedTuple):  # a NamedTuple, not a dataclass: every supervisor and CLI imports this module
    pid: int
    ppid: int
    pgid: int
    sid: int
    start_ticks: int  # hundredths of a second since the epoch (see start_ticks())
    state: str  # one letter as in ps(1): R, S, D, T, Z (zombie), X (dead), ...
    name: str

    @property
    def gone(self) -> bool:
        """A zombie or dead process: it has ended, only its table entry is left."""
        return self.state in ("Z", "X")


def start_of(pid: int) -> int | None:
    """``pid``'s start time as a record keeps it (None if it is not running)."""
    return procid.start_ticks(pid)


def set_parent_death_signal(sig: int = signal.SIGKILL) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux
    ``PR_SET_PDEATHSIG``; a no-op elsewhere). Meant for ``preexec_fn``: a command
    then cannot outlive the supervisor that waits for it. Call :func:`load_prctl`
    in the parent first: then the child, between fork and exec, imports nothing."""
    prctl = load_prctl()
    if prctl is not None:
        try:
            prctl(1, int(sig), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            pass


_PRCTL: list[Any] = []


def load_prctl() -> Any:
    """libc's ``prctl`` (None where there is none), loaded once: importing ctypes in a forked child
    before its exec cost milliseconds per command started."""
    if not _PRCTL:
        import sys

        fn = None
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                fn = ctypes.CDLL(None, use_errno=True).prctl
            except (OSError, AttributeError):
                fn = None
        _PRCTL.append(fn)
    return _PRCTL[0]


def epoch_ticks(recorded: int) -> int:
    """A record's ``start_ticks`` in today's form (an old value, clock ticks since boot, converted)."""
    return procid.ticks(procid.seconds(recorded))


def same_start(recorded: int | None, current: int) -> bool:
    """Does ``recorded`` (a record's ``start_ticks``, either form) name the process
    that started at ``current`` (a ``ProcInfo.start_ticks``)? None means "any"
    (:func:`merlin.procid.same_start`)."""
    return procid.same_start(recorded, current / 100)


def _info(proc: Any) -> ProcInfo | None:
    import psutil

    try:
        with proc.oneshot():
            ppid, status, name, created = proc.ppid(), proc.status(), proc.name(), proc.create_time()
        pgid, sid = os.getpgid(proc.pid), os.getsid(proc.pid)
    except (psutil.Error, OSError):
        return None
    return ProcInfo(proc.pid, ppid, pgid, sid, procid.ticks(created), _STATE.get(status, "?"), name)


def proc_info(pid: int) -> ProcInfo | None:
    import psutil

    try:
        return _info(psutil.Process(pid))
    except (psutil.Error, ValueError):
        return None


def all_procs() -> list[ProcInfo]:
    import psutil

    out = []
    for proc in psutil.process_iter():
        info = _info(proc)
        if info is not None:
            out.append(info)
    return out


def stop_in_stages(stages: Iterable[Iterable[int]], starts: Mapping[int, int | None] | None = None) -> None:
    """SIGTERM each stage of pids in turn, waiting up to STAGE_WAIT seconds for it to exit before the
    next (``starts``: their start ticks, else read now; a pid not in it is left alone)."""
    for stage in stages:
        early = {p: starts.get(p) for p in stage if p in starts} if starts is not None else {
            p: info.start_ticks for p in stage if (info := proc_info(p)) is not None and not info.gone}
        if not early:
            continue
        signal_pids(early, signal.SIGTERM)
        until = time.monotonic() + STAGE_WAIT
        while time.monotonic() < until and any(alive(p, s) for p, s in early.items()):
            time.sleep(0.02)


def matching(pids: Iterable[int], needle: str) -> set[int]:
    """Those of ``pids`` whose command line holds ``needle``."""
    return {p for p in pids if needle in cmdline(p)}


def cmdline(pid: int) -> str:
    import psutil

    try:
        return " ".join(psutil.Process(pid).cmdline())
    except (psutil.Error, ValueError, OSError):
        return ""


def alive(pid: int | None, start: int | None = None) -> bool:
    """True if ``pid`` runs (not a zombie) and, when given, started at ``start`` (a record's start_ticks)."""
    return procid.alive(pid, start)


def descendants(roots: Iterable[int], procs: list[ProcInfo] | None = None) -> set[int]:
    procs = procs if procs is not None else all_procs()
    children: dict[int, list[int]] = {}
    for p in procs:
        children.setdefault(p.ppid, []).append(p.pid)
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        pid = stack.pop()
        for c in children.get(pid, []):
            if c not in seen:
                seen.add(c)
                stack.append(c)
    return seen


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) members of process group ``pgid``; one getpgid per pid, cheap to poll."""
    import psutil

    out = []
    for pid in psutil.pids():
        try:
            if os.getpgid(pid) != pgid:
                continue
        except OSError:
            continue
        info = proc_info(pid)
        if info is not None and not info.gone:
            out.append(pid)
    return out


def signal_pids(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


class Termination:
    """What :func:`terminate` did: who got SIGTERM, who needed SIGKILL, who is still there."""

    def __init__(self, signalled: set[int] | None = None, killed: set[int] | None = None, survivors: set[int] | None = None) -> None:
        self.signalled: set[int] = signalled if signalled is not None else set()
        self.killed: set[int] = killed if killed is not None else set()
        self.survivors: set[int] = survivors if survivors is not None else set()

    def __repr__(self) -> str:
        return f"Termination(signalled={self.signalled}, killed={self.killed}, survivors={self.survivors})"


def _signal_group(pgid: int | None, sig: int) -> None:
    if pgid:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass


#: seconds each of :func:`terminate`'s ``first`` stages may take to exit before the rest are signalled
STAGE_WAIT = 2.0


def terminate(pids: Iterable[int] = (), *, pgid: int | None = None, grace: float = 5.0, first: Iterable[Iterable[int]] = ()) -> Termination:
    """End a process tree: SIGTERM to ``pids`` and the process group ``pgid``, wait up to
    ``grace`` seconds, then SIGKILL whatever is left (group included) and wait for it.
    ``first``: stages of those pids to SIGTERM (and wait up to STAGE_WAIT seconds for) before
    the rest, for processes that shut down cleanly only while others still run (a Ray head's).

    The one place merlin escalates from SIGTERM to SIGKILL (cluster stop, local
    cancel). Never signals the calling process. A pid counts as ended when it
    is gone or a zombie, and only while it is the process that was signalled
    (its start time is checked, so a reused pid is not waited for).
    """
    me = os.getpid()
    wanted = {p for p in pids if p != me}
    if pgid:
        wanted |= {p for p in group_members(pgid) if p != me}
    starts = {p: info.start_ticks for p in wanted if (info := proc_info(p)) is not None and not info.gone}
    result = Termination(signalled=set(starts))

    def remaining() -> set[int]:
        left = {p for p, s in starts.items() if alive(p, s)}
        if pgid:
            left |= {p for p in group_members(pgid) if p != me}
        return left

    stop_in_stages(first, starts)
    if pgid and pgid != os.getpgid(0):
        _signal_group(pgid, signal.SIGTERM)
    signal_pids(starts, signal.SIGTERM)
    deadline = time.monotonic() + grace
    left = remaining()
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = remaining()
    if left:
        result.killed = set(left)
        if pgid and pgid != os.getpgid(0):
            _signal_group(pgid, signal.SIGKILL)
        signal_pids(left, signal.SIGKILL)
        deadline = time.monotonic() + KILL_WAIT
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = remaining()
    result.survivors = left
    return result


def processes_with_env(key: str, value: str) -> list[int]:
    """Live processes of this user whose environment has ``key=value``: a run's processes carry
    ``MERLIN_RUN_ID``, so they are found after Ray lost them (reparented to init, in no Ray
    session). Never this process."""
    return sorted(pid for pid, v in env_values(key).items() if v == value)


def env_values(key: str) -> dict[int, str]:
    """``key``'s value in the environment of each live process of this user that has it (pid ->
    value), in one pass: ``/proc/<pid>/environ`` where it exists, psutil elsewhere; never this process."""
    me = os.getpid()
    prefix = f"{key}=".encode()
    out: dict[int, str] = {}
    if os.path.isdir("/proc/self"):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit() or int(entry.name) == me:
                continue
            try:
                with open(f"/proc/{entry.name}/environ", "rb") as fh:
                    env = fh.read()
            except OSError:  # gone, or another user's
                continue
            if prefix not in env:
                continue
            for item in env.split(b"\0"):
                if item.startswith(prefix):
                    info = proc_info(int(entry.name))
                    if info is not None and not info.gone:
                        out[info.pid] = item[len(prefix):].decode(errors="replace")
                    break
        return out
    import psutil

    for proc in psutil.process_iter():
        try:
            value = proc.environ().get(key) if proc.pid != me else None
            if value is not None and proc.status() != psutil.STATUS_ZOMBIE:
                out[proc.pid] = value
        except (psutil.Error, OSError):
            continue
    return out


def end_carriers(key: str, values: Iterable[str], grace: float = 2.0) -> tuple[set[int], set[int]]:
    """End the processes of this user whose environment gives ``key`` one of ``values`` (a run's
    ``MERLIN_RUN_ID``: what a lost run left, found after Ray lost it): ``(ended, still alive)``."""
    wanted = set(values)
    pids = {pid for pid, v in env_values(key).items() if v in wanted} if wanted else set()
    if not pids:
        return set(), set()
    survivors = terminate(pids, grace=grace).survivors
    return pids - survivors, survivors
