"""An attempt's log: kept in the ledger once the run ended, else asked of its engine."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from merlin.control.checks import first_line
from merlin.errors import BadInput, Blocked, MerlinError, NotFound
from merlin.ledger.status import RunStatus

if TYPE_CHECKING:  # pragma: no cover
    from merlin.control.plane import Plane


def logs(cp: Plane, run_id: str, attempt: int | None = None) -> str:
    rec = cp.get(run_id)
    if attempt is not None and not 1 <= attempt <= len(rec.attempts):
        raise BadInput(f"run {run_id} has {len(rec.attempts)} attempt(s); `attempt` {attempt} does not exist", argument="attempt")
    n = attempt or len(rec.attempts)
    att = rec.attempts[n - 1] if rec.attempts else None
    if att is None:
        return ""
    kept = cp.layout.attempt_log(run_id, n)
    ended = n < len(rec.attempts) or rec.status.is_terminal()
    if ended and kept.is_file():
        return kept.read_text(encoding="utf-8", errors="replace")
    try:
        text = cp.engine(att.engine).logs(rec, n)
    except Blocked as exc:
        if ended:
            raise _not_kept(run_id, n, att, exc.message) from None
        raise Blocked(f"logs of run {run_id} are on its {att.engine} engine: {exc.message}", exc.cause, next_steps=exc.next_steps) from None
    except MerlinError:
        raise
    except Exception as exc:  # an engine's client error
        raise Blocked(f"cannot read the logs of run {run_id} from its {att.engine} engine: {first_line(exc)}", "engine_error") from None
    return text


def _not_kept(run_id: str, n: int, att, why: str) -> NotFound:
    """An ended attempt whose log the ledger never copied and its engine no longer has."""
    return NotFound(
        f"the log of attempt {n} of run {run_id} was not kept: merlin had not copied it into the ledger when it ended, "
        f"and now {why.rstrip('.')}. Logs of runs that end from now on are copied when merlin observes the end"
    )


def follow(cp: Plane, run_id: str) -> Iterator[str]:
    rec = cp.get(run_id)
    att = rec.attempt
    if att is None or rec.status == RunStatus.BLOCKED or not att.submission_id or (
        rec.status.is_terminal() and cp.layout.attempt_log(run_id, len(rec.attempts)).is_file()
    ):
        text = logs(cp, run_id)
        if text:
            yield text
        return
    eng = cp.engine(rec.engine)
    try:
        yield from eng.follow(rec)
    except Blocked as exc:
        raise Blocked(f"logs of run {run_id} are on its {rec.engine} engine: {exc.message}", exc.cause, next_steps=exc.next_steps) from None
    except MerlinError:
        raise
    except Exception as exc:
        raise Blocked(f"cannot follow the logs of run {run_id} on its {rec.engine} engine: {first_line(exc)}", "engine_error") from None
    if not eng.reports_own_status:
        cp.status(run_id)
