"""Errors that the CLI turns into one clear line and an exit code.

Every failure a user can cause or fix is a ``MerlinError`` subclass; the CLI
prints ``str(error)`` (or each of ``error.lines``) on stderr and exits with
``error.exit_code``. Each error also has a stable ``code`` string (``bad_input``,
``blocked.no_cluster``, ...) that a program (the gateway, a script reading
``--json``) can branch on without reading the message, and may carry
``next_steps`` (see :mod:`merlin.nextsteps`). Anything else is a bug and is the
only thing allowed to show a traceback (and only with ``MERLIN_DEBUG=1``); the
CLI writes a crash log for it.
"""

from __future__ import annotations

from typing import Any


class ExitCode:
    """Process exit codes, documented in the README."""

    OK = 0
    RUN_FAILED = 1
    BAD_INPUT = 2
    BLOCKED = 3
    NOT_FOUND = 4
    WAITING = 10
    INTERNAL = 70


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
    ) -> None:
        super().__init__(message)
        self.message = message
        self.lines = lines or [message]
        if code is not None:
            self.code = code
        self.next_steps: list[dict[str, Any]] = list(next_steps or [])

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` error document."""
        return {"error": self.lines[0] if self.lines else self.message, "errors": list(self.lines), "exit_code": self.exit_code, "code": self.code, "next_steps": list(self.next_steps)}


class BadInput(MerlinError):
    """The user gave something we cannot use (file, flag, value)."""

    exit_code = ExitCode.BAD_INPUT
    code = "bad_input"


class SpecError(BadInput):
    """One or more validation errors in a spec file, each on its own line."""

    code = "spec_error"

    def __init__(self, lines: list[str]) -> None:
        super().__init__(lines[0] if lines else "invalid spec", lines=lines)


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

    def __init__(self, message: str, cause: str | None = None, *, lines: list[str] | None = None, next_steps: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message, lines=lines, code=f"blocked.{cause}" if cause else None, next_steps=next_steps)
        self.cause = cause or "blocked"


class LockBusy(MerlinError):
    """Another merlin process holds a lock we need."""

    exit_code = ExitCode.BLOCKED
    code = "lock_busy"


class Conflict(MerlinError):
    """A lost race: something else changed the record first (run it again to see the new state)."""

    exit_code = ExitCode.BLOCKED
    code = "conflict"


class RunFailed(MerlinError):
    """A run (or the command it started) ended in failure."""

    exit_code = ExitCode.RUN_FAILED
    code = "run_failed"


class ChecksumMismatch(MerlinError):
    """A stored artifact no longer has the sha256 it was indexed with: nothing the user typed is wrong."""

    exit_code = ExitCode.RUN_FAILED
    code = "checksum_mismatch"
