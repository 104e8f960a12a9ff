"""Runs: submit, list, status, why, logs, cancel, retry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from merlin.gateway.registry import Input, operation, step
from merlin.gateway.shared import DEFAULT_ENGINE, EngineChoice, run_json, run_steps
from merlin.gateway.steps import map_steps

if TYPE_CHECKING:  # pragma: no cover
    from merlin.gateway.ops import Gateway

#: Characters of log text returned by one runs_logs call.
DEFAULT_LOG_CHUNK = 64 * 1024


class SubmitInput(Input):
    command: list[str] = Field(min_length=1, description="argv of the command to run.")
    target: str = Field(description="Target name (part of the run id).")
    workflow: str = Field(description="Workflow name.")
    engine: EngineChoice = DEFAULT_ENGINE
    target_dir: str | None = Field(None, description="Directory indexed as artifacts (default: runs/<id>/target).")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment; secret-looking names are redacted in records.")
    cluster: str | None = Field(None, description="Ray cluster (engine ray).")
    num_cpus: float | None = Field(None, ge=0)
    num_gpus: float | None = Field(None, ge=0)
    resources: dict[str, float] = Field(default_factory=dict, description="Custom Ray resources.")


class ListRunsInput(Input):
    status: list[str] | None = Field(None, description="Only runs with these statuses.")
    limit: int = Field(100, ge=0, description="Newest N runs (0: all); total says how many there are.")
    refresh: bool = Field(False, description="Ask the engines first.")
    full: bool = Field(False, description="Whole records (as `merlin ray jobs list --json`); default: the summary fields of each.")


class RunInput(Input):
    run_id: str = Field(description="Run id.")


class RunStatusInput(RunInput):
    refresh: bool = Field(True, description="Ask the run's engine (false: the ledger only).")


class LogsInput(RunInput):
    cursor: int = Field(0, ge=0, description="Characters already read (the next_cursor of the previous call).")
    attempt: int | None = Field(None, ge=1, description="Attempt number (default: the latest).")
    max_chars: int = Field(DEFAULT_LOG_CHUNK, ge=1, le=1024 * 1024)


class RunRetryInput(RunInput):
    env: dict[str, str] = Field(default_factory=dict, description="Environment (needed again for redacted secrets).")
    cluster: str | None = None


@operation("runs_submit", "runs", SubmitInput, mutating=True)
def runs_submit(gw: Gateway, a: SubmitInput) -> dict[str, Any]:
    """Record a run and hand it to an engine; returns once the run is recorded (poll runs_status, tail runs_logs)."""
    rec = gw.cp.submit(
        a.command, target=a.target, workflow=a.workflow, engine=a.engine, target_dir=a.target_dir, num_cpus=a.num_cpus,
        num_gpus=a.num_gpus, resources=a.resources, env=a.env, cluster=a.cluster, source="gateway",
    )
    return run_json(rec)


@operation("runs_list", "runs", ListRunsInput, mutating=False, stored_records=True)
def runs_list(gw: Gateway, a: ListRunsInput) -> dict[str, Any]:
    """Runs in the ledger, newest first: each run's summary (run_id, target, workflow, source, engine, status, outcome, message, waiting_on: what a waiting run waits on, created_at, updated_at, cluster name, number of attempts), or whole records as stored with full=true."""
    total, rows = gw.cp.run_summaries(a.status, a.limit, full=a.full, refresh=a.refresh)
    steps = [step("runs_status", run_id=r["run_id"]) for r in rows if r.get("status") in ("pending", "running")][:5]
    return {"runs": rows, "total": total, "next_steps": steps}


@operation("runs_status", "runs", RunStatusInput, mutating=False, stored_records=True)
def runs_status(gw: Gateway, a: RunStatusInput) -> dict[str, Any]:
    """One run's record, after asking its engine (refresh=false reads the ledger only)."""
    if not a.refresh:
        data = dict(gw.cp.status_json(a.run_id, refresh=False))
        if not data.get("next_steps"):
            data["next_steps"] = run_steps(data)
        return data
    return run_json(gw.cp.status(a.run_id))


@operation("runs_why", "runs", RunInput, mutating=False)
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

    conds = [dict(c, next_steps=offered_steps(c)) for c in gw.cp.why(rec.run_id)]
    steps: list[dict[str, Any]] = []
    for s in [x for c in conds for x in c["next_steps"]] + [step("runs_status", run_id=rec.run_id)]:
        if s not in steps:
            steps.append(s)
    return {"run_id": rec.run_id, "status": rec.status.value, "message": rec.message, "held": bool(conds), "conditions": conds, "next_steps": steps[:6]}


@operation("runs_logs", "runs", LogsInput, mutating=False)
def runs_logs(gw: Gateway, a: LogsInput) -> dict[str, Any]:
    """A chunk of the run's output from a cursor: call again with next_cursor to tail it incrementally."""
    rec = gw.cp.get(a.run_id)
    text = gw.cp.logs(a.run_id, a.attempt)
    chunk = text[a.cursor : a.cursor + a.max_chars]
    nxt = a.cursor + len(chunk)
    done = rec.status.is_terminal() and nxt >= len(text)
    steps = [] if done else [step("runs_logs", run_id=a.run_id, cursor=nxt)]
    return {"run_id": a.run_id, "attempt": a.attempt or len(rec.attempts), "status": rec.status.value, "text": chunk, "cursor": a.cursor, "next_cursor": nxt, "complete": done, "next_steps": steps}


@operation("runs_cancel", "runs", RunInput, mutating=True)
def runs_cancel(gw: Gateway, a: RunInput) -> dict[str, Any]:
    """Stop a run (local: its whole process group; ray: stop_job)."""
    return run_json(gw.cp.cancel(a.run_id))


@operation("runs_retry", "runs", RunRetryInput, mutating=True)
def runs_retry(gw: Gateway, a: RunRetryInput) -> dict[str, Any]:
    """A new attempt of a blocked, failed, cancelled or lost run; returns once it is recorded."""
    return run_json(gw.cp.retry(a.run_id, env=a.env, cluster=a.cluster))
