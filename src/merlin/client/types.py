"""The job API's plain types: what a job is (``JobRequest``), where it stands (``JobStatus``), how it failed.

Frozen value classes (:class:`merlin.values.Value`: a dataclass's shape, ``replace()``
for ``dataclasses.replace``, without importing :mod:`dataclasses` on every submit) and a
``str`` enum, nothing heavy: ``import merlin.client`` loads neither Ray nor pydantic. :func:`submit_kwargs` is the one place a ``JobRequest``
becomes :meth:`merlin.controlplane.ControlPlane.submit`'s arguments; the Python
client, ``merlin ray jobs submit`` and the gateway's ``runs_submit`` all go through
it, so the front ends cannot drift.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from merlin.errors import AlreadyExists, BadInput, RunFailed
from merlin.values import Value, factory

if TYPE_CHECKING:  # pragma: no cover
    from merlin.client.core import JobHandle

#: ``JobRequest.max_retries_preemption`` unless given: 0, as on the CLI and the gateway (one default
#: for the three front ends). A budget starts a retry keeper beside the run (docs/retries.md), so it is
#: asked for, not assumed; fray's default is 100 for TPU pools that preempt often
DEFAULT_MAX_RETRIES_PREEMPTION = 0
#: ``JobRequest.workflow`` unless given (a run's workflow names what kind of work it is)
DEFAULT_WORKFLOW = "job"


class JobStatus(StrEnum):
    """Where a job is, in fray's five words; the run record (``handle.record()``) has merlin's richer status."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"

    def finished(self) -> bool:
        """True once nothing will change the job by itself: succeeded, failed or stopped.
        Works as ``status.finished()`` and as ``JobStatus.finished(status)``."""
        return JobStatus(self) in _FINISHED

    @classmethod
    def of_run(cls, run_status: str) -> JobStatus:
        """The job status of a run status (:data:`STATUS_OF_RUN`)."""
        return STATUS_OF_RUN[str(getattr(run_status, "value", run_status))]


_FINISHED = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED})

#: merlin's run status (merlin.ledger.status.RunStatus, by value) -> the job status; docs/api.md's
#: table is generated from it and a test checks it names every run status
STATUS_OF_RUN: dict[str, JobStatus] = {
    "waiting": JobStatus.PENDING,  # recorded, waiting for its hardware lease or for its environment to build
    "pending": JobStatus.PENDING,  # handed to its engine, not started yet
    "running": JobStatus.RUNNING,
    "succeeded": JobStatus.SUCCEEDED,
    "failed": JobStatus.FAILED,  # the command exited non-zero (or the engine failed it)
    "lost": JobStatus.FAILED,  # the infrastructure lost it (node, head, supervisor, lease waiter)
    "blocked": JobStatus.FAILED,  # could not be handed to its engine; waits for a person (the record says why)
    "cancelled": JobStatus.STOPPED,  # terminate(), `jobs cancel`, or a forced cluster stop
}


def status_table() -> str:
    """docs/api.md's status table, from :data:`STATUS_OF_RUN` (a test checks the docs hold it)."""
    rows = ["| run status (merlin) | job status (`JobStatus`) | finished |", "|---|---|---|"]
    rows += [f"| `{run}` | `{job.name}` | {'yes' if job.finished() else 'no'} |" for run, job in STATUS_OF_RUN.items()]
    return "\n".join(rows)


class JobFailed(RunFailed):
    """``wait`` (with ``raise_on_failure``) found the job failed or stopped."""

    def __init__(self, job_id: str, status: JobStatus, message: str = "") -> None:
        super().__init__(f"job {job_id} {status.value}" + (f": {message}" if message else ""))
        self.job_id = job_id
        self.status = status


class JobAlreadyExists(AlreadyExists):
    """``submit(request, adopt_existing=False)`` found a live job of that name: ``handle`` is it."""

    def __init__(self, name: str, handle: JobHandle, message: str | None = None) -> None:
        super().__init__(message or f"job `name` {name!r} is taken by live run {handle.job_id}", run_id=handle.job_id)
        self.name = name
        self.handle = handle


def _strs(values: Any, argument: str) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, Sequence) or not all(isinstance(v, str) for v in values):
        raise BadInput(f"`{argument}` must be a list of strings, not {values!r}", argument=argument)
    return tuple(values)


class Entrypoint(Value, frozen=True):
    """What a job runs: a command and its arguments (commands only: nothing is pickled)."""

    command: str
    args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.command, str) or not self.command:
            raise BadInput(f"`command` must be a program to run, not {self.command!r}", argument="command")
        object.__setattr__(self, "args", _strs(self.args, "args"))

    @classmethod
    def from_binary(cls, command: str, args: Sequence[str] = ()) -> Entrypoint:
        """Run ``command`` (a program on PATH or a path) with ``args``."""
        return cls(command, _strs(args, "args"))

    @property
    def argv(self) -> list[str]:
        return [self.command, *self.args]


#: patterns compiled on first use (re's cache): a submit that gives neither pays for neither
_DEVICE = r"^(cpu|gpu)(?::([0-9]+(?:\.[0-9]+)?))?$"


class ResourceConfig(Value, frozen=True):
    """What a job needs: ``cpu`` (CPUs reserved for it; None: the engine's default), ``ram``
    (``"4GiB"``, ``"512MiB"``, ``"4g"``: the most memory its command may use; merlin ends it past
    that on every engine, Ray also reserves it), ``device``
    (``"cpu"``, ``"gpu"`` or ``"gpu:N"``), ``leases``: merlin's lab hardware as lease bundles
    (``"firesim_fpga:1"``, ``POOL[:COUNT][,k=v...]``; several form a gang: the job waits until all
    are granted), and ``custom``: other Ray resources by name."""

    cpu: float | None = None
    ram: str | None = None
    device: str | None = None
    leases: tuple[str, ...] = ()
    custom: Mapping[str, float] = factory(default_factory=dict)

    def __post_init__(self) -> None:
        if self.cpu is not None and (isinstance(self.cpu, bool) or not isinstance(self.cpu, int | float) or not self.cpu >= 0):
            raise BadInput(f"`cpu` must be a number >= 0, not {self.cpu!r}", argument="cpu")
        if self.ram is not None:
            from merlin.controlplane.args import memory_bytes

            memory_bytes(self.ram, "ram")
        if self.device is not None and (not isinstance(self.device, str) or not re.match(_DEVICE, self.device)):
            raise BadInput(f"`device` {self.device!r}: expected cpu, gpu or gpu:N", argument="device")
        object.__setattr__(self, "leases", _strs(self.leases, "leases"))
        object.__setattr__(self, "custom", dict(self.custom))

    @property
    def gpus(self) -> float | None:
        if self.device is None:
            return None
        m = re.match(_DEVICE, self.device)
        if m is None or m.group(1) == "cpu":
            return None
        return float(m.group(2) or 1)


class EnvironmentConfig(Value, frozen=True):
    """Where and with what a job runs, under fray's names: ``workspace`` (the directory it runs in),
    ``pip_packages`` and ``extras`` (packages of its environment), ``env_vars``; and merlin's
    ``lockfile`` (a uv.lock or pylock.toml path) and ``secrets`` (names of variables whose values are
    taken from the submitter's environment at launch and never written to the ledger), ``python``
    (X.Y) and ``options``: any other field of the run environment (``requirements_file``,
    ``working_dir``, ``index_url``, ``find_links``, ``no_index``). All but ``workspace`` and
    ``env_vars`` become the run environment of docs/environments.md (``runtime``), built by uv."""

    workspace: str | None = None
    pip_packages: tuple[str, ...] = ()
    env_vars: Mapping[str, str] = factory(default_factory=dict)
    extras: tuple[str, ...] = ()
    lockfile: str | None = None
    secrets: tuple[str, ...] = ()
    python: str | None = None
    options: Mapping[str, Any] = factory(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("pip_packages", "extras", "secrets"):
            object.__setattr__(self, name, _strs(getattr(self, name), name))
        if not isinstance(self.env_vars, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in self.env_vars.items()):
            raise BadInput("`env_vars` must map names to strings", argument="env_vars")
        object.__setattr__(self, "env_vars", dict(self.env_vars))
        if not isinstance(self.options, Mapping):
            raise BadInput("`options` must map run environment fields to values (docs/environments.md)", argument="options")
        object.__setattr__(self, "options", dict(self.options))

    def runtime(self) -> dict[str, Any] | None:
        """The run environment (``ControlPlane.submit(runtime=...)``: a mapping of ``RuntimeEnv``'s
        fields, docs/environments.md), or None when there is none; ``options`` are given as they are."""
        out: dict[str, Any] = {}
        if self.pip_packages or self.extras:
            out["packages"] = [*self.pip_packages, *self.extras]
        if self.lockfile:
            out["lock_file"] = self.lockfile
        if self.secrets:
            out["secret_env"] = list(self.secrets)
        if self.python:
            out["python"] = self.python
        out.update(self.options)
        return out or None


class JobRequest(Value, frozen=True):
    """One job: fray's fields, then merlin's (all keyword-friendly with defaults).

    ``name`` names the job (no spaces): while a job of that name is live, submitting it
    again adopts that job (None: an unnamed job, never adopted; it then needs a ``target``). ``target`` (default: ``name``) and ``workflow`` (default ``job``)
    are the run's target and workflow; ``target_dir``: the directory indexed as the run's
    artifacts; ``metadata``: recorded with the run."""

    name: str | None
    entrypoint: Entrypoint
    resources: ResourceConfig = factory(default_factory=ResourceConfig)
    environment: EnvironmentConfig | None = None
    replicas: int | None = None
    max_retries_failure: int = 0
    max_retries_preemption: int = DEFAULT_MAX_RETRIES_PREEMPTION
    retry_backoff: float | str | None = None
    placement: str | None = None
    target: str | None = None
    workflow: str = DEFAULT_WORKFLOW
    target_dir: str | None = None
    metadata: Mapping[str, Any] = factory(default_factory=dict)

    def __post_init__(self) -> None:
        from merlin.controlplane import check_job_name

        if self.name is not None:
            check_job_name(self.name)
        elif self.target is None:
            raise BadInput("an unnamed job needs a `target` (or give it a `name`)", argument="target", related="name")
        if not isinstance(self.entrypoint, Entrypoint):
            raise BadInput("`entrypoint` must be an Entrypoint (Entrypoint.from_binary(command, args))", argument="entrypoint")
        if not isinstance(self.resources, ResourceConfig):
            raise BadInput("`resources` must be a ResourceConfig", argument="resources")
        if self.environment is not None and not isinstance(self.environment, EnvironmentConfig):
            raise BadInput("`environment` must be an EnvironmentConfig or None", argument="environment")
        for arg in ("max_retries_failure", "max_retries_preemption"):
            v = getattr(self, arg)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise BadInput(f"`{arg}` must be a whole number >= 0, not {v!r}", argument=arg)
        if self.replicas is not None and (isinstance(self.replicas, bool) or not isinstance(self.replicas, int) or self.replicas < 1):
            raise BadInput(f"`replicas` must be a whole number >= 1 or None, not {self.replicas!r}", argument="replicas")
        object.__setattr__(self, "metadata", dict(self.metadata))


def submit_kwargs(request: JobRequest) -> dict[str, Any]:
    """The one mapping of a :class:`JobRequest` onto ``ControlPlane.submit``'s arguments.

    Every field is passed (``runtime`` only when there is one), so the three front ends and the
    facade cannot disagree on a default."""
    res, env = request.resources, request.environment
    kwargs: dict[str, Any] = {
        "target": request.target or request.name or "",
        "workflow": request.workflow,
        "name": request.name,
        "target_dir": request.target_dir,
        "num_cpus": None if res.cpu is None else float(res.cpu),
        "num_gpus": res.gpus,
        "resources": dict(res.custom) or None,
        "leases": list(res.leases),
        "metadata": dict(request.metadata) or None,
        "memory": res.ram,
    }
    if env is not None:
        kwargs["env"] = dict(env.env_vars) or None
        if env.workspace:
            kwargs["workdir"] = env.workspace
        runtime = env.runtime()
        if runtime is not None:
            kwargs["runtime"] = runtime
    kwargs["max_retries_failure"] = request.max_retries_failure
    kwargs["max_retries_preemption"] = request.max_retries_preemption
    kwargs["retry_backoff"] = request.retry_backoff
    kwargs["replicas"] = request.replicas
    kwargs["placement"] = request.placement
    return kwargs
