"""The engine protocol: submit, poll one or many, logs, cancel.

Engines never decide a run's status on their own authority: they report an
:class:`Observation` and the control plane applies it through the ledger,
where the transition table lives. An engine that cannot accept work raises
:class:`EngineBlocked` with a message that names the fix; the run is then
recorded as ``blocked``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterator, Protocol

from merlin.errors import Blocked
from merlin.ledger.status import RunStatus

if TYPE_CHECKING:  # pragma: no cover
    from merlin.ledger.models import RunRecord, RunRequest


#: One concept: an engine that cannot accept work raises ``Blocked(message, cause)``
#: (cause: ray_not_importable | no_cluster | cluster_unreachable | token_missing | token_rejected).
EngineBlocked = Blocked


@dataclass
class Observation:
    """What an engine says about one attempt.

    ``status`` None means "could not tell" (engine unreachable): the record
    keeps its status and gets ``message``. ``known`` False means the engine
    answered and has never heard of the attempt: the run is lost.
    """

    status: RunStatus | None
    known: bool = True
    exit_code: int | None = None
    error_type: str | None = None
    message: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Submitted:
    """Attempt fields an engine fills in at submission."""

    submission_id: str
    status: RunStatus = RunStatus.PENDING
    fields: dict[str, Any] = field(default_factory=dict)


class Engine(Protocol):
    name: str

    def submit(self, record: "RunRecord", request: "RunRequest", env: dict[str, str]) -> Submitted: ...

    def poll(self, record: "RunRecord") -> Observation: ...

    def poll_many(self, records: list["RunRecord"]) -> dict[str, Observation]: ...

    def logs(self, record: "RunRecord", attempt: int | None = None) -> str: ...

    def follow(self, record: "RunRecord") -> Iterator[str]: ...

    def cancel(self, record: "RunRecord") -> None: ...
