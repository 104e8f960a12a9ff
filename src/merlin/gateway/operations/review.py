"""Review: the prompt packet of a task awaiting a response, the response, and what waits on a person."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from merlin.gateway.operations.targetgen import TargetDirInput
from merlin.gateway.registry import Input, Result, operation, step
from merlin.gateway.shared import PathText

if TYPE_CHECKING:  # pragma: no cover
    from merlin.gateway.ops import Gateway


class PromptResult(Result):
    target_dir: str
    task_id: str
    state: str
    prompt_file: str
    prompt: str
    response_file: str
    response_exists: bool


class RespondResult(Result):
    target_dir: str
    task_id: str
    response_file: str
    bytes: int = Field(ge=0)


class Question(BaseModel):
    """An open operator question."""

    model_config = ConfigDict(extra="allow")
    id: str
    target_dir: str
    options: list[dict[str, Any]]
    recommended_option: str | None = None


class QuestionsResult(Result):
    targets: list[Any]
    questions: list[Question]
    awaiting_response: list[dict[str, Any]]


class PromptInput(TargetDirInput):
    task_id: str | None = Field(None, description="The task (default: the one awaiting a response).")


class RespondInput(TargetDirInput):
    task_id: str = Field(description="The task awaiting a response.")
    text: str = Field(min_length=1, max_length=512 * 1024, description="The response (a proposal in Markdown).")


class QuestionsInput(Input):
    target_dir: PathText | None = Field(None, description="One target directory (default: every target under the output root).")


@operation("review_prompt", "review", PromptInput, PromptResult, mutating=False)
def review_prompt(gw: Gateway, a: PromptInput) -> dict[str, Any]:
    """The prompt packet of a task awaiting a response, and where its response goes."""
    got = gw.cp.targetgen_prompt(a.target_dir, a.task_id)
    return {**got.to_json(), "next_steps": [step("review_respond", target_dir=str(got.target_dir), task_id=got.task_id)]}


@operation("review_respond", "review", RespondInput, RespondResult, mutating=True)
def review_respond(gw: Gateway, a: RespondInput) -> dict[str, Any]:
    """Submit the response to a task awaiting one: written atomically where the executor reads it; the next execute records the proposal and opens the branch gate."""
    done = gw.cp.targetgen_respond(a.target_dir, a.task_id, a.text, by=f"gateway (pid {os.getpid()})")
    return {**done.to_json(), "next_steps": [step("targetgen_execute", target_dir=str(done.target_dir))]}


@operation("review_questions", "review", QuestionsInput, QuestionsResult, mutating=False)
def review_questions(gw: Gateway, a: QuestionsInput) -> dict[str, Any]:
    """Open operator questions with their options and the recommended choice, and tasks awaiting a response (one target or all under the output root)."""
    queue = gw.cp.targetgen_review(a.target_dir)
    steps = [step("targetgen_answer", target_dir=q["target_dir"], question_id=q["id"], choice=q["recommended_option"]) for q in queue.questions]
    steps += [step("review_prompt", target_dir=r["target_dir"], task_id=r["task_id"]) for r in queue.awaiting_response]
    return {**queue.to_json(), "next_steps": steps}
