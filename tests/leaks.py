"""Processes a test run left behind: found at the end of the run, reported, and ended.

Tests must end what they start, even when they fail. Whatever a test starts runs
with the test's temporary directory in its command line or as its working
directory (a state root, a target, a gate file), so, once every worker is done,
the controller lists the live processes that name this run's base temp dir and
are not pytest's own or the Ray reaper (which ends by itself once the run is
over). Each is reported in red with its command line, so the test that leaked
it can be found and fixed, and ended (SIGTERM, then SIGKILL): the next run and
the machine's other users never meet it. Narrow by construction: a process must
name this run's own base temp dir, which nothing else on the machine does.
"""

from __future__ import annotations

import os
from pathlib import Path


def left_behind(basetemp: Path) -> dict[int, str]:
    """``{pid: command line}`` of the live processes that name ``basetemp``, pytest's and the reaper's apart."""
    import psutil

    mark = str(basetemp)
    me = os.getpid()
    out: dict[int, str] = {}
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if proc.pid == me or proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            argv = proc.info["cmdline"] or []
            line = " ".join(argv)
            try:
                cwd = proc.cwd()
            except (psutil.Error, OSError):
                cwd = ""
            if mark not in line and not cwd.startswith(mark + os.sep) and cwd != mark:
                continue
            if _pytest_or_reaper(argv):
                continue
            out[proc.pid] = line[:300]
        except (psutil.Error, OSError):
            continue
    return out


def _pytest_or_reaper(argv: list[str]) -> bool:
    """pytest itself (``python -m pytest``, ``pytest``), the detached Ray reaper (tests/ray_reaper.py), and
    an interactive shell (a person who went into the run's temp dir to look is not a leak)."""
    words = argv[:4]
    if len(argv) <= 2 and argv and os.path.basename(argv[0]).lstrip("-") in ("bash", "sh", "zsh", "fish", "dash") and all(w.startswith("-") for w in argv[1:]):
        return True
    return any(os.path.basename(w) in ("pytest", "py.test") for w in words) or "pytest" in words[1:3] or any(w.endswith("ray_reaper.py") for w in words)


def end_leftovers(basetemp: Path, say) -> int:
    """Report and end what :func:`left_behind` finds; how many there were."""
    from merlin.clusters import procs

    found = left_behind(basetemp)
    if not found:
        return 0
    say(f"leaks: {len(found)} processes the tests left running under {basetemp} (ending them):")
    for pid, line in sorted(found.items()):
        say(f"  pid {pid}: {line}")
    procs.terminate(found, grace=2.0)
    return len(found)
