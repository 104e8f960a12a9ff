"""The engine protocol: everything engine-specific lives behind it.

An engine decides its own preflight (what can block a submission), submits,
observes many runs in one call, cancels (done, requested, or never started),
knows where an attempt's logs are and how to follow them, keeps its logs when
a run ends, and says whether it reports its own status. The control plane
never compares an engine's name: it asks the engine.

Engines never decide a run's status on their own authority: they report an
:class:`Observation` and the control plane applies it through the ledger,
where the transition table lives. An engine that cannot accept work raises
:class:`merlin.errors.Blocked` (``cause`` names why) with a message that names
the fix; the run is then recorded as ``blocked``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from merlin.errors import Blocked
from merlin.ledger.status import RunStatus
from merlin.values import Value, factory

if TYPE_CHECKING:  # pragma: no cover
    from merlin.ledger.models import ClusterRef, RunRecord, RunRequest
    from merlin.ledger.store import Ledger

#: One concept: an engine that cannot accept work raises ``Blocked(message, cause)``
#: (cause: ray_not_importable | no_cluster | cluster_unreachable | token_missing | token_rejected).
EngineBlocked = Blocked


class Observation(Value):
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
    extra: dict[str, Any] = factory(default_factory=dict)
    next_steps: list[dict[str, Any]] = factory(default_factory=list)


class Preflight(Value):
    """What an engine knows before the run is written.

    With ``submission_id`` the engine names the attempt before submitting, so the
    run is written once as it will be (write-ahead) and then handed over; without
    it the run is written first and the engine's :meth:`Engine.submit` fills it in.
    """

    submission_id: str | None = None
    cluster: ClusterRef | None = None
    message: str | None = None
    next_steps: list[dict[str, Any]] = factory(default_factory=list)


class Submitted(Value):
    """Attempt fields an engine fills in at submission, and what to tell the user."""

    submission_id: str
    status: RunStatus = RunStatus.PENDING
    fields: dict[str, Any] = factory(default_factory=dict)
    cluster: ClusterRef | None = None
    message: str | None = None
    next_steps: list[dict[str, Any]] = factory(default_factory=list)


class CancelResult(StrEnum):
    """What :meth:`Engine.cancel` did."""

    #: the attempt's processes are ended
    DONE = "done"
    #: the engine was asked to stop it; observe until it ends
    REQUESTED = "requested"
    #: nothing of the attempt ever ran (the engine had not started it)
    NEVER_STARTED = "never_started"


class Engine(Protocol):
    #: the ``--engine`` value (its registry key)
    name: str
    #: runs go to a named cluster (``--cluster`` applies)
    uses_cluster: bool
    #: the engine writes the run's status itself (a supervisor): the control plane
    #: marks a cancel before ending the attempt, and does not re-write unchanged observations
    reports_own_status: bool
    #: the longest sleep between polls while waiting (None: the caller's)
    poll_interval: float | None

    def __init__(self, ledger: Ledger) -> None: ...

    def preflight(self, record: RunRecord, request: RunRequest) -> Preflight:
        """Everything that can block a submission (raises ``Blocked``), before the run is written."""
        ...

    def submit(self, record: RunRecord, request: RunRequest, env: dict[str, str]) -> Submitted: ...

    def poll(self, record: RunRecord) -> Observation: ...

    def poll_many(self, records: list[RunRecord]) -> dict[str, Observation]: ...

    def logs(self, record: RunRecord, attempt: int | None = None) -> str: ...

    def follow(self, record: RunRecord) -> Iterator[str]: ...

    def cancel(self, record: RunRecord, grace: float = 5.0) -> CancelResult: ...

    def keep_logs(self, records: list[RunRecord]) -> None:
        """Copy the logs of ended runs into the ledger if they live elsewhere."""
        ...

    # Optional (see :func:`hold_conditions`): ``hold_conditions(record, request, observed_at)``,
    # the engine's own reasons a run it was handed has not started (``jobs why``'s engine layer).
    # Optional: ``leftovers(record) -> str | None``, what of an ended attempt still runs (a retry
    # refuses beside it), and ``end_leftovers(record) -> int``, called once a run is recorded lost.


def hold_conditions(engine: Any, record: RunRecord, request: RunRequest | None, observed_at: str) -> list[dict[str, Any]]:
    """The engine layer of ``jobs why``: what the engine itself says holds ``record`` back
    (:func:`merlin.conditions.condition` dicts), if it has a ``hold_conditions``; else none.
    Asked only for a run handed to its engine and not yet running."""
    own = getattr(engine, "hold_conditions", None)
    return list(own(record, request, observed_at)) if own is not None else []
