"""``--wait`` for a submitted run: say its id at once, show its progress, and on
Ctrl-C leave it running and say how to cancel it (exit 130).

Not a TTY: the run's logs are streamed on stderr as they come (stdout keeps the
run id only). On a TTY: one status line, rewritten in place. With ``--json``
nothing is printed until the run ends.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import typer


def announce(rec: Any) -> None:
    """The run id, as soon as the run is submitted (stdout), and what waiting means (stderr)."""
    sys.stdout.write(rec.run_id + "\n")
    sys.stdout.flush()
    sys.stderr.write(f"run {rec.run_id} {rec.status.value}; waiting for it to end (Ctrl-C stops waiting, not the run)\n")
    sys.stderr.flush()


def wait_for_run(cp: Any, rec: Any, *, quiet: bool = False, timeout: float | None = None) -> Any:
    """Wait until ``rec`` ends; its final record. Ctrl-C: exit 130 naming the run and its cancel step."""
    if (rec.status.is_terminal() and not rec.retry_keeper) or rec.status.value == "blocked":
        return rec
    try:
        if quiet:
            return cp.wait(rec.run_id, timeout=timeout)
        if sys.stderr.isatty():
            _status_line(cp, rec.run_id, timeout)
            return cp.wait(rec.run_id, timeout=timeout)  # through the automatic retries, if any are due
        for chunk in cp.follow(rec.run_id):
            sys.stderr.write(chunk)
            sys.stderr.flush()
        return cp.wait(rec.run_id, timeout=timeout)
    except KeyboardInterrupt:
        keeps_running(cp, rec.run_id)
        raise typer.Exit(130) from None


def keeps_running(cp: Any, run_id: str) -> None:
    """Ctrl-C while waiting: the run goes on; say so, with the cancel and status steps rendered as commands."""
    from merlin.cli.nextsteps import ARGV, command
    from merlin.nextsteps import Action, step

    argv = ARGV or sys.argv[1:]
    cancel = command(step(Action.CANCEL, run_id=run_id), argv)
    watch = command(step(Action.STATUS, run_id=run_id), argv)
    sys.stderr.write(f"\nrun {run_id} keeps running; cancel it with `{cancel}` (or see it with `{watch}`)\n")
    sys.stderr.flush()


def _status_line(cp: Any, run_id: str, timeout: float | None) -> Any:
    deadline = None if timeout is None else time.monotonic() + timeout
    rec = cp.status(run_id)
    start = time.monotonic()
    while not rec.status.is_terminal():
        if deadline is not None and time.monotonic() > deadline:
            break
        line = f"run {run_id}: {rec.status.value} ({time.monotonic() - start:.0f}s)"
        sys.stderr.write("\r" + line[:200] + "\x1b[K")
        sys.stderr.flush()
        time.sleep(0.5)
        rec = cp.status(run_id)
    sys.stderr.write("\r\x1b[K")
    sys.stderr.flush()
    return rec
