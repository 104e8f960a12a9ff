"""Clients and handles: ``Client``, ``LocalClient``, ``JobHandle``, ``wait_all`` and the current client.

A client is a :class:`merlin.controlplane.ControlPlane` (one state root) plus where
its jobs go (an engine, a cluster). Nothing here is module-level: the current
client lives in a :class:`contextvars.ContextVar`, so two threads (or two asyncio
tasks) with two clients never see each other's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from merlin.client.types import JobAlreadyExists, JobFailed, JobRequest, JobStatus, submit_kwargs
from merlin.errors import AlreadyExists, BadInput

if TYPE_CHECKING:  # pragma: no cover
    from merlin.client.sweeps import SweepHandle
    from merlin.controlplane import ControlPlane, RunRecord

#: how often ``wait_all`` asks the engines (one batched poll per engine per round)
POLL = 0.2

_CURRENT: ContextVar[Client | None] = ContextVar("merlin_current_client", default=None)


def submit_request(
    cp: ControlPlane,
    request: JobRequest,
    *,
    engine: str | None = None,
    cluster: str | None = None,
    source: str = "api",
    adopt_existing: bool = True,
    run_id: str | None = None,
    wait: bool = False,
) -> RunRecord:
    """Submit ``request`` through ``cp`` (what ``Client.submit``, ``jobs submit`` and ``runs_submit`` share).

    A live run of the same name is returned instead of a new one (``adopt_existing``), else
    :class:`merlin.errors.AlreadyExists` carries its run id."""
    if not isinstance(request, JobRequest):
        raise BadInput("`request` must be a JobRequest", argument="request")
    return cp.submit(
        request.entrypoint.argv, engine=engine, cluster=cluster, source=source, adopt_existing=adopt_existing, run_id=run_id, wait=wait,
        **submit_kwargs(request),
    )


class Client:
    """Jobs of one state root (default: ``$MERLIN_STATE_ROOT``, else merlin's default), run by
    ``engine`` (default: ``ray`` when a ``cluster`` is named, else merlin's default engine, local)
    on ``cluster`` (a cluster name, for engines that run on one)."""

    def __init__(self, state_root: str | os.PathLike[str] | None = None, cluster: str | None = None, *, engine: str | None = None) -> None:
        from merlin.controlplane import ControlPlane

        self.cp = ControlPlane(state_root)
        self.cluster = cluster
        self.engine = engine or ("ray" if cluster is not None else None)

    def __repr__(self) -> str:
        where = f", cluster={self.cluster!r}" if self.cluster else ""
        return f"{type(self).__name__}(state_root={str(self.cp.root)!r}{where})"

    def submit(self, request: JobRequest, adopt_existing: bool = True) -> JobHandle:
        """Start ``request`` as a run; with the name of a live job, that job's handle
        (``adopt_existing``) or :class:`JobAlreadyExists` carrying it."""
        try:
            rec = submit_request(self.cp, request, engine=self.engine, cluster=self.cluster, adopt_existing=adopt_existing)
        except AlreadyExists as exc:
            raise JobAlreadyExists(request.name or "", JobHandle(self, exc.run_id), exc.message) from None
        return JobHandle(self, rec.run_id)

    def map(self, template: JobRequest, inputs: Iterable[Any], parallel: int = 4, name: str | None = None) -> SweepHandle:
        """A sweep: one run of ``template`` per input, at most ``parallel`` at once (docs/sweeps.md)."""
        from merlin.client.sweeps import map_inputs

        return map_inputs(self, template, inputs, parallel, name)

    def handle(self, job_id: str) -> JobHandle:
        """The handle of a job (run) of this client's state root, by its id."""
        self.cp.get(job_id)  # NotFound unless it exists
        return JobHandle(self, job_id)

    def close(self) -> None:
        """Nothing to release (a client holds no connection); :class:`LocalClient` ends its jobs and removes its state."""

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _end_and_remove(root: str) -> None:
    """Cancel what still runs under a private state root, then remove it (LocalClient's cleanup)."""
    import shutil

    from merlin.controlplane import ControlPlane

    try:
        cp = ControlPlane(root)
        for d in cp.list_runs(status=("waiting", "pending", "running")):
            try:
                cp.cancel(d["run_id"], grace=1.0, timeout=10.0)
            except Exception:
                pass
    finally:
        # an ended run's supervisor may still write its last files (artifacts.json) after the cancel
        # returned: remove until the directory stays gone; then the env cache beside it, if any
        deadline = time.monotonic() + 10
        while True:
            shutil.rmtree(root, ignore_errors=True)
            time.sleep(0.3)
            if not os.path.exists(root) or time.monotonic() > deadline:
                break
        shutil.rmtree(f"{root.rstrip('/')}-envs", ignore_errors=True)


class LocalClient(Client):
    """A client over a private temporary state root and the local engine, for unit tests:
    its jobs are this machine's processes; ``close()`` (or leaving ``with``, or the client's
    garbage collection, or the interpreter's exit) ends them and removes the state root."""

    def __init__(self) -> None:
        import tempfile
        import weakref

        root = tempfile.mkdtemp(prefix="merlin-local-client-")
        super().__init__(state_root=root, engine="local")
        self._finalizer = weakref.finalize(self, _end_and_remove, root)

    def close(self) -> None:
        self._finalizer()

    def __repr__(self) -> str:
        return f"LocalClient(state_root={str(self.cp.root)!r})"


class JobHandle:
    """One job (a run of the client's state root): ``job_id`` is its run id."""

    def __init__(self, client: Client, job_id: str) -> None:
        self.client = client
        self.job_id = job_id

    def __repr__(self) -> str:
        return f"JobHandle({self.job_id!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JobHandle) and other.job_id == self.job_id and other.client.cp.root == self.client.cp.root

    def __hash__(self) -> int:
        return hash((self.job_id, str(self.client.cp.root)))

    def record(self) -> RunRecord:
        """The run record, after asking its engine (merlin's whole view: attempts, message, next steps)."""
        return self.client.cp.status(self.job_id)

    def status(self) -> JobStatus:
        return JobStatus.of_run(self.record().status)

    def wait(self, timeout: float | None = None, *, raise_on_failure: bool = True) -> JobStatus:
        """Block until the job finishes; :class:`TimeoutError` after ``timeout`` seconds, :class:`JobFailed`
        if it failed or was stopped (unless ``raise_on_failure`` is False)."""
        return wait_all([self], timeout=timeout, raise_on_failure=raise_on_failure)[0]

    def logs(self, max_lines: int = 0) -> tuple[str, ...]:
        """The latest attempt's output lines (stdout and stderr as the engine keeps them); ``max_lines`` > 0: the last that many."""
        if isinstance(max_lines, bool) or not isinstance(max_lines, int) or max_lines < 0:
            raise BadInput(f"`max_lines` must be a whole number >= 0, not {max_lines!r}", argument="max_lines")
        lines = tuple(self.client.cp.logs(self.job_id).splitlines())
        return lines[-max_lines:] if max_lines else lines

    def terminate(self) -> None:
        """Stop the job (its engine ends it); a finished job is left as it is."""
        self.client.cp.cancel(self.job_id)


def wait_all(handles: Sequence[JobHandle], *, timeout: float | None = None, raise_on_failure: bool = True) -> list[JobStatus]:
    """Wait for every job; their statuses in the handles' order. One batched poll per engine per
    round (``ControlPlane.refresh``), not one call per job; the rounds 20 ms apart at first, then 1.5
    times longer each up to :data:`POLL`. :class:`TimeoutError` after ``timeout``
    seconds; then, once all finished, :class:`JobFailed` for the first that failed or was stopped
    (unless ``raise_on_failure`` is False)."""
    handles = list(handles)
    deadline = None if timeout is None else time.monotonic() + timeout
    from merlin.clock import pauses

    done: dict[int, RunRecord] = {}
    pause = pauses(0.02, POLL)
    while True:
        by_client: dict[int, tuple[Client, list[int]]] = {}
        for i, h in enumerate(handles):
            if i not in done:
                by_client.setdefault(id(h.client), (h.client, []))[1].append(i)
        for client, idx in by_client.values():
            seen = {r.run_id: r for r in client.cp.refresh([handles[i].job_id for i in idx], touch=False)}
            for i in idx:
                rec = seen.get(handles[i].job_id) or client.cp.get(handles[i].job_id)
                if _finished(rec):
                    done[i] = rec
        if len(done) == len(handles):
            break
        if deadline is not None and time.monotonic() >= deadline:
            left = [handles[i].job_id for i in range(len(handles)) if i not in done]
            raise TimeoutError(f"{len(left)} job(s) not finished after {timeout:g} s: {', '.join(left[:5])}")
        nap = next(pause)
        time.sleep(nap if deadline is None else max(0.0, min(nap, deadline - time.monotonic())))
    statuses = [JobStatus.of_run(done[i].status) for i in range(len(handles))]
    if raise_on_failure:
        for i, st in enumerate(statuses):
            if st in (JobStatus.FAILED, JobStatus.STOPPED):
                raise JobFailed(handles[i].job_id, st, done[i].message)
    return statuses


def _finished(rec: RunRecord) -> bool:
    """Finished, and no retry to come: an ended attempt of a run whose retry keeper is still
    recorded may be retried (the keeper forgets itself once nothing more is due; a look at a run
    whose keeper died starts another, or forgets it: docs/retries.md)."""
    status = JobStatus.of_run(rec.status)
    return status.finished() and (status == JobStatus.SUCCEEDED or not rec.retry_keeper)


@contextmanager
def set_current_client(client: Client) -> Iterator[Client]:
    """Make ``client`` the current client of this context (thread, asyncio task) inside ``with``."""
    if not isinstance(client, Client):
        raise BadInput("`client` must be a merlin.client Client", argument="client")
    token = _CURRENT.set(client)
    try:
        yield client
    finally:
        _CURRENT.reset(token)


def current_client() -> Client:
    """The client to use here: the one set by :func:`set_current_client`; else, inside a merlin
    run (``$MERLIN_RUN_ID`` and ``$MERLIN_STATE_ROOT`` in its environment), a client of that
    run's state root, engine and cluster; else a :class:`LocalClient`. The last two are kept
    for the rest of this context (never process-wide)."""
    client = _CURRENT.get()
    if client is None:
        client = _run_client() or LocalClient()
        _CURRENT.set(client)
    return client


def _run_client() -> Client | None:
    from merlin.controlplane.args import STATE_ROOT_ENV

    root, run_id = os.environ.get(STATE_ROOT_ENV), os.environ.get("MERLIN_RUN_ID")
    if not root or not run_id:
        return None
    client = Client(state_root=root)
    try:
        rec: Any = client.cp.get(run_id)
    except Exception:
        return client
    client.engine = rec.engine
    client.cluster = rec.cluster.name if rec.cluster else None
    return client
