"""What several operation groups share: the engine choice of an input, and the next steps of a
run or a target as tool calls."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from merlin.controlplane import DEFAULT_ENGINE, engine_names
from merlin.gateway.registry import step

__all__ = ["DEFAULT_ENGINE", "EngineChoice", "run_json", "run_steps", "target_steps", "with_steps"]

if TYPE_CHECKING:
    EngineChoice = str
else:  # the engines of the facade's registry, as a JSON Schema enum for the tools
    EngineChoice = Literal.__getitem__(tuple(engine_names()))


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
