"""``Client.map(template, inputs, parallel=4)``: a sweep (docs/sweeps.md) from a :class:`JobRequest`
template, and its :class:`SweepHandle` (``wait``, ``status``, ``summary``, ``cancel``, ``retry_failed``)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from merlin.client.types import JobRequest, submit_kwargs
from merlin.errors import BadInput, RunFailed

if TYPE_CHECKING:  # pragma: no cover
    from merlin.client.core import Client


def map_inputs(client: Client, template: JobRequest, inputs: Iterable[Any], parallel: int = 4, name: str | None = None) -> SweepHandle:
    """One run of ``template`` per input ({input}, {index}, {name} replaced in its entrypoint's words); the sweep is
    named ``name`` or the template's name. The same name and inputs adopts the sweep."""
    if not isinstance(template, JobRequest):
        raise BadInput("`template` must be a JobRequest", argument="template")
    sweep = name or template.name
    if not sweep:
        raise BadInput("the sweep needs a `name` (or a named template)", argument="name")
    kw = submit_kwargs(template)
    client.cp.sweeps(
        "submit", sweep, command=template.entrypoint.argv, inputs=[str(v) for v in inputs], parallel=parallel,
        leases=kw.get("leases") or (), retries=template.max_retries_failure, retries_infra=template.max_retries_preemption,
        engine=client.engine, cluster=client.cluster, runtime=kw.get("runtime"), env=kw.get("env") or {}, workdir=kw.get("workdir"),
        memory=kw.get("memory"),
    )  # fmt: skip
    return SweepHandle(client, sweep)


class SweepHandle:
    """A sweep of a client's state root, by name."""

    def __init__(self, client: Client, name: str) -> None:
        self.client = client
        self.name = name

    def __repr__(self) -> str:
        return f"SweepHandle({self.name!r})"

    def status(self) -> dict[str, Any]:
        """Counts by state, slots in use, throughput, ETA, failures (restarts a dead driver)."""
        return dict(self.client.cp.sweeps("status", self.name))

    def summary(self) -> dict[str, Any]:
        """``{"name", "ok", "rows": [one per input: status, attempts, exit_code, duration_s, usage_*, result]}``."""
        return dict(self.client.cp.sweeps("summary", self.name))

    def wait(self, timeout: float | None = None, *, raise_on_failure: bool = True, poll: float = 0.2) -> dict[str, Any]:
        """Block until every item has ended; the final status. ``RunFailed`` if an item did not succeed (``raise_on_failure``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            st = self.status()
            if st["state"] != "running":
                break
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"sweep {self.name} still running after {timeout}s")
            time.sleep(poll)
        if raise_on_failure and st["state"] != "succeeded":
            raise RunFailed(f"sweep {self.name}: {st['state']} ({st['counts']['succeeded']} of {st['total']} succeeded)")
        return st

    def cancel(self) -> dict[str, Any]:
        return dict(self.client.cp.sweeps("cancel", self.name))

    def retry_failed(self, *, cancelled: bool = False) -> dict[str, Any]:
        """New runs for the failed and lost items, and the cancelled ones too when ``cancelled``."""
        return dict(self.client.cp.sweeps("retry", self.name, failed=True, cancelled=cancelled))
