"""Helpers the run and cluster command groups share: the control plane of a state root,
status words and colours, next steps, the exit code of a run. Only the standard
library at module level; everything heavy is imported inside the functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

STYLE = {
    "succeeded": "green",
    "failed": "red",
    "blocked": "yellow",
    "running": "cyan",
    "pending": "blue",
    "cancelled": "magenta",
    "lost": "magenta",
    "active": "green",
    "unreachable": "red",
    "stopped": "dim",
    "absent": "dim",
    "failed_cluster": "red",
    "starting": "blue",
}


def say(text: str) -> None:
    """A plain message line on stderr without building a Rich console (hot paths:
    submit, retry). Same bytes Rich would print for an unstyled line."""
    import sys

    sys.stderr.write(text.rstrip("\n") + "\n")
    sys.stderr.flush()


def control_plane(state_root: Path | None):
    from merlin.controlplane import ControlPlane
    from merlin.errors import BadInput

    cp = ControlPlane(state_root)
    if cp.root.exists() and not cp.root.is_dir():  # every command, listing or not, says so (exit 2)
        raise BadInput(f"state root {cp.root} is not a directory; pass --state-root DIR (or set $MERLIN_STATE_ROOT to one)")
    return cp


def where(cp: Any) -> str:
    """The absolute state root, for messages that found nothing: the default root is relative to the
    current directory, so from another directory the ledger is silently a different (empty) one."""
    return f"{Path(cp.root).resolve()} (the state root; --state-root or $MERLIN_STATE_ROOT picks another)"


def key_values(values: list[str] | None, flag: str, number: bool) -> dict[str, Any]:
    from merlin.errors import BadInput

    out: dict[str, Any] = {}
    for item in values or []:
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise BadInput(f"{flag} {item!r}: expected KEY={'N' if number else 'VALUE'}")
        if number:
            from merlin.safety import check_number

            try:
                out[key] = float(val)
            except ValueError:
                raise BadInput(f"{flag} {item!r}: {val!r} is not a number") from None
            check_number(out[key], f"{flag} {key}")
        else:
            out[key] = val
    return out


def short_time(value: Any) -> str:
    if not value:
        return "-"
    text = str(value)
    return text[:19].replace("T", " ") + ("Z" if len(text) > 19 else "")


def age(value: Any, *, now: float | None = None, seconds: float | None = None, suffix: str = " ago") -> str:
    """How long ago an ISO time was, for tables (``4m ago``: :func:`merlin.durations.ago`; ``seconds``:
    an age already known). ``-`` when there is no time; a time that does not parse is shown as it is."""
    from merlin.durations import ago

    if seconds is None:
        if not value:
            return "-"
        from merlin.clock import since

        seconds = since(str(value), now)
        if seconds is None:
            return short_time(value)
    return ago(seconds, suffix=suffix)


def clock_time(value: Any) -> str:
    """HH:MM:SS (UTC) of an ISO time: attempts share the run's date, shown above."""
    text = str(value or "")
    return text[11:19] if len(text) >= 19 else "-"


def status_styled(text: str, key: str | None = None) -> Any:
    from merlin.cli.output import styled

    return styled(text, STYLE.get(key or text, ""))


def next_steps_of(rec: Any) -> list[dict[str, Any]]:
    """A record's next steps as plain dicts (records are pydantic; ClusterState holds dicts)."""
    return [s.model_dump() if hasattr(s, "model_dump") else s for s in getattr(rec, "next_steps", None) or []]


def say_next(rec: Any) -> None:
    from merlin.cli.nextsteps import say_next

    say_next(next_steps_of(rec))


def invoked() -> str:
    from merlin.cli.nextsteps import invoked_as

    return invoked_as()


def record_json(rec: Any) -> dict[str, Any]:
    return rec.model_dump(mode="json") if hasattr(rec, "model_dump") else rec


#: What ``--wait`` exits with, by how the run ended: the same on every command that waits
#: (``jobs submit``, ``jobs retry``, ``targetgen execute --engine E``; ``jobs watch`` for the
#: runs it watched). README's table "Exit codes of --wait" is checked against this one.
WAIT_EXITS: tuple[tuple[str, int], ...] = (
    ("succeeded (a TargetGen run: its target completed)", 0),
    ("failed, cancelled or lost", 1),
    ("blocked before it started (no cluster, a bad request), or a TargetGen run stopped at a blocked task", 3),
    ("a TargetGen run stopped at an operator question or a prompt waiting for its response", 10),
    ("Ctrl-C while waiting (the run goes on)", 130),
)


def wait_exit_code(rec: Any) -> int:
    """The exit code of ``--wait`` for a run that ended (see :data:`WAIT_EXITS`)."""
    status = rec.status.value
    if status == "blocked":
        return 3
    if status in ("failed", "cancelled", "lost"):
        return 1
    if status != "succeeded" or not getattr(rec, "outcome", None):
        return 0
    from merlin.controlplane import targetgen_exit_code

    return int(targetgen_exit_code(rec))


def exit_for_run(rec: Any, *, waited: bool) -> None:
    """Blocked runs exit 3; with --wait, the code of :func:`wait_exit_code` (1 failed, 10 a
    TargetGen run stopped at a question, 3 at a blocked task)."""
    from merlin.errors import Blocked, RunFailed

    status = rec.status.value
    if status == "blocked":
        raise Blocked(f"run {rec.run_id} is blocked: {rec.message.removeprefix('blocked: ')}", next_steps=next_steps_of(rec))
    if not waited or not rec.status.is_terminal():
        return
    code = wait_exit_code(rec)
    if code == 1:
        raise RunFailed(f"run {rec.run_id} {said(status, rec.message)}", next_steps=next_steps_of(rec))
    if code:
        raise SystemExit(code)  # as typer.Exit(code) would end it, without importing Typer on the submit path


def said(status: str, text: str) -> str:
    """``failed (exit code 7)``, not ``failed: failed (exit code 7)``: the status word once."""
    text = (text or "").strip()
    if not text or text == status:
        return status
    first = text.split(None, 1)[0].rstrip(":;,.(")
    return text if first == status else f"{status}: {text}"

