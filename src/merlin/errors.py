"""Errors that the CLI turns into one clear line and an exit code.

Every failure a user can cause or fix is a ``MerlinError`` subclass; the CLI
prints ``str(error)`` (or each of ``error.lines``) on stderr and exits with
``error.exit_code``. Each error also has a stable ``code`` string (``bad_input``,
``blocked.no_cluster``, ...) that a program (the gateway, a script reading
``--json``) can branch on without reading the message, and may carry
``next_steps`` (see :mod:`merlin.nextsteps`).

An error caused by one argument names it as data: ``argument`` (``"reason"``)
and, when another one is involved, ``related`` (``["force"]``: force needs a
reason). Its message writes an argument as the name in backticks, never as a
flag or a command: ``"`force` needs a `reason`"``. Each front end spells the
names it carries (:meth:`MerlinError.render`): the CLI as flags (``--force
needs a --reason``), the gateway as its parameter names (the text as it is).

Anything else is a bug and is the
only thing allowed to show a traceback (and only with ``MERLIN_DEBUG=1``); the
CLI writes a crash log for it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

#: how a message names an argument: its name in backticks
_NAMED = r"`([A-Za-z_][A-Za-z0-9_]*)`"  # compiled on first use (re's cache): a submit that succeeds never renders one


def arg(name: str) -> str:
    """An argument as a message names it (```name```), for a front end to spell."""
    return f"`{name}`"


def named(what: str) -> tuple[str, str | None]:
    """How a message names ``what``, and the argument it is: an argument's name (``ttl``) ->
    (```ttl```, ``"ttl"``); a flag the CLI passes (``--min-age``) -> itself and ``"min_age"``;
    anything else (a label such as ``"target name"``) is its own text and names no argument."""
    if re.fullmatch(r"[a-z][a-z0-9_]*", what):
        return arg(what), what
    if re.fullmatch(r"--[a-z][a-z0-9-]*", what):
        return what, what[2:].replace("-", "_")
    return what, None


class ExitCode:
    """Process exit codes, documented in the README."""

    OK = 0
    RUN_FAILED = 1
    BAD_INPUT = 2
    BLOCKED = 3
    NOT_FOUND = 4
    WAITING = 10
    INTERNAL = 70
    ENVIRONMENT = 75  # EX_TEMPFAIL: the machine, not the input (disk full, quota): try again later


class MerlinError(Exception):
    """Base class: a message for a person, an exit code and a stable ``code`` for a program."""

    exit_code = ExitCode.BAD_INPUT
    #: stable identifier of the kind of error; subclasses override it
    code = "error"

    def __init__(
        self,
        message: str,
        *,
        lines: list[str] | None = None,
        code: str | None = None,
        next_steps: list[dict[str, Any]] | None = None,
        argument: str | None = None,
        related: str | Sequence[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.lines = lines or [message]
        if code is not None:
            self.code = code
        self.next_steps: list[dict[str, Any]] = list(next_steps or [])
        #: the argument at fault, by its name in the Python API and the gateway (``reason``)
        self.argument = argument
        #: other arguments the message names (``force``, which needs ``reason``)
        self.related: list[str] = [related] if isinstance(related, str) else list(related or [])

    def render(self, spell: Callable[[str], str]) -> list[str]:
        """The lines with each argument the error names (```reason``` in its text) spelled by
        a front end (the CLI: ``--reason``). Other backticked words are left as they are."""
        names = {n for n in (self.argument, *self.related) if n}
        if not names:
            return list(self.lines)
        return [re.sub(_NAMED, lambda m: spell(m.group(1)) if m.group(1) in names else m.group(0), line) for line in self.lines]

    def to_json(self, spell: Callable[[str], str] | None = None) -> dict[str, Any]:
        """The ``--json`` error document (its text spelled by ``spell``, see :meth:`render`)."""
        lines = self.render(spell) if spell is not None else list(self.lines)
        return {
            "error": lines[0] if lines else self.message,
            "errors": lines,
            "exit_code": self.exit_code,
            "code": self.code,
            "argument": self.argument,
            "related": list(self.related),
            "next_steps": list(self.next_steps),
        }


class BadInput(MerlinError):
    """The user gave something we cannot use (file, flag, value)."""

    exit_code = ExitCode.BAD_INPUT
    code = "bad_input"


class SpecError(BadInput):
    """One or more validation errors in a spec file, each on its own line."""

    code = "spec_error"

    def __init__(self, lines: list[str], *, argument: str | None = None, related: str | Sequence[str] | None = None) -> None:
        super().__init__(lines[0] if lines else "invalid spec", lines=lines, argument=argument, related=related)


class NotFound(MerlinError):
    exit_code = ExitCode.NOT_FOUND
    code = "not_found"


class Blocked(MerlinError):
    """Something outside merlin must change first (install, start, answer).

    ``cause`` says what (``no_cluster``, ``ray_not_importable``, ``cluster_unreachable``,
    ``token_missing``, ``token_rejected``, ...) and becomes the code ``blocked.<cause>``.
    An engine that cannot accept a run raises this; the run is recorded as ``blocked``.
    """

    exit_code = ExitCode.BLOCKED
    code = "blocked"

    def __init__(
        self,
        message: str,
        cause: str | None = None,
        *,
        lines: list[str] | None = None,
        next_steps: list[dict[str, Any]] | None = None,
        argument: str | None = None,
        related: str | Sequence[str] | None = None,
    ) -> None:
        super().__init__(message, lines=lines, code=f"blocked.{cause}" if cause else None, next_steps=next_steps, argument=argument, related=related)
        self.cause = cause or "blocked"


class LockBusy(MerlinError):
    """Another merlin process holds a lock we need."""

    exit_code = ExitCode.BLOCKED
    code = "lock_busy"


class Conflict(MerlinError):
    """A lost race: something else changed the record first (run it again to see the new state)."""

    exit_code = ExitCode.BLOCKED
    code = "conflict"


class AlreadyExists(Conflict):
    """A job name is taken by a live run (``adopt_existing`` off): ``run_id`` is that run."""

    code = "already_exists"

    def __init__(self, message: str, *, run_id: str, argument: str | None = "name", next_steps: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message, argument=argument, next_steps=next_steps)
        self.run_id = run_id


class RunFailed(MerlinError):
    """A run (or the command it started) ended in failure."""

    exit_code = ExitCode.RUN_FAILED
    code = "run_failed"


class NoSpace(MerlinError):
    """The filesystem under a path merlin writes is full (ENOSPC) or over quota (EDQUOT).

    Not the user's input and not a bug: an environment error (exit 75) naming the
    path and the space left, so a person can free space and run it again."""

    exit_code = ExitCode.ENVIRONMENT
    code = "environment.no_space"

    def __init__(self, path: Any, errno_: int | None = None) -> None:
        import errno
        import os

        what = "over its disk quota" if errno_ == getattr(errno, "EDQUOT", -1) else "no space left on its filesystem"
        free = "unknown"
        p = os.fspath(path) if path is not None else "."
        while p:
            try:
                st = os.statvfs(p)
                free = _size(st.f_bavail * st.f_frsize)
                break
            except OSError:
                parent = os.path.dirname(p.rstrip("/"))
                if parent == p:
                    break
                p = parent
        super().__init__(f"{path}: cannot write: {what} ({free} free); free some space, then run it again")
        self.path = str(path)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def is_no_space(exc: BaseException) -> bool:
    import errno

    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


class ChecksumMismatch(MerlinError):
    """A stored artifact no longer has the sha256 it was indexed with: nothing the user typed is wrong."""

    exit_code = ExitCode.RUN_FAILED
    code = "checksum_mismatch"
