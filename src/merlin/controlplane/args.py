"""The facade's arguments as a person passes them: a status as a string or an enum, a job name."""

from __future__ import annotations

from collections.abc import Iterable

from merlin.ledger.paths import STATE_ROOT_ENV  # noqa: F401  (the variable that names a state root: merlin.client reads a run's by it)
from merlin.units import memory_bytes  # noqa: F401  (one grammar of sizes: merlin.client's and the gateway's)

#: run statuses as given by a caller: one or several, each a string or a ``RunStatus`` (a ``str`` enum)
StatusArg = str | Iterable[str] | None


def check_job_name(name: object) -> str:
    """A job name (``submit(name=...)``: no spaces, a file name), or ``BadInput`` naming ``name``."""
    from merlin.control.names import check_name

    return check_name(name)


def statuses(status: StatusArg) -> list[str] | None:
    """``status`` as a list of status values: a lone string (``"failed"``) or enum is one status,
    not its letters; anything that is not a run status is :class:`BadInput` naming ``status``."""
    from merlin.errors import BadInput
    from merlin.ledger.status import RunStatus

    if status is None:
        return None
    given = [status] if isinstance(status, str) else list(status)
    known = [s.value for s in RunStatus]
    out: list[str] = []
    for s in given:
        value = s.value if isinstance(s, RunStatus) else s
        if not isinstance(value, str) or value not in known:
            raise BadInput(f"`status` {value!r}: expected one of {', '.join(known)}", argument="status")
        out.append(value)
    return out
