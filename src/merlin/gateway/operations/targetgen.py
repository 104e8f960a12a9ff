"""TargetGen: validate, plan, explain, orchestrate, execute (a recorded run), status, answer, retry."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field

from merlin.errors import BadInput
from merlin.gateway.registry import Input, Later, Result, operation, step
from merlin.gateway.shared import DEFAULT_ENGINE, EngineChoice, Name, PathText, Run, TargetResult, run_json, with_steps

if TYPE_CHECKING:  # pragma: no cover
    from merlin.gateway.ops import Gateway

STRICT = "Treat the pair's warnings (e.g. an overlay that belongs to another target) as errors: a spec_error."


class ValidateResult(Result):
    valid: bool
    target: str
    warnings: list[str] = Field(default_factory=list)
    capability: str | None = None
    overlay: str | None = None


class PlanResult(Result):
    target: str
    target_dir: str
    warnings: list[str] = Field(default_factory=list)
    files: list[Any] = Field(default_factory=list)


class ExplainResult(Result):
    warnings: list[str] = Field(default_factory=list)
    support_plan: dict[str, Any]
    task_graph: Any
    verification_manifest: Any


class OrchestrateResult(Result):
    target: str
    target_dir: str
    reset: bool
    tasks: Any
    bundle: str
    state: str


class ExecuteResult(TargetResult):
    """The target's state once the executor stopped at a gate (outcome null: still running at the timeout, or wait=false), with its run."""

    outcome: str | None = Field(None, description="completed, awaiting_operator, awaiting_response, blocked; null while the run goes on.")
    run: Run


class AnswerResult(Result):
    target_dir: str
    question_id: str
    choice: str
    answer_id: str | None = None
    recorded: bool
    applied: bool
    answers_file: str


class RetryTaskResult(Result):
    target_dir: str
    retried: list[Any]
    reason: str | None = None


class SpecInput(Input):
    capability: PathText = Field(description="Path of the capability spec (capability.yaml), as the server sees it.")
    overlay: PathText | None = Field(None, description="Path of a deployment overlay YAML.")
    strict: bool = Field(False, description=STRICT)


class PlanInput(SpecInput):
    out_dir: PathText | None = Field(None, description="Output root (default: the server's $MERLIN_TARGETGEN_OUT or build/generated/targetgen).")


class OrchestrateInput(PlanInput):
    prompt_backend: Literal["manualllm", "none"] = Field("manualllm", description="manualllm writes a prompt packet per task that needs a proposal.")
    reset: bool = Field(False, description="Archive the existing state under history/ and start over.")


_NULL: dict[str, Any] = {"type": "null"}  # (or left out)
#: targetgen_execute's rules that span fields (the handler's checks, said in its schema): a target_dir, or
#: else a capability (with overlay, out_dir, strict); never both. As if/then/else, so a generated client
#: keeps one input type (a oneOf would split it in two).
EXECUTE_RULES: dict[str, Any] = {
    "if": {"required": ["target_dir"], "properties": {"target_dir": {"type": "string"}}},
    "then": {"properties": {"capability": _NULL, "overlay": _NULL, "out_dir": _NULL, "strict": {"const": False}}},
    "else": {"required": ["capability"], "properties": {"capability": {"type": "string"}}},
}


class ExecuteInput(Input):
    model_config = ConfigDict(json_schema_extra=EXECUTE_RULES)

    target_dir: PathText | None = Field(None, description="A target directory written by orchestrate (or give capability).")
    capability: PathText | None = Field(None, description="A capability spec; it is orchestrated first when needed.")
    overlay: PathText | None = Field(None, description="Deployment overlay, with capability.")
    out_dir: PathText | None = Field(None, description="Output root, with capability.")
    engine: EngineChoice = Field(DEFAULT_ENGINE, description="local: a supervised process here; ray: a Ray Job (any engine of merlin.engines.registry).")
    cluster: Name | None = Field(None, description="Ray cluster name (engine ray).")
    strict: bool = Field(False, description=STRICT + " With capability only: a target_dir was checked when it was orchestrated.")
    wait: bool = Field(True, description="Wait (in a worker thread, never the server loop) until the executor stops at a gate; false returns once the run is recorded.")
    timeout: float = Field(600.0, gt=0, le=3600, description="Seconds to wait with wait=true; the run goes on afterwards.")


class TargetDirInput(Input):
    target_dir: PathText = Field(description="A target directory written by orchestrate.")


class AnswerInput(TargetDirInput):
    question_id: str = Field(description="The open question's id.")
    choice: str = Field(description="One of the question's option ids.")
    note: str | None = Field(None, max_length=2000, description="A note recorded with the answer.")


class RetryTaskInput(TargetDirInput):
    task: str | None = Field(None, description="The task to retry (default: every blocked or failed task).")
    reason: str | None = Field(None, max_length=2000, description="Why (kept in the task's history).")


@operation("targetgen_validate", "targetgen", SpecInput, ValidateResult, mutating=False)
def targetgen_validate(gw: Gateway, a: SpecInput) -> dict[str, Any]:
    """Check a capability spec (and overlay); every problem is one FILE:LINE: field: problem line in the error; warnings: the pair's located mismatch warnings (as `targetgen validate`)."""
    data = gw.cp.targetgen_validate(a.capability, a.overlay, strict=a.strict).to_json()
    data["next_steps"] = [step("targetgen_plan", capability=a.capability, overlay=a.overlay)]
    return data


@operation("targetgen_plan", "targetgen", PlanInput, PlanResult, mutating=True)
def targetgen_plan(gw: Gateway, a: PlanInput) -> dict[str, Any]:
    """Write the plan (support plan, task graph, verification manifest) under OUT_DIR/<target>/; warnings as targetgen_validate."""
    data = gw.cp.targetgen_plan(a.capability, a.overlay, out_dir=a.out_dir, strict=a.strict).to_json()
    data["next_steps"] = [step("targetgen_explain", capability=a.capability, overlay=a.overlay), step("targetgen_orchestrate", capability=a.capability, overlay=a.overlay)]
    return data


@operation("targetgen_explain", "targetgen", SpecInput, ExplainResult, mutating=False)
def targetgen_explain(gw: Gateway, a: SpecInput) -> dict[str, Any]:
    """The plan with the reason behind every decision (writes nothing)."""
    data = gw.cp.targetgen_explain(a.capability, a.overlay, strict=a.strict).to_json()
    data["next_steps"] = [step("targetgen_orchestrate", capability=a.capability, overlay=a.overlay)]
    return data


@operation("targetgen_orchestrate", "targetgen", OrchestrateInput, OrchestrateResult, mutating=True)
def targetgen_orchestrate(gw: Gateway, a: OrchestrateInput) -> dict[str, Any]:
    """Write the execution bundle, briefs, prompt packets and state for a target (keeps existing progress unless reset)."""
    result = gw.cp.targetgen_orchestrate(a.capability, a.overlay, out_dir=a.out_dir, prompt_backend=a.prompt_backend, reset=a.reset, strict=a.strict)
    data = result.to_json()
    data["next_steps"] = [step("targetgen_execute", target_dir=str(result.target_dir))]
    return data


@operation("targetgen_execute", "targetgen", ExecuteInput, ExecuteResult, mutating=True)
def targetgen_execute(gw: Gateway, a: ExecuteInput) -> dict[str, Any] | Later:
    """Advance the target until its next gate, as a recorded run; returns the outcome (completed, awaiting_operator, awaiting_response, blocked) with the run, or the run alone with wait=false."""
    if (a.capability is None) == (a.target_dir is None):
        raise BadInput("targetgen_execute: give either capability or target_dir (exactly one)")
    if a.target_dir is not None and (a.overlay or a.out_dir):
        raise BadInput("targetgen_execute: overlay and out_dir go with capability; target_dir already names the target")
    if a.cluster and not gw.cp.engine(a.engine).uses_cluster:
        raise BadInput(f"targetgen_execute: cluster goes with an engine that runs on a cluster; {a.engine} does not")
    if a.strict and a.capability is None:
        raise BadInput("targetgen_execute: strict goes with capability (a target_dir's spec was checked when it was orchestrated)")
    rec = gw.cp.targetgen_execute(
        target_dir=a.target_dir, capability=a.capability, overlay=a.overlay, out_dir=a.out_dir, engine=a.engine, cluster=a.cluster, strict=a.strict
    )
    rid, target, tdir = rec.run_id, rec.target, rec.target_dir

    def outcome(rec: Any) -> dict[str, Any]:
        run = run_json(rec)
        if not rec.status.is_terminal():
            return {"target": target, "target_dir": tdir, "outcome": None, "run": run, "next_steps": run["next_steps"]}
        data = gw.cp.targetgen_status(tdir).to_json()
        data["run"] = run
        with_steps(data)
        if rec.status.value != "succeeded":  # the executor did not reach a gate: say so and point at the logs
            data["next_steps"] = [step("runs_logs", run_id=rid, cursor=0), *data["next_steps"]]
        return data

    if not a.wait or rec.status.is_terminal():
        return outcome(rec)

    def check() -> dict[str, Any] | None:
        now = gw.cp.status(rid)
        later.note = f"targetgen_execute {target}: run {rid} {now.status.value}" + (f": {now.message}" if now.message else "")
        return outcome(now) if now.status.is_terminal() else None

    later = Later(check=check, expired=lambda: outcome(gw.cp.status(rid)), deadline=time.monotonic() + a.timeout)
    later.note = f"targetgen_execute {target}: run {rid} recorded ({rec.status.value})"
    return later


@operation("targetgen_status", "targetgen", TargetDirInput, TargetResult, mutating=False)
def targetgen_status(gw: Gateway, a: TargetDirInput) -> dict[str, Any]:
    """Every task (state, stage, attempts, last validation), the open questions and what waits."""
    return with_steps(gw.cp.targetgen_status(a.target_dir).to_json())


@operation("targetgen_answer", "targetgen", AnswerInput, AnswerResult, mutating=True)
def targetgen_answer(gw: Gateway, a: AnswerInput) -> dict[str, Any]:
    """Answer an open operator question (recorded durably under the target lock; the next execute applies it)."""
    data = gw.cp.targetgen_answer(a.target_dir, a.question_id, a.choice, note=a.note).to_json()
    data["next_steps"] = [step("targetgen_execute", target_dir=data["target_dir"])]
    return data


@operation("targetgen_retry", "targetgen", RetryTaskInput, RetryTaskResult, mutating=True)
def targetgen_retry(gw: Gateway, a: RetryTaskInput) -> dict[str, Any]:
    """Return a blocked or failed task (or the given task) to planned, recording why."""
    data = gw.cp.targetgen_retry(a.target_dir, a.task, reason=a.reason).to_json()
    data["next_steps"] = [step("targetgen_execute", target_dir=data["target_dir"])]
    return data
