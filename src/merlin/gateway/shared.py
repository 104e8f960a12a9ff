"""What several operation groups share: the engine choice of an input, and the next steps of a
run or a target as tool calls."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from merlin.controlplane import (
    ARTIFACT_NAME_PATTERN,
    DEFAULT_ENGINE,
    DURATION_PATTERN,
    LEASE_ID_PATTERN,
    NAME_PATTERN,
    POSITIVE_DURATION_PATTERN,
    RUN_ID_PATTERN,
    engine_names,
    run_statuses,
)
from merlin.gateway.registry import NextStep, Result, step

__all__ = ["ArtifactName", "DEFAULT_ENGINE", "Duration", "EngineChoice", "LeaseId", "Name", "PathText", "PositiveDuration", "Run", "RunId", "RunResult", "RunStatusChoice", "TargetResult", "run_json", "run_steps", "target_steps", "with_steps"]

if TYPE_CHECKING:
    EngineChoice = str
    RunStatusChoice = str
else:  # the engines of the facade's registry and the ledger's statuses, as JSON Schema enums
    EngineChoice = Literal.__getitem__(tuple(engine_names()))
    RunStatusChoice = Literal.__getitem__(tuple(run_statuses()))

# The inputs' rules, from the checks the server applies (so the schema refuses what the server refuses):
#: a run id (merlin.ledger.paths)
RunId = Annotated[str, Field(pattern=RUN_ID_PATTERN)]
#: a lease id (merlin.ledger.paths)
LeaseId = Annotated[str, Field(pattern=LEASE_ID_PATTERN)]
#: a target, workflow or cluster name (merlin.ledger.paths.validate_name)
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
#: a duration in the one grammar (merlin.durations)
Duration = Annotated[str, Field(pattern=DURATION_PATTERN)]
#: a duration above zero (a TTL)
PositiveDuration = Annotated[str, Field(pattern=POSITIVE_DURATION_PATTERN)]
#: a path: "" would name the server's working directory, never what a caller means, and no file name holds NUL
PathText = Annotated[str, Field(pattern=r"^[^\x00]+$")]
#: an artifact name as listed: relative, never climbing out with '..' (merlin.ledger.paths.check_relative)
ArtifactName = Annotated[str, Field(pattern=ARTIFACT_NAME_PATTERN)]


class Run(BaseModel):
    """A run record as the ledger stores it (every field of `merlin ray jobs status --json`)."""

    model_config = ConfigDict(extra="allow")
    run_id: str
    target: str
    workflow: str
    source: str
    engine: str
    status: RunStatusChoice
    outcome: str | None = None
    target_dir: str
    message: str = ""
    attempts: list[dict[str, Any]] = Field(default_factory=list)
    next_steps: list[dict[str, Any]] = Field(default_factory=list, description="As tool calls ({tool, args}) where a tool performs them.")


class RunResult(Run):
    """One run record, with the tool calls to make next."""

    next_steps: list[NextStep] = Field(description="The tool calls to make next.")  # type: ignore[assignment]


class TargetResult(Result):
    """A target's execution state: every task, the open questions and what waits (`targetgen status --json`)."""

    target: str
    target_dir: str
    outcome: str | None = Field(description="completed, awaiting_operator, awaiting_response, blocked or ready.")
    tasks: list[dict[str, Any]] = Field(default_factory=list)
    open_question: dict[str, Any] | None = None
    open_questions: list[dict[str, Any]] = Field(default_factory=list)
    awaiting_response: dict[str, Any] | None = None
    blocked: list[dict[str, Any]] = Field(default_factory=list)


def run_json(rec: Any) -> dict[str, Any]:
    """A run record as a response: its JSON, with tool calls as next steps when it names none."""
    data = rec.model_dump(mode="json")
    if not data.get("next_steps"):
        data["next_steps"] = run_steps(data)
    return data


def run_steps(data: dict[str, Any]) -> list[dict[str, Any]]:
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


def target_steps(data: dict[str, Any]) -> list[dict[str, Any]]:
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


def with_steps(data: dict[str, Any]) -> dict[str, Any]:
    data["next_steps"] = target_steps(data)
    return data
