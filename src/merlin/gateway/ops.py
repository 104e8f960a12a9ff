"""The one definition of every gateway operation.

Each ``Operation`` has a name (the MCP tool name and the REST path), a
description, a typed pydantic input model (its JSON Schema is the tool's input
schema and the endpoint's request body), a handler that calls the
ControlPlane facade or the TargetGen API, and whether it mutates state (then
it is audited). ``merlin.gateway.mcp_server`` and ``merlin.gateway.http``
are generated from ``OPERATIONS``; neither defines an operation of its own.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from merlin.errors import BadInput, MerlinError, NotFound

#: Bytes of an artifact returned inline by artifacts_fetch (larger ones: a path).
DEFAULT_FETCH_LIMIT = 256 * 1024
#: Characters of log text returned by one runs_logs call.
DEFAULT_LOG_CHUNK = 64 * 1024


class Input(BaseModel):
    """Closed inputs: an unknown argument is an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------- inputs


STRICT = "Treat the pair's warnings (e.g. an overlay that belongs to another target) as errors: a spec_error, exit 2 (the CLI's --strict)."


class SpecInput(Input):
    capability: str = Field(description="Path of the capability spec (capability.yaml), as the server sees it.")
    overlay: str | None = Field(None, description="Path of a deployment overlay YAML.")
    strict: bool = Field(False, description=STRICT)


class PlanInput(SpecInput):
    out_dir: str | None = Field(None, description="Output root (default: the server's $MERLIN_TARGETGEN_OUT or build/generated/targetgen).")


class OrchestrateInput(PlanInput):
    prompt_backend: Literal["manualllm", "none"] = Field("manualllm", description="manualllm writes a prompt packet per task that needs a proposal.")
    reset: bool = Field(False, description="Archive the existing state under history/ and start over.")


from merlin.engines.registry import DEFAULT_ENGINE  # noqa: E402  (light: strings only)
from merlin.engines.registry import names as _engine_names  # noqa: E402

if TYPE_CHECKING:
    EngineChoice = str
else:  # the engines of merlin.engines.registry, as a JSON Schema enum for the tools
    EngineChoice = Literal.__getitem__(tuple(_engine_names()))


class ExecuteInput(Input):
    target_dir: str | None = Field(None, description="A target directory written by orchestrate (or give capability).")
    capability: str | None = Field(None, description="A capability spec; it is orchestrated first when needed.")
    overlay: str | None = Field(None, description="Deployment overlay, with capability.")
    out_dir: str | None = Field(None, description="Output root, with capability.")
    engine: EngineChoice = Field(DEFAULT_ENGINE, description="local: a supervised process here; ray: a Ray Job (any engine of merlin.engines.registry).")
    cluster: str | None = Field(None, description="Ray cluster name (engine ray).")
    strict: bool = Field(False, description=STRICT + " With capability only: a target_dir was checked when it was orchestrated.")
    wait: bool = Field(True, description="Wait (in a worker thread, never the server loop) until the executor stops at a gate; false returns once the run is recorded.")
    timeout: float = Field(600.0, gt=0, le=3600, description="Seconds to wait with wait=true; the run goes on afterwards.")


class TargetDirInput(Input):
    target_dir: str = Field(description="A target directory written by orchestrate.")


class AnswerInput(TargetDirInput):
    question_id: str = Field(description="The open question's id.")
    choice: str = Field(description="One of the question's option ids.")
    note: str | None = Field(None, max_length=2000, description="A note recorded with the answer.")


class RetryTaskInput(TargetDirInput):
    task: str | None = Field(None, description="The task to retry (default: every blocked or failed task).")
    reason: str | None = Field(None, max_length=2000, description="Why (kept in the task's history).")


class PromptInput(TargetDirInput):
    task_id: str | None = Field(None, description="The task (default: the one awaiting a response).")


class RespondInput(TargetDirInput):
    task_id: str = Field(description="The task awaiting a response.")
    text: str = Field(min_length=1, max_length=512 * 1024, description="The response (a proposal in Markdown).")


class QuestionsInput(Input):
    target_dir: str | None = Field(None, description="One target directory (default: every target under the output root).")


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


class FetchInput(RunInput):
    name: str = Field(description="Artifact name as listed (relative path).")
    max_bytes: int = Field(DEFAULT_FETCH_LIMIT, ge=1, le=4 * 1024 * 1024, description="Larger artifacts are returned as a path.")


class ReserveInput(Input):
    bundles: list[str] = Field(min_length=1, description="POOL[:COUNT][,k=v...] each; several form a gang (granted all at once or not at all).")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels every bundle's items must carry.")
    priority: int = Field(0, description="Higher is served first; ties by age.")
    ttl: str = Field("15m", description="Expires unless renewed within this (90s, 15m, 2h).")
    run_id: str | None = Field(None, description="The run this lease is for (recorded).")


class LeaseInput(Input):
    lease_id: str = Field(description="Lease id.")


class RenewInput(LeaseInput):
    ttl: str | None = Field(None, description="New TTL (default: the lease's own).")


class ReleaseInput(LeaseInput):
    force: bool = Field(False, description="Release someone else's lease (needs reason).")
    reason: str | None = Field(None, max_length=2000, description="Why (recorded).")


class NoInput(Input):
    pass


class ClusterInput(Input):
    name: str = Field("default", description="Cluster name.")


class ClusterStartInput(ClusterInput):
    port: int | None = Field(None, ge=1, le=65535, description="GCS port (default 6379); a restart step keeps the recorded one.")
    dashboard_port: int | None = Field(None, ge=1, le=65535, description="Jobs API / dashboard port (default 8265).")
    num_cpus: float | None = Field(None, ge=0)
    num_gpus: float | None = Field(None, ge=0)
    resources: dict[str, float] = Field(default_factory=dict, description="Custom Ray resources of the head node.")


class ClusterStopInput(ClusterInput):
    force: bool = Field(False, description="Stop it although runs are active on it: they are recorded as cancelled (cluster stopped), their logs kept (the CLI's --force).")


# -------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Operation:
    name: str
    group: str
    description: str
    input: type[Input]
    handler: Callable[[Gateway, Any], Any]
    mutating: bool
    requires: str | None = None  # a server flag that must be on ("cluster_control")
    #: The result is ledger run records as stored: the ledger's models redacted them when they were
    #: written (env, metadata, messages: the same functions), so the response pass is skipped.
    stored_records: bool = False

    @property
    def path(self) -> str:
        return f"/api/{self.name}"


OPERATIONS: list[Operation] = []


def operation(name: str, group: str, input: type[Input], *, mutating: bool, requires: str | None = None, stored_records: bool = False) -> Callable:
    def register(fn: Callable[[Gateway, Any], Any]) -> Callable[[Gateway, Any], Any]:
        doc = " ".join((fn.__doc__ or "").split())
        OPERATIONS.append(Operation(name, group, doc, input, fn, mutating, requires, stored_records))
        return fn

    return register


def by_name() -> dict[str, Operation]:
    return {op.name: op for op in OPERATIONS}


#: ``next_steps`` actions named by records (``{action, args}``) -> the tool that performs them.
ACTION_TOOLS = {
    "status": "runs_status",
    "logs": "runs_logs",
    "cancel": "runs_cancel",
    "retry": "runs_retry",
    "lease_why": "leases_why",
    "renew": "leases_renew",
    "release": "leases_release",
    "artifacts": "artifacts_list",
    "fetch": "artifacts_fetch",
    "answer": "targetgen_answer",
    "execute": "targetgen_execute",
    "targetgen_status": "targetgen_status",
    "targetgen_retry": "targetgen_retry",
    "prompt": "review_prompt",
    "respond": "review_respond",
    "cluster_status": "clusters_status",
    "cluster_start": "clusters_start",
    # the vocabulary of merlin.nextsteps.Action, as records carry it
    "targetgen_answer": "targetgen_answer",
    "targetgen_execute": "targetgen_execute",
    "targetgen_respond": "review_respond",
    "start_cluster": "clusters_start",
    "list_runs": "runs_list",
    "list_clusters": "clusters_list",
    "why": "runs_why",
    "stop_cluster": "clusters_stop",
    "leases_list": "leases_list",
    "leases_queue": "leases_queue",
    "reserve": "leases_reserve",
}

#: actions with no tool: an install or a shell command line, a lab maintainer's decision on the inventory,
#: a scheduler's own command (a forced release, too, stays a person's decision: see ``_forced``)
NO_TOOL = frozenset({"install", "run_again", "item_health", "drain_item", "define_inventory", "scheduler_query"})


def step(tool: str, **args: Any) -> dict[str, Any]:
    return {"tool": tool, "args": args}


# ------------------------------------------------------------------ gateway


@dataclass
class Later:
    """A handler's answer "not yet": ``check()`` returns the result once ready (else None);
    past ``deadline`` (monotonic) ``expired()`` gives the answer instead. Polled by the caller,
    so a server waits on its event loop, not in a worker thread."""

    check: Callable[[], dict[str, Any] | None]
    expired: Callable[[], dict[str, Any]]
    deadline: float
    interval: float = 0.2

    def poll(self) -> dict[str, Any] | Later:
        done = self.check()
        if done is not None:
            return done
        if time.monotonic() >= self.deadline:
            return self.expired()
        return self



class Gateway:
    """The operations bound to one state root and one server's flags.

    Handlers are synchronous (they take file locks and may wait on a run);
    transports call ``call`` in a worker thread so the server loop never blocks.
    """

    def __init__(self, state_root: str | os.PathLike[str] | None = None, *, allow_cluster_control: bool = False, transport: str = "api") -> None:
        from merlin.controlplane import ControlPlane

        self.cp = ControlPlane(state_root)
        self.allow_cluster_control = allow_cluster_control
        self.transport = transport
        self.audit_path = self.cp.root / "gateway" / "audit.jsonl"
        from merlin.gateway.summaries import RunSummaries

        self.summaries = RunSummaries(self.cp.root)  # runs_list's summaries, kept between calls

    def operations(self) -> list[Operation]:
        """The operations this server offers (cluster control only when allowed)."""
        return [op for op in OPERATIONS if op.requires != "cluster_control" or self.allow_cluster_control]

    def call(self, name: str, arguments: dict[str, Any] | None, *, client: str = "local") -> dict[str, Any]:
        """Validate, run, redact and (if mutating) audit one operation, waiting here if it waits. Raises MerlinError only."""
        op, args, result = self.start(name, arguments, client)
        while isinstance(result, Later):
            time.sleep(result.interval)
            result = self.step(op, args, client, result)
        return self.finish(op, args, client, result)

    async def acall(self, name: str, arguments: dict[str, Any] | None, *, client: str = "local") -> dict[str, Any]:
        """As :meth:`call`, for servers: the work runs in a worker thread, and a wait (an execute
        until its gate) sleeps on the event loop between quick polls, so it holds no worker."""
        import anyio
        import anyio.to_thread

        op, args, result = await anyio.to_thread.run_sync(self.start, name, arguments, client)
        while isinstance(result, Later):
            await anyio.sleep(result.interval)
            result = await anyio.to_thread.run_sync(self.step, op, args, client, result)
        return await anyio.to_thread.run_sync(self.finish, op, args, client, result)

    def start(self, name: str, arguments: dict[str, Any] | None, client: str) -> tuple[Operation, Input, Any]:
        from pydantic import ValidationError

        op = {o.name: o for o in self.operations()}.get(name)
        if op is None:
            raise NotFound(f"no operation {name!r} (see tools/list or /openapi.json)")
        try:
            args = op.input.model_validate(arguments or {})
        except ValidationError as exc:
            lines = [f"{name}: {'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()]
            if op.mutating:
                self.audit(op, arguments or {}, client, f"error {BadInput.exit_code}")
            raise BadInput(lines[0], lines=lines) from None
        return op, args, self._guarded(op, args, client, lambda: op.handler(self, args))

    def step(self, op: Operation, args: Input, client: str, later: Later) -> Any:
        """One poll of a waiting operation: its result, or the same Later while it still waits."""
        return self._guarded(op, args, client, later.poll)

    def _guarded(self, op: Operation, args: Input, client: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except MerlinError as exc:
            if op.mutating:
                self.audit(op, args.model_dump(), client, f"error {exc.exit_code}: {exc.message}")
            raise
        except OSError as exc:  # a path the caller named is unusable: their input, not a crash
            if op.mutating:
                self.audit(op, args.model_dump(), client, f"error 2: {exc}")
            raise BadInput(f"{exc.filename or op.name}: {exc.strerror or exc}") from None

    def finish(self, op: Operation, args: Input, client: str, result: Any) -> dict[str, Any]:
        from merlin.ledger.text import redact_mapping

        data = result if isinstance(result, dict) else {"items": result}
        if not op.stored_records:
            data = redact_mapping(data)
        data["next_steps"] = _map_steps(data.get("next_steps"))
        if op.mutating:
            self.audit(op, args.model_dump(), client, "ok")
        return data

    def audit(self, op: Operation, args: dict[str, Any], client: str, result: str) -> None:
        """One JSONL line per mutating request: time, client, operation, target or run, result."""
        import json

        from merlin.atomic import append_line
        from merlin.ledger.models import utcnow

        subject = {k: args[k] for k in ("run_id", "target_dir", "target", "capability", "name", "question_id", "task_id", "task") if args.get(k)}
        line = {"time": utcnow().isoformat(), "client": client, "transport": self.transport, "operation": op.name, "subject": subject, "result": result}
        self.audit_path.parent.mkdir(parents=True, exist_ok=True)
        append_line(self.audit_path, json.dumps(line, sort_keys=True, default=str))


def _map_steps(steps: Any) -> list[dict[str, Any]]:
    """Next steps as tool calls: records' ``{action, args}`` mapped through ACTION_TOOLS (keeping only the
    arguments the tool takes: a CLI-only flag such as ``follow`` is dropped); ours pass through."""
    tools = by_name()
    out = []
    for s in steps or []:
        if not isinstance(s, dict):
            continue
        if "tool" in s:
            out.append(s)
        elif _forced(s):
            continue
        elif s.get("action") in ACTION_TOOLS:
            s = _toolable(s)
            tool = ACTION_TOOLS[s["action"]]
            fields = tools[tool].input.model_fields if tool in tools else {}
            out.append(step(tool, **{k: v for k, v in (s.get("args") or {}).items() if k in fields}))
    return out


def _forced(s: dict[str, Any]) -> bool:
    """A forced release (someone else's lease) stays a person's decision: no tool call stands for it."""
    return s.get("action") == "release" and bool((s.get("args") or {}).get("force"))


def _toolable(s: dict[str, Any]) -> dict[str, Any]:
    """``clusters_start`` starts a local head on loopback only: a step that starts another kind (or
    binds another host) becomes a status call."""
    args = s.get("args") or {}
    if s.get("action") == "start_cluster" and (args.get("kind") not in (None, "local") or args.get("host")):
        return {"action": "cluster_status", "args": {"name": args.get("name", "default")}}
    return s


# ----------------------------------------------------------------- helpers


def _run_json(rec: Any) -> dict[str, Any]:
    data = rec.model_dump(mode="json")
    if not data.get("next_steps"):
        data["next_steps"] = _run_steps(data)
    return data


def _run_steps(data: dict[str, Any]) -> list[dict[str, Any]]:
    rid = data["run_id"]
    status = data.get("status")
    if status in ("pending", "running"):
        return [step("runs_status", run_id=rid), step("runs_logs", run_id=rid, cursor=0)]
    steps = []
    if data.get("source") == "targetgen" and data.get("outcome") in ("awaiting_operator", "awaiting_response", "blocked"):
        steps.append(step("targetgen_status", target_dir=data["target_dir"]))
    if status in ("failed", "cancelled", "lost", "blocked"):
        steps.append(step("runs_retry", run_id=rid))
    steps.append(step("runs_logs", run_id=rid, cursor=0))
    if status in ("succeeded", "failed"):
        steps.append(step("artifacts_list", run_id=rid))
    return steps


def _target_steps(data: dict[str, Any]) -> list[dict[str, Any]]:
    """What to call after a TargetGen result, by its outcome."""
    root = data["target_dir"]
    outcome = data.get("outcome")
    if outcome == "awaiting_operator" and data.get("open_question"):
        q = data["open_question"]
        return [
            step("targetgen_answer", target_dir=root, question_id=q["id"], choice=q["recommended_option"]),
            step("targetgen_execute", target_dir=root),
        ]
    if outcome == "awaiting_response" and data.get("awaiting_response"):
        tid = data["awaiting_response"]["task_id"]
        return [step("review_prompt", target_dir=root, task_id=tid), step("review_respond", target_dir=root, task_id=tid), step("targetgen_execute", target_dir=root)]
    if outcome == "blocked":
        return [step("targetgen_retry", target_dir=root, task=b["task_id"]) for b in data.get("blocked", [])[:1]] + [step("targetgen_execute", target_dir=root)]
    if outcome == "ready":
        return [step("targetgen_execute", target_dir=root)]
    return [step("targetgen_status", target_dir=root)]


def _with_steps(data: dict[str, Any]) -> dict[str, Any]:
    data["next_steps"] = _target_steps(data)
    return data


def _target_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / "execution_state.json").is_file() and (p / "execution_bundle.json").is_file())


# --------------------------------------------------------------- TargetGen


def _load_pair(a: SpecInput | ExecuteInput) -> tuple[Any, Any, list[str]]:
    """The pair, loaded (errors raise), and its located warnings (``merlin.spec.pairing``):
    an overlay of another target, a compile_target naming another target, a probe nobody asks for.
    With ``strict`` the warnings are the error (``spec_error``, exit 2), as with the CLI's --strict."""
    from merlin.spec import load_pair
    from merlin.spec.pairing import spec_warnings, strict_error

    assert a.capability is not None
    cap, ovl = load_pair(a.capability, a.overlay)
    warnings = spec_warnings(cap, ovl)
    failure = strict_error(warnings, "strict") if a.strict else None
    if failure is not None:
        raise failure
    return cap, ovl, warnings


@operation("targetgen_validate", "targetgen", SpecInput, mutating=False)
def targetgen_validate(gw: Gateway, a: SpecInput) -> dict[str, Any]:
    """Check a capability spec (and overlay); every problem is one FILE:LINE: field: problem line in the error; warnings: the pair's located mismatch warnings (as `targetgen validate`)."""
    cap, ovl, warnings = _load_pair(a)
    return {
        "valid": True,
        "warnings": warnings,
        "target": cap.model.target.name,
        "capability": a.capability,
        "overlay": a.overlay,
        "deployment": ovl.model.deployment.name if ovl else None,
        "next_steps": [step("targetgen_plan", capability=a.capability, overlay=a.overlay)],
    }


@operation("targetgen_plan", "targetgen", PlanInput, mutating=True)
def targetgen_plan(gw: Gateway, a: PlanInput) -> dict[str, Any]:
    """Write the plan (support plan, task graph, verification manifest) under OUT_DIR/<target>/; warnings as targetgen_validate."""
    from merlin.targetgen.executor import default_out_dir
    from merlin.targetgen.planner import build_plan, write_plan

    cap, ovl, warnings = _load_pair(a)
    result = build_plan(cap, ovl)
    target_dir, changed = write_plan(result, Path(a.out_dir) if a.out_dir else default_out_dir())
    sp = result.support_plan
    return {
        "target": result.target,
        "target_dir": str(target_dir),
        "warnings": warnings,
        "files": sorted(result.files()),
        "changed": changed,
        "integration_styles": sp["integration_styles"],
        "primary_integration": sp["primary_integration"],
        "target_families": sp["target_families"],
        "required_layers": sp["required_layers"],
        "next_steps": [step("targetgen_explain", capability=a.capability, overlay=a.overlay), step("targetgen_orchestrate", capability=a.capability, overlay=a.overlay)],
    }


@operation("targetgen_explain", "targetgen", SpecInput, mutating=False)
def targetgen_explain(gw: Gateway, a: SpecInput) -> dict[str, Any]:
    """The plan with the reason behind every decision (writes nothing)."""
    from merlin.targetgen.planner import build_plan

    cap, ovl, warnings = _load_pair(a)
    result = build_plan(cap, ovl)
    return {
        "warnings": warnings,
        "support_plan": result.support_plan,
        "task_graph": result.task_graph,
        "verification_manifest": result.verification_manifest,
        "next_steps": [step("targetgen_orchestrate", capability=a.capability, overlay=a.overlay)],
    }


@operation("targetgen_orchestrate", "targetgen", OrchestrateInput, mutating=True)
def targetgen_orchestrate(gw: Gateway, a: OrchestrateInput) -> dict[str, Any]:
    """Write the execution bundle, briefs, prompt packets and state for a target (keeps existing progress unless reset)."""
    from merlin.targetgen.executor import orchestrate

    if a.strict:
        _load_pair(a)
    result = orchestrate(a.capability, a.overlay, out_dir=a.out_dir, prompt_backend=a.prompt_backend, reset=a.reset)
    data = result.to_json()
    data["next_steps"] = [step("targetgen_execute", target_dir=str(result.target_dir))]
    return data


@operation("targetgen_execute", "targetgen", ExecuteInput, mutating=True)
def targetgen_execute(gw: Gateway, a: ExecuteInput) -> dict[str, Any] | Later:
    """Advance the target until its next gate, as a recorded run; returns the outcome (completed, awaiting_operator, awaiting_response, blocked) with the run, or the run alone with wait=false."""
    from merlin.controlplane import targetgen_target
    from merlin.targetgen import executor as ex

    if (a.capability is None) == (a.target_dir is None):
        raise BadInput("targetgen_execute: give either capability or target_dir (exactly one)")
    if a.target_dir is not None and (a.overlay or a.out_dir):
        raise BadInput("targetgen_execute: overlay and out_dir go with capability; target_dir already names the target")
    if a.cluster and not gw.cp.engine(a.engine).uses_cluster:
        raise BadInput(f"targetgen_execute: cluster goes with an engine that runs on a cluster; {a.engine} does not")
    if a.strict and a.capability is None:
        raise BadInput("targetgen_execute: strict goes with capability (a target_dir's spec was checked when it was orchestrated)")
    if a.strict:
        _load_pair(a)  # its warnings as errors, before anything is written or recorded
    if a.capability is not None:
        result = ex.orchestrate(a.capability, a.overlay, out_dir=a.out_dir)
        target, tdir = result.target, Path(result.target_dir)
    else:
        target, tdir = targetgen_target(None, None, None, a.target_dir)
    rec = gw.cp.submit_targetgen(tdir, target, engine=a.engine, cluster=a.cluster)
    rid = rec.run_id

    def outcome(rec: Any) -> dict[str, Any]:
        run = _run_json(rec)
        if not rec.status.is_terminal():
            return {"target": target, "target_dir": str(tdir), "outcome": None, "run": run, "next_steps": run["next_steps"]}
        data = ex.status(tdir).to_json()
        data["run"] = run
        _with_steps(data)
        if rec.status.value != "succeeded":  # the executor did not reach a gate: say so and point at the logs
            data["next_steps"] = [step("runs_logs", run_id=rid, cursor=0), *data["next_steps"]]
        return data

    if not a.wait or rec.status.is_terminal():
        return outcome(rec)

    def check() -> dict[str, Any] | None:
        now = gw.cp.status(rid)
        return outcome(now) if now.status.is_terminal() else None

    return Later(check=check, expired=lambda: outcome(gw.cp.status(rid)), deadline=time.monotonic() + a.timeout)


@operation("targetgen_status", "targetgen", TargetDirInput, mutating=False)
def targetgen_status(gw: Gateway, a: TargetDirInput) -> dict[str, Any]:
    """Every task (state, stage, attempts, last validation), the open questions and what waits."""
    from merlin.targetgen import executor as ex

    return _with_steps(ex.status(a.target_dir).to_json())


@operation("targetgen_answer", "targetgen", AnswerInput, mutating=True)
def targetgen_answer(gw: Gateway, a: AnswerInput) -> dict[str, Any]:
    """Answer an open operator question (recorded durably under the target lock; the next execute applies it)."""
    from merlin.targetgen import executor as ex

    data = ex.answer(a.target_dir, a.question_id, a.choice, note=a.note).to_json()
    data["next_steps"] = [step("targetgen_execute", target_dir=data["target_dir"])]
    return data


@operation("targetgen_retry", "targetgen", RetryTaskInput, mutating=True)
def targetgen_retry(gw: Gateway, a: RetryTaskInput) -> dict[str, Any]:
    """Return a blocked or failed task (or the given task) to planned, recording why."""
    from merlin.targetgen import executor as ex

    data = ex.retry(a.target_dir, a.task, reason=a.reason).to_json()
    data["next_steps"] = [step("targetgen_execute", target_dir=data["target_dir"])]
    return data


# ------------------------------------------------------------------ review


def _contract(target_dir: str, task_id: str | None) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """(layout, task contract, task record) of the given task or the one awaiting a response."""
    from merlin.targetgen import state as st

    layout = st.open_target_dir(target_dir)
    bundle = st.load_bundle(layout)
    state = st.load_state(layout)
    contracts = {c["id"]: c for c in bundle["tasks"]}
    if task_id is None:
        task_id = next((c["id"] for c in bundle["tasks"] if state["tasks"][c["id"]]["state"] == st.AWAITING_RESPONSE), None)
        if task_id is None:
            raise NotFound(f"{layout.root}: no task is awaiting a response")
    if task_id not in contracts:
        raise BadInput(f"{layout.root}: no task {task_id!r} (tasks: {', '.join(contracts)})")
    return layout, contracts[task_id], state["tasks"][task_id]


@operation("review_prompt", "review", PromptInput, mutating=False)
def review_prompt(gw: Gateway, a: PromptInput) -> dict[str, Any]:
    """The prompt packet of a task awaiting a response, and where its response goes."""
    from merlin.ledger.paths import inside

    layout, c, rec = _contract(a.target_dir, a.task_id)
    if not c.get("prompt_file"):
        raise BadInput(f"{c['id']} has no prompt packet (it needs no proposal)")
    path = inside(layout.root, c["prompt_file"])
    if not path.is_file():
        raise NotFound(f"{path}: the prompt packet is not written yet; run targetgen_execute (it writes a missing one)")
    response = inside(layout.root, c["response_file"])
    return {
        "target_dir": str(layout.root),
        "task_id": c["id"],
        "state": rec["state"],
        "prompt_file": str(path),
        "prompt": path.read_text(encoding="utf-8", errors="replace"),
        "response_file": str(response),
        "response_exists": response.is_file(),
        "next_steps": [step("review_respond", target_dir=str(layout.root), task_id=c["id"])],
    }


@operation("review_respond", "review", RespondInput, mutating=True)
def review_respond(gw: Gateway, a: RespondInput) -> dict[str, Any]:
    """Submit the response to a task awaiting one: written atomically where the executor reads it; the next execute records the proposal and opens the branch gate."""
    from merlin.atomic import atomic_write_text
    from merlin.ledger.paths import inside
    from merlin.targetgen import state as st

    layout, c, rec = _contract(a.target_dir, a.task_id)
    if rec["state"] != st.AWAITING_RESPONSE:
        raise BadInput(f"{c['id']} is {rec['state']}, not awaiting_response (see targetgen_status)")
    path = inside(layout.root, c["response_file"])
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, a.text if a.text.endswith("\n") else a.text + "\n")
    st.event(layout, kind="response_written", task=c["id"], by=f"gateway (pid {os.getpid()})", bytes=len(a.text.encode()))
    return {
        "target_dir": str(layout.root),
        "task_id": c["id"],
        "response_file": str(path),
        "bytes": path.stat().st_size,
        "next_steps": [step("targetgen_execute", target_dir=str(layout.root))],
    }


@operation("review_questions", "review", QuestionsInput, mutating=False)
def review_questions(gw: Gateway, a: QuestionsInput) -> dict[str, Any]:
    """Open operator questions with their options and the recommended choice, and tasks awaiting a response (one target or all under the output root)."""
    from merlin.targetgen import executor as ex

    dirs = [Path(a.target_dir)] if a.target_dir else _target_dirs(ex.default_out_dir())
    questions, responses, targets = [], [], []
    for d in dirs:
        data = ex.status(d).to_json()
        targets.append({"target": data["target"], "target_dir": data["target_dir"], "outcome": data["outcome"], "current_task": data["current_task"], "current_stage": data["current_stage"]})
        for q in data["open_questions"]:
            questions.append({**q, "target": data["target"], "target_dir": data["target_dir"]})
        if data["awaiting_response"]:
            responses.append({**data["awaiting_response"], "target": data["target"], "target_dir": data["target_dir"]})
    steps = [step("targetgen_answer", target_dir=q["target_dir"], question_id=q["id"], choice=q["recommended_option"]) for q in questions]
    steps += [step("review_prompt", target_dir=r["target_dir"], task_id=r["task_id"]) for r in responses]
    return {"targets": targets, "questions": questions, "awaiting_response": responses, "next_steps": steps}


# -------------------------------------------------------------------- runs


@operation("runs_submit", "runs", SubmitInput, mutating=True)
def runs_submit(gw: Gateway, a: SubmitInput) -> dict[str, Any]:
    """Record a run and hand it to an engine; returns once the run is recorded (poll runs_status, tail runs_logs)."""
    rec = gw.cp.submit(
        a.command, target=a.target, workflow=a.workflow, engine=a.engine, target_dir=a.target_dir, num_cpus=a.num_cpus,
        num_gpus=a.num_gpus, resources=a.resources, env=a.env, cluster=a.cluster, source="gateway",
    )
    return _run_json(rec)


@operation("runs_list", "runs", ListRunsInput, mutating=False, stored_records=True)
def runs_list(gw: Gateway, a: ListRunsInput) -> dict[str, Any]:
    """Runs in the ledger, newest first: each run's summary (run_id, target, workflow, source, engine, status, outcome, message, waiting_on: what a waiting run waits on, created_at, updated_at, cluster name, number of attempts), or whole records as stored with full=true."""
    from merlin.gateway.summaries import summary
    from merlin.ledger.status import RunStatus

    bad = [x for x in a.status or [] if x not in {v.value for v in RunStatus}]
    if bad:
        raise BadInput(f"status {bad[0]!r}: expected one of {', '.join(v.value for v in RunStatus)}")
    if a.full or a.refresh or os.environ.get("MERLIN_RUN_INDEX", "1") == "0":
        entries: Any = gw.cp.list_entries(status=a.status, refresh=a.refresh) if a.refresh else gw.cp.ledger.list_entries(status=a.status)
        total = len(entries)
        rows = [d for d, _raw in (entries[: a.limit] if a.limit else entries)]
        if not a.full:
            rows = [summary(r) for r in rows]
    else:
        total, rows = gw.summaries.listing(a.status, a.limit)
    steps = [step("runs_status", run_id=r["run_id"]) for r in rows if r.get("status") in ("pending", "running")][:5]
    return {"runs": rows, "total": total, "next_steps": steps}


@operation("runs_status", "runs", RunStatusInput, mutating=False, stored_records=True)
def runs_status(gw: Gateway, a: RunStatusInput) -> dict[str, Any]:
    """One run's record, after asking its engine (refresh=false reads the ledger only)."""
    if not a.refresh:
        from merlin.ledger.paths import validate_run_id

        data = dict(gw.cp.ledger.read_raw(validate_run_id(a.run_id)))
        if not data.get("next_steps"):
            data["next_steps"] = _run_steps(data)
        return data
    return _run_json(gw.cp.status(a.run_id))


@operation("runs_why", "runs", RunInput, mutating=False)
def runs_why(gw: Gateway, a: RunInput) -> dict[str, Any]:
    """Why a run is waiting or blocked: every condition (leases, cluster, Ray, the scheduler, then the run), each with a stable code, evidence, when it was observed, a hint and the tool calls to make next (as `merlin ray jobs why`)."""
    rec = gw.cp.get(a.run_id)
    offered = {op.name for op in gw.operations()}

    def offer(s: dict[str, Any]) -> dict[str, Any]:  # without --allow-cluster-control: look, do not start
        return s if s["tool"] in offered else step("clusters_status", name=s["args"].get("name", "default"))

    def offered_steps(c: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for s in map(offer, _map_steps(c.get("next_steps"))):
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
    return _run_json(gw.cp.cancel(a.run_id))


@operation("runs_retry", "runs", RunRetryInput, mutating=True)
def runs_retry(gw: Gateway, a: RunRetryInput) -> dict[str, Any]:
    """A new attempt of a blocked, failed, cancelled or lost run; returns once it is recorded."""
    return _run_json(gw.cp.retry(a.run_id, env=a.env, cluster=a.cluster))


# --------------------------------------------------------------- artifacts


@operation("artifacts_list", "artifacts", RunInput, mutating=False)
def artifacts_list(gw: Gateway, a: RunInput) -> dict[str, Any]:
    """Files of the run's target directory, as indexed when it ended."""
    data = gw.cp.artifacts(a.run_id).model_dump(mode="json")
    data["next_steps"] = [step("artifacts_fetch", run_id=a.run_id, name=f["name"]) for f in data["files"][:5]]
    return data


@operation("artifacts_fetch", "artifacts", FetchInput, mutating=False)
def artifacts_fetch(gw: Gateway, a: FetchInput) -> dict[str, Any]:
    """One artifact's content (text, or base64 for binary) within max_bytes, its sha256 checked; larger ones come back as a path."""
    from merlin.ledger.artifacts import sha256_file
    from merlin.ledger.paths import inside

    idx = gw.cp.artifacts(a.run_id)
    entry = next((f for f in idx.files if f.name == a.name), None)
    src = inside(Path(idx.target_dir), a.name)
    if entry is None:
        raise NotFound(f"run {a.run_id} has no artifact {a.name!r} (see artifacts_list)")
    if not src.is_file():
        raise NotFound(f"artifact {a.name!r} of run {a.run_id} is indexed but {src} is gone")
    out: dict[str, Any] = {"run_id": a.run_id, "name": a.name, "size": entry.size, "sha256": entry.sha256, "path": str(src), "next_steps": []}
    if entry.size > a.max_bytes:
        return {**out, "encoding": None, "content": None, "truncated_reason": f"{entry.size} bytes > max_bytes {a.max_bytes}: read it at path"}
    data = src.read_bytes()
    if entry.sha256 and sha256_file(src) != entry.sha256:
        raise BadInput(f"artifact {a.name!r} of run {a.run_id} changed since it was indexed; not returned")
    try:
        return {**out, "encoding": "utf-8", "content": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {**out, "encoding": "base64", "content": base64.b64encode(data).decode("ascii")}


# ------------------------------------------------------------------- leases


def _lease_steps(lease: dict[str, Any]) -> list[dict[str, Any]]:
    lid = lease["lease_id"]
    if lease.get("state") == "waiting":
        return [step("leases_why", lease_id=lid), step("leases_queue")]
    if lease.get("state") == "granted":
        return [step("leases_renew", lease_id=lid), step("leases_release", lease_id=lid)]
    return []


@operation("leases_list", "leases", NoInput, mutating=False)
def leases_list(gw: Gateway, a: NoInput) -> dict[str, Any]:
    """Inventory items with their health, holder and waiting requests; then the queue."""
    book = gw.cp.leases
    return {"items": book.items(), "queue": book.queue(), "next_steps": []}


@operation("leases_reserve", "leases", ReserveInput, mutating=True)
def leases_reserve(gw: Gateway, a: ReserveInput) -> dict[str, Any]:
    """Request items (a gang if several bundles); returns the lease at once, granted or waiting in the queue. The server's user owns it; renew it before its TTL ends."""
    from merlin.leases.book import parse_bundle

    lease = dict(gw.cp.leases.reserve([parse_bundle(b, a.labels) for b in a.bundles], priority=a.priority, ttl=a.ttl, run_id=a.run_id))
    lease["next_steps"] = _lease_steps(lease)
    return lease


@operation("leases_renew", "leases", RenewInput, mutating=True)
def leases_renew(gw: Gateway, a: RenewInput) -> dict[str, Any]:
    """Push a lease's expiry out by its TTL (an error with exit code 3 if it already ended)."""
    lease = dict(gw.cp.leases.renew(a.lease_id, ttl=a.ttl))
    lease["next_steps"] = _lease_steps(lease)
    return lease


@operation("leases_release", "leases", ReleaseInput, mutating=True)
def leases_release(gw: Gateway, a: ReleaseInput) -> dict[str, Any]:
    """Give the items back (or withdraw a waiting request); the next waiter is granted at once."""
    lease = dict(gw.cp.leases.release(a.lease_id, force=a.force, reason=a.reason))
    lease["next_steps"] = []
    return lease


@operation("leases_queue", "leases", NoInput, mutating=False)
def leases_queue(gw: Gateway, a: NoInput) -> dict[str, Any]:
    """Waiting requests in the order they will be served (after a scheduling pass)."""
    rows = [dict(lease, position=n) for n, lease in enumerate(gw.cp.lease_queue(), 1)]
    return {"queue": rows, "next_steps": [step("leases_why", lease_id=r["lease_id"]) for r in rows[:5]]}


@operation("leases_why", "leases", LeaseInput, mutating=False)
def leases_why(gw: Gateway, a: LeaseInput) -> dict[str, Any]:
    """Every condition holding a waiting lease back, each with a code, evidence and the next step."""
    conds = [dict(c, next_steps=_map_steps(c.get("next_steps"))) for c in gw.cp.leases.why(a.lease_id)]
    return {"lease_id": a.lease_id, "conditions": conds, "next_steps": []}


# ----------------------------------------------------------------- clusters


@operation("clusters_list", "clusters", NoInput, mutating=False)
def clusters_list(gw: Gateway, a: NoInput) -> dict[str, Any]:
    """Clusters merlin knows, each observed now (state, message, processes)."""
    states = [s.to_json() for s in gw.cp.list_clusters()]
    return {"clusters": states, "next_steps": [step("clusters_status", name=s["name"]) for s in states][:5]}


@operation("clusters_status", "clusters", ClusterInput, mutating=False)
def clusters_status(gw: Gateway, a: ClusterInput) -> dict[str, Any]:
    """One cluster, observed now."""
    data = gw.cp.cluster_status(a.name).to_json()
    data["next_steps"] = []
    return data


@operation("clusters_start", "clusters", ClusterStartInput, mutating=True, requires="cluster_control")
def clusters_start(gw: Gateway, a: ClusterStartInput) -> dict[str, Any]:
    """Start a private local Ray head on loopback (or find it active), with the given ports and resources. Only with merlin serve --allow-cluster-control."""
    given = {k: getattr(a, k) for k in ("port", "dashboard_port", "num_cpus", "num_gpus") if getattr(a, k) is not None}
    rec, started = gw.cp.start_local_cluster(a.name, **given, **({"resources": dict(a.resources)} if a.resources else {}))
    return {"started": started, "cluster": rec.model_dump(mode="json"), "next_steps": [step("clusters_status", name=a.name)]}


@operation("clusters_stop", "clusters", ClusterStopInput, mutating=True, requires="cluster_control")
def clusters_stop(gw: Gateway, a: ClusterStopInput) -> dict[str, Any]:
    """Stop a cluster merlin started; refused (blocked, exit 3) while runs are active on it unless force. Only with merlin serve --allow-cluster-control."""
    from merlin.errors import Blocked

    try:
        rec = gw.cp.stop_cluster(a.name, force=a.force)
    except Blocked as exc:
        if exc.cause != "cluster_has_runs":
            raise
        # the forced stop is said in the text only: ending other runs stays a decision, never a next step
        raise Blocked(f"{exc.message}: call clusters_stop with force=true", exc.cause, next_steps=exc.next_steps) from None
    return {**rec.model_dump(mode="json"), "next_steps": []}
