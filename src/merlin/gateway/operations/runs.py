"""Runs: submit, list, status, why, logs, cancel, retry."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from merlin.gateway.registry import Input, Later, NextStep, Result, operation, step
from merlin.gateway.shared import DEFAULT_ENGINE, EngineChoice, Name, PathText, RunId, RunResult, RunStatusChoice, run_json, run_steps
from merlin.gateway.steps import map_steps

if TYPE_CHECKING:  # pragma: no cover
    from merlin.gateway.ops import Gateway

#: Characters of log text returned by one runs_logs call.
DEFAULT_LOG_CHUNK = 64 * 1024


class RunSummary(BaseModel):
    """A run's summary (as `merlin ray jobs list`: also target, workflow, source, engine, outcome, message,
    waiting_on, created_at, updated_at, cluster, attempts), or its whole record with full=true. Only the
    two fields every row has are declared: a client checks each of up to thousands of rows against them."""

    model_config = ConfigDict(extra="allow")
    run_id: str
    status: RunStatusChoice


class RunsListResult(Result):
    runs: list[RunSummary] = Field(description="Newest first.")
    total: int = Field(ge=0, description="How many runs match (before limit).")


class Condition(BaseModel):
    """One condition holding a run or a lease back."""

    model_config = ConfigDict(extra="allow")
    code: str
    next_steps: list[NextStep] = Field(default_factory=list)


class RunsWhyResult(Result):
    run_id: str
    status: RunStatusChoice
    message: str
    held: bool
    conditions: list[Condition]


class RunsLogsResult(Result):
    run_id: str
    attempt: int
    status: RunStatusChoice
    text: str
    cursor: int = Field(ge=0)
    next_cursor: int = Field(ge=0)
    complete: bool


class RuntimeInput(BaseModel):
    """What the run runs with (docs/environments.md), as `merlin ray jobs submit --env-file`; files as their text."""

    model_config = ConfigDict(extra="forbid")
    python: str | None = Field(None, pattern=r"^[0-9]+\.[0-9]+$", description="Python X.Y (default: the server's, when packages are asked for).")
    requirements: str | None = Field(None, description="A requirements.txt's text.")
    lockfile: str | None = Field(None, description="A pylock.toml's (or uv.lock's) text.")
    lockfile_name: str | None = Field(None, description="pylock.toml (default) or uv.lock.")
    lock_project: str | None = Field(None, description="With a uv.lock: its pyproject.toml's text.")
    packages: list[str] = Field(default_factory=list, description="Extra requirements, e.g. numpy==2.1.")
    index_url: list[str] = Field(default_factory=list, description="Package indexes, the first the default.")
    find_links: list[str] = Field(default_factory=list, description="Directories (on the server) or pages of wheels.")
    no_index: bool = Field(False, description="Install from find_links only.")
    working_dir: PathText | None = Field(None, description="A directory on the server, snapshotted at submit; the run runs in a copy.")
    env_vars: dict[str, str] = Field(default_factory=dict, description="Environment of the command (not part of the env id).")
    secret_env: list[str] = Field(default_factory=list, description="Names read from the server's environment at launch; values never recorded.")


class SubmitInput(Input):
    command: list[str] = Field(min_length=1, description="argv of the command to run.")
    target: Name = Field(description="Target name (part of the run id).")
    workflow: Name = Field(description="Workflow name.")
    engine: EngineChoice = DEFAULT_ENGINE
    target_dir: PathText | None = Field(None, description="Directory indexed as artifacts (default: runs/<id>/target).")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment; secret-looking names are redacted in records.")
    cluster: Name | None = Field(None, description="Ray cluster (engine ray).")
    num_cpus: float | None = Field(None, ge=0)
    num_gpus: float | None = Field(None, ge=0)
    memory: str | None = Field(
        None, max_length=32, description="The most memory the command may use, e.g. 512MiB or 4GiB: merlin ends it past that (MEMORY_LIMIT); Ray also reserves it on the node."
    )
    resources: dict[str, float] = Field(default_factory=dict, description="Custom Ray resources.")
    runtime: RuntimeInput | None = Field(None, description="The run's environment, built once per spec by uv (none: the server's environment).")
    max_retries_failure: int = Field(0, ge=0, le=100, description="Automatic retries after the command exits non-zero (docs/retries.md).")
    max_retries_preemption: int = Field(0, ge=0, le=1000, description="Automatic retries after the infrastructure loses the run (node, head, cluster, lease, supervisor).")
    retry_backoff: float | None = Field(None, ge=0, le=3600, description="Seconds before the first automatic retry (default 10), doubling.")
    replicas: int | None = Field(None, ge=1, le=256, description="A gang: this many processes started together or not at all.")
    placement: Literal["pack", "spread"] | None = Field(None, description="Where a gang's replicas go: pack (few nodes) or spread (one per node).")
    name: Name | None = Field(None, description="Job name: while a run of this name is live, submitting it again returns that run instead of starting a second one.")

    @field_validator("memory")
    @classmethod
    def _a_size(cls, v: str | None) -> str | None:
        """One grammar of sizes (merlin.units), the CLI's and the client's."""
        from merlin.controlplane import memory_bytes
        from merlin.errors import BadInput

        try:
            memory_bytes(v)
        except BadInput as exc:
            raise ValueError(exc.message) from None
        return v


class ListRunsInput(Input):
    status: list[RunStatusChoice] | None = Field(None, description="Only runs with these statuses.")
    limit: int = Field(100, ge=0, description="Newest N runs (0: all); total says how many there are.")
    refresh: bool = Field(False, description="Ask the engines first.")
    full: bool = Field(False, description="Whole records (as `merlin ray jobs list --json`); default: the summary fields of each.")


class RunInput(Input):
    run_id: RunId = Field(description="Run id.")


class RunStatusInput(RunInput):
    refresh: bool = Field(True, description="Ask the run's engine (false: the ledger only).")


class LogsInput(RunInput):
    cursor: int = Field(0, ge=0, description="Characters already read (the next_cursor of the previous call).")
    attempt: int | None = Field(None, ge=1, description="Attempt number (default: the latest).")
    max_chars: int = Field(DEFAULT_LOG_CHUNK, ge=1, le=1024 * 1024)


class RunWaitInput(RunInput):
    timeout: float = Field(600.0, gt=0, le=3600, description="Seconds to wait at most; the run goes on afterwards either way.")


class RunsWaitResult(RunResult):
    """The run's record when it ended or the timeout came."""

    ended: bool = Field(description="The run reached a final status (false: the timeout came first; call again).")


class RunRetryInput(RunInput):
    env: dict[str, str] = Field(default_factory=dict, description="Environment (needed again for redacted secrets).")
    cluster: Name | None = None


@operation("runs_submit", "runs", SubmitInput, RunResult, mutating=True)
def runs_submit(gw: Gateway, a: SubmitInput) -> dict[str, Any]:
    """Record a run and hand it to an engine; returns once the run is recorded (poll runs_status, tail runs_logs)."""
    from merlin.client import Entrypoint, EnvironmentConfig, JobRequest, ResourceConfig, submit_request

    request = JobRequest(
        a.name,
        Entrypoint.from_binary(a.command[0], a.command[1:]),
        resources=ResourceConfig(cpu=a.num_cpus, device=None if a.num_gpus is None else f"gpu:{a.num_gpus:g}", ram=a.memory, custom=a.resources),
        environment=EnvironmentConfig(env_vars=a.env, options=a.runtime.model_dump(exclude_defaults=True) if a.runtime is not None else {}),
        replicas=a.replicas,
        max_retries_failure=a.max_retries_failure,
        max_retries_preemption=a.max_retries_preemption,
        retry_backoff=a.retry_backoff,
        placement=a.placement,
        target=a.target,
        workflow=a.workflow,
        target_dir=a.target_dir,
    )
    return run_json(submit_request(gw.cp, request, engine=a.engine, cluster=a.cluster, source="gateway"))


@operation("runs_list", "runs", ListRunsInput, RunsListResult, mutating=False, stored_records=True)
def runs_list(gw: Gateway, a: ListRunsInput) -> dict[str, Any]:
    """Runs in the ledger, newest first: each run's summary (run_id, target, workflow, source, engine, status, outcome, message, waiting_on: what a waiting run waits on, created_at, updated_at, cluster name, number of attempts), or whole records as stored with full=true."""
    total, rows = gw.cp.run_summaries(a.status, a.limit, full=a.full, refresh=a.refresh)
    steps = [step("runs_status", run_id=r["run_id"]) for r in rows if r.get("status") in ("pending", "running")][:5]
    return {"runs": rows, "total": total, "next_steps": steps}


@operation("runs_status", "runs", RunStatusInput, RunResult, mutating=False, stored_records=True)
def runs_status(gw: Gateway, a: RunStatusInput) -> dict[str, Any]:
    """One run's record, after asking its engine (refresh=false reads the ledger only)."""
    if not a.refresh:
        data = dict(gw.cp.status_json(a.run_id, refresh=False))
        if not data.get("next_steps"):
            data["next_steps"] = run_steps(data)
        return data
    return run_json(gw.cp.status(a.run_id))


@operation("runs_why", "runs", RunInput, RunsWhyResult, mutating=False)
def runs_why(gw: Gateway, a: RunInput) -> dict[str, Any]:
    """Why a run is waiting or blocked: every condition (leases, cluster, Ray, the scheduler, then the run), each with a stable code, evidence, when it was observed, a hint and the tool calls to make next (as `merlin ray jobs why`)."""
    rec = gw.cp.get(a.run_id)
    offered = {op.name for op in gw.operations()}

    def offer(s: dict[str, Any]) -> dict[str, Any]:  # without --allow-cluster-control: look, do not start
        return s if s["tool"] in offered else step("clusters_status", name=s["args"].get("name", "default"))

    def offered_steps(c: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for s in map(offer, map_steps(c.get("next_steps"))):
            if s not in out:
                out.append(s)
        return out

    doc = gw.cp.why(rec.run_id, document=True)  # the document of `jobs why --json`, its steps as tool calls
    conds = [dict(c, next_steps=offered_steps(c)) for c in doc["conditions"]]
    steps: list[dict[str, Any]] = []
    for s in [x for c in conds for x in c["next_steps"]] + [step("runs_status", run_id=rec.run_id)]:
        if s not in steps:
            steps.append(s)
    return {**doc, "conditions": conds, "next_steps": steps[:6]}


@operation("runs_logs", "runs", LogsInput, RunsLogsResult, mutating=False)
def runs_logs(gw: Gateway, a: LogsInput) -> dict[str, Any]:
    """A chunk of the run's output from a cursor: call again with next_cursor to tail it incrementally."""
    rec = gw.cp.get(a.run_id)
    text = gw.cp.logs(a.run_id, a.attempt)
    chunk = text[a.cursor : a.cursor + a.max_chars]
    nxt = a.cursor + len(chunk)
    done = rec.status.is_terminal() and nxt >= len(text)
    steps = [] if done else [step("runs_logs", run_id=a.run_id, cursor=nxt)]
    return {"run_id": a.run_id, "attempt": a.attempt or len(rec.attempts), "status": rec.status.value, "text": chunk, "cursor": a.cursor, "next_cursor": nxt, "complete": done, "next_steps": steps}


@operation("runs_wait", "runs", RunWaitInput, RunsWaitResult, mutating=False)
def runs_wait(gw: Gateway, a: RunWaitInput) -> dict[str, Any] | Later:
    """Wait until a run ends (or timeout seconds pass) and return its record, with ended true or false; the wait holds no worker, sends progress when the client asks for it, and a cancelled call stops waiting, never the run."""
    first = gw.cp.status(a.run_id)

    def answer(rec: Any) -> dict[str, Any]:
        return {**run_json(rec), "ended": rec.status.is_terminal()}

    if first.status.is_terminal():
        return answer(first)

    def check() -> dict[str, Any] | None:
        now = gw.cp.status(a.run_id)
        later.note = f"run {a.run_id} {now.status.value}" + (f": {now.message}" if now.message else "")
        return answer(now) if now.status.is_terminal() else None

    later = Later(check=check, expired=lambda: answer(gw.cp.status(a.run_id)), deadline=time.monotonic() + a.timeout, interval=0.5)
    later.note = f"run {a.run_id} {first.status.value}"
    return later


@operation("runs_cancel", "runs", RunInput, RunResult, mutating=True)
def runs_cancel(gw: Gateway, a: RunInput) -> dict[str, Any]:
    """Stop a run (local: its whole process group; ray: stop_job)."""
    return run_json(gw.cp.cancel(a.run_id))


@operation("runs_retry", "runs", RunRetryInput, RunResult, mutating=True)
def runs_retry(gw: Gateway, a: RunRetryInput) -> dict[str, Any]:
    """A new attempt of a blocked, failed, cancelled or lost run; returns once it is recorded."""
    return run_json(gw.cp.retry(a.run_id, env=a.env, cluster=a.cluster))
