"""Process facts from /proc, so merlin signals only processes it can prove are its own.

A pid alone is not an identity (pids are reused); a pid plus its start time
(field 22 of /proc/<pid>/stat, in clock ticks since boot) is.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    pgid: int
    sid: int
    start_ticks: int
    state: str
    name: str


def proc_info(pid: int) -> ProcInfo | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read().decode("utf-8", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError, OSError):
        return None
    # comm may contain spaces and parentheses: split at the last ')'
    lpar, rpar = raw.find("("), raw.rfind(")")
    name = raw[lpar + 1 : rpar]
    fields = raw[rpar + 2 :].split()
    try:
        return ProcInfo(
            pid=pid,
            ppid=int(fields[1]),
            pgid=int(fields[2]),
            sid=int(fields[3]),
            start_ticks=int(fields[19]),
            state=fields[0],
            name=name,
        )
    except (IndexError, ValueError):
        return None


def all_procs() -> list[ProcInfo]:
    out = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for n in names:
        if n.isdigit():
            info = proc_info(int(n))
            if info is not None:
                out.append(info)
    return out


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\x00", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def alive(pid: int | None, start_ticks: int | None = None) -> bool:
    """True if ``pid`` runs (not a zombie) and, when given, started at ``start_ticks``."""
    if not pid:
        return False
    info = proc_info(pid)
    if info is None or info.state in ("Z", "X"):
        return False
    return start_ticks is None or info.start_ticks == start_ticks


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
    return [p.pid for p in all_procs() if p.pgid == pgid and p.state not in ("Z", "X")]


def signal_pids(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def terminate(pids: set[int], grace: float = 5.0) -> set[int]:
    """SIGTERM, wait up to ``grace`` seconds, SIGKILL survivors. Returns pids that were still alive."""
    pids = {p for p in pids if p != os.getpid()}
    signal_pids(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace
    remaining = {p for p in pids if alive(p)}
    while remaining and time.monotonic() < deadline:
        time.sleep(0.1)
        remaining = {p for p in remaining if alive(p)}
    if remaining:
        signal_pids(remaining, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while remaining and time.monotonic() < deadline:
            time.sleep(0.05)
            remaining = {p for p in remaining if alive(p)}
    return remaining
