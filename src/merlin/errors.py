"""Errors that the CLI turns into one clear line and an exit code.

Every failure a user can cause or fix is a ``MerlinError`` subclass; the CLI
prints ``str(error)`` (or each of ``error.lines``) on stderr and exits with
``error.exit_code``. Anything else is a bug and is the only thing allowed to
show a traceback (and only with ``MERLIN_DEBUG=1``).
"""

from __future__ import annotations


class ExitCode:
    """Process exit codes, documented in the README."""

    OK = 0
    RUN_FAILED = 1
    BAD_INPUT = 2
    BLOCKED = 3
    NOT_FOUND = 4
    WAITING = 10


class MerlinError(Exception):
    """Base class: a message for a person and an exit code for a script."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, message: str, *, lines: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.lines = lines or [message]


class BadInput(MerlinError):
    """The user gave something we cannot use (file, flag, value)."""

    exit_code = ExitCode.BAD_INPUT


class SpecError(BadInput):
    """One or more validation errors in a spec file, each on its own line."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(lines[0] if lines else "invalid spec", lines=lines)


class NotFound(MerlinError):
    exit_code = ExitCode.NOT_FOUND


class Blocked(MerlinError):
    """Something outside merlin must change first (install, start, answer)."""

    exit_code = ExitCode.BLOCKED


class LockBusy(MerlinError):
    """Another merlin process holds a lock we need."""

    exit_code = ExitCode.BLOCKED


class RunFailed(MerlinError):
    """A run (or the command it started) ended in failure."""

    exit_code = ExitCode.RUN_FAILED
