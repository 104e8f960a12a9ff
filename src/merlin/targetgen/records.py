"""Typed descriptions of TargetGen's record files, and their published JSON Schemas.

The planner and the executor build these files as plain dicts (so the plan
stays byte-stable and cheap to build); the models below describe them, and
``python -m merlin.targetgen.records docs/records/targetgen`` writes one JSON
Schema per file. A test checks that the committed schemas equal what these
models produce and that real outputs for every example target validate.

| schema | file |
|---|---|
| support_plan | ``support_plan.json`` |
| task_graph | ``task_graph.json`` |
| verification_manifest | ``verification_manifest.json`` |
| execution_bundle | ``execution_bundle.json`` |
| execution_state | ``execution_state.json`` |
| task_state | ``task_states/<task>.json`` |
| operator_request | ``operator_requests/<question>.json`` |
| answer | one line of ``answers.jsonl`` |

Every file carries ``schema_version`` (1). Files written before
``task_states/*.json`` and answer lines carried it are still read: the field
is optional there.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from merlin.targetgen.vocab import Outcome as _Outcome
from merlin.targetgen.vocab import TaskState as _TaskState

SCHEMA_VERSION = 1
# The values come from merlin.targetgen.vocab (the one definition); Literals keep the JSON Schemas plain enums.
if TYPE_CHECKING:  # mypy cannot read a Literal built at run time; pydantic can
    TaskStateName = str
    Outcome = str
else:
    TaskStateName = Literal.__getitem__(tuple(s.value for s in _TaskState))
    Outcome = Literal.__getitem__(tuple(o.value for o in _Outcome))


class _Closed(BaseModel):
    """Every field is known: anything else is an error."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


class _Open(BaseModel):
    """The named fields are checked; others (runtime details) are allowed."""

    model_config = ConfigDict(extra="allow", defer_build=True)


# --- planner outputs ---------------------------------------------------------------


class PlanInput(_Closed):
    file: str
    sha256: str


class PlanInputs(_Closed):
    capability: PlanInput
    overlay: PlanInput | None = None


class PlanAccess(_Closed):
    model: str
    availability_class: str
    sdk_requirements: list[str]
    credential_requirements: list[str]
    verification_gates: list[str]


class PatchSurface(_Closed):
    surface: str
    why: str
    edit_mode: str
    reasons: list[str]


class PlanReasons(_Closed):
    integration_styles: dict[str, list[str]]
    primary_integration: list[str]
    target_families: dict[str, list[str]]
    required_layers: dict[str, list[str]]
    patch_surfaces: dict[str, list[str]]
    verification: dict[str, list[str]]


class SupportPlan(_Closed):
    """``support_plan.json``: what the target needs and why."""

    schema_version: Literal[1]
    target: str
    display_name: str
    vendor: str | None = None
    maturity: str | None = None
    inputs: PlanInputs
    deployment_profile: str | None
    deployment_mode: str | None
    integration_styles: list[str]
    primary_integration: str
    target_families: list[str]
    required_layers: list[str]
    patch_surfaces: list[PatchSurface]
    access: PlanAccess
    derived_artifacts: list[str]
    task_ids: list[str]
    reasons: PlanReasons


class Evidence(_Closed):
    kind: str
    value: str
    reason: str


class ValidationCommand(_Closed):
    id: str
    argv: list[str]
    description: str
    timeout_s: float | None = None


class CredentialRequirement(_Closed):
    name: str
    env: str


class TaskPreflight(_Closed):
    sdk_requirements: list[str]
    device_gate: bool


class TaskContract(_Closed):
    """One task of ``task_graph.json``: its dependencies and its contract."""

    id: str
    title: str
    phase: str
    family: str
    depends_on: list[str]
    evidence: list[Evidence]
    actions: list[str]
    acceptance_checks: list[str]
    write_scope: list[str]
    repo_root: str
    execution_adapter: str
    mutation_policy: str
    needs_proposal: bool
    artifacts_in: list[str]
    artifacts_out: list[str]
    validation_commands: list[ValidationCommand]
    credential_requirements: list[CredentialRequirement]
    preflight: TaskPreflight
    handoff_contract: list[str]


class TaskGraph(_Closed):
    """``task_graph.json``."""

    schema_version: Literal[1]
    target: str
    tasks: list[TaskContract]


class Stage(_Closed):
    index: int
    name: str
    status: str
    rationale: str


class VerificationManifest(_Closed):
    """``verification_manifest.json``: the verification ladder."""

    schema_version: Literal[1]
    target: str
    maturity: str | None = None
    ready_stages: int
    stages: list[Stage]


# --- execution bundle --------------------------------------------------------------


class BundleInput(_Closed):
    path: str
    sha256: str


class BundleInputs(_Closed):
    capability: BundleInput
    overlay: BundleInput | None = None


class BundlePreflight(_Closed):
    probes: dict[str, str]
    device_probe: str | None
    timeout_s: float
    validation_timeout_s: float


class BundleResource(_Closed):
    """One bundle of lab hardware the deployment holds while it executes (the overlay's ``resources:``)."""

    pool: str
    count: int
    labels: dict[str, str]


class PromptSource(_Closed):
    file: str
    layer: str
    section: str
    merge: Literal["append", "prepend", "replace"]


class BundleTask(TaskContract):
    """A task contract with its place in the bundle and its files."""

    index: int
    brief_file: str
    prompt_file: str | None
    response_file: str | None
    prompt_sha256: str | None
    prompt_sources: list[PromptSource]


class ExecutionBundle(_Closed):
    """``execution_bundle.json``: every task's contract and files, the inputs, the prompt backend."""

    schema_version: Literal[1]
    target: str
    deployment: str | None
    prompt_backend: Literal["none", "manualllm"]
    inputs: BundleInputs
    preflight: BundlePreflight
    tasks: list[BundleTask]
    resources: list[BundleResource] | None = Field(None, description="Only when the overlay declares resources: execute leases them first (docs/leases.md).")


# --- execution state ---------------------------------------------------------------


class CommandResult(_Open):
    """The result of one probe or validation command (see probes.CommandResult.to_json)."""

    command: str
    exit_code: int | None
    duration_s: float
    timed_out: bool
    output_excerpt: str
    error: str | None = None


class ProbeRecord(CommandResult):
    sdk: str
    passed: bool
    at: str


class CredentialCheck(_Open):
    env: str
    status: Literal["present", "missing"]
    checked_at: str | None = None
    confirmed_by_operator: bool | None = None
    confirmed_in: str | None = None


class DeviceCheck(_Open):
    status: Literal["passed", "failed", "no_probe", "confirmed_by_operator"]
    at: str | None = None


class Preflight(_Closed):
    probes: dict[str, ProbeRecord]
    credentials: dict[str, CredentialCheck]
    device: DeviceCheck | None


class Waiver(_Open):
    reason: str
    question: str
    task: str
    at: str


class ValidationRun(CommandResult):
    id: str
    description: str | None = None
    status: Literal["passed", "failed", "skipped"]
    attempt: int
    at: str
    log: str


class LastValidation(_Closed):
    id: str
    status: Literal["passed", "failed", "skipped"]
    exit_code: int | None


class Proposal(_Open):
    source: Literal["response_file", "none"]
    summary: str
    recorded_at: str
    response_file: str | None = None
    snapshot: str | None = None
    sha256: str | None = None
    bytes: int | None = None


class Running(_Open):
    kind: str
    id: str
    pid: int
    started_at: str


class Transition(_Open):
    at: str
    to: TaskStateName
    stage: str | None
    why: str
    from_: TaskStateName | None = Field(None, alias="from")


class LastRetry(_Closed):
    at: str
    from_state: TaskStateName
    reason: str


class TaskRecord(_Closed):
    """One task's progress inside ``execution_state.json``."""

    task_id: str
    state: TaskStateName
    stage: str | None
    attempts: int
    attempt_started: bool
    questions_opened: int = 0
    open_question: str | None
    blocked_reason: str | None
    preflight: Preflight
    waivers: dict[str, Waiver]
    validations: dict[str, ValidationRun]
    last_validation: LastValidation | None
    proposal: Proposal | None
    running: Running | None
    history: list[Transition]
    retries: int | None = None
    last_retry: LastRetry | None = None


class TaskState(TaskRecord):
    """``task_states/<task>.json``: one task's record with its titles and files (a view of the state)."""

    schema_version: Literal[1] | None = Field(None, description="absent in files written before it was added")
    target: str
    title: str | None
    brief_file: str | None
    prompt_file: str | None
    response_file: str | None


class Option(_Closed):
    id: str
    label: str
    description: str


class Pause(_Open):
    at: str
    answer_id: str
    answered_at: str | None = None


class RequestAnswer(_Open):
    choice: str | None
    answer_id: str | None = None
    answered_at: str | None = None
    note: str | None = None
    superseded_by: str | None = None
    reason: str | None = None


class OperatorRequest(_Closed):
    """``operator_requests/<question>.json`` and each entry of the state's ``requests``."""

    id: str
    task_id: str
    kind: str
    key: str
    question: str
    options: list[Option]
    recommended_option: str
    status: Literal["open", "resolved", "superseded"]
    opened_at: str
    resolved_at: str | None
    answer: RequestAnswer | None
    pauses: list[Pause]
    facts: dict[str, Any]


class Answer(_Closed):
    """One line of ``answers.jsonl``, appended by ``merlin targetgen answer``."""

    schema_version: Literal[1] | None = Field(None, description="absent in lines written before it was added")
    answer_id: str
    question_id: str
    choice: str
    at: str
    by: str
    note: str | None = None


class IgnoredAnswer(Answer):
    ignored_because: str
    at_ignore: str


class TargetAnswer(_Closed):
    kind: str
    reason: str
    question: str
    task: str
    at: str


class LastExecute(_Closed):
    pid: int
    started_at: str
    finished_at: str | None
    outcome: str | None
    reason: str | None = None  # why an interrupted execute ended (Ctrl-C)


class ExecutionState(_Closed):
    """``execution_state.json``: the single source of truth for a target's progress."""

    schema_version: Literal[1]
    target: str
    created_at: str
    updated_at: str
    outcome: Outcome
    current_task: str | None
    current_stage: str | None
    open_question_id: str | None
    task_order: list[str]
    tasks: dict[str, TaskRecord]
    requests: dict[str, OperatorRequest]
    consumed_answers: list[str]
    target_answers: dict[str, TargetAnswer]
    ignored_answers: list[IgnoredAnswer]
    last_execute: LastExecute | None
    executes: int
    interrupted_executes: int = Field(0, ge=0, description="executes that ended without finishing (a kill, a crash); written only once one has")


RECORD_MODELS: dict[str, type[BaseModel]] = {
    "support_plan": SupportPlan,
    "task_graph": TaskGraph,
    "verification_manifest": VerificationManifest,
    "execution_bundle": ExecutionBundle,
    "execution_state": ExecutionState,
    "task_state": TaskState,
    "operator_request": OperatorRequest,
    "answer": Answer,
}


def schemas() -> dict[str, dict[str, Any]]:
    from merlin.spec.schema import published

    return {f"{stem}.schema.json": published(model, f"merlin/records/targetgen/{stem}.schema.json", mode="serialization", by_alias=True) for stem, model in RECORD_MODELS.items()}


def write(directory: Path) -> list[Path]:
    from merlin.atomic import dump_json, write_if_changed

    directory.mkdir(parents=True, exist_ok=True)
    return [directory / n for n, s in schemas().items() if write_if_changed(directory / n, dump_json(s).encode("utf-8"))]


if __name__ == "__main__":  # pragma: no cover
    for p in write(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/records/targetgen")):
        print(f"wrote {p}")
