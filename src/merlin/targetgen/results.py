"""What the TargetGen executor answers: results of execute/status, answer and retry, and
the summary of a target's state they are built from (``summarize``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from merlin.errors import ExitCode
from merlin.targetgen import state as st
from merlin.targetgen.bundle import OrchestrateResult
from merlin.targetgen.layout import TargetLayout
from merlin.targetgen.operator import public_request
from merlin.targetgen.vocab import OUTCOME_EXIT

#: outcome -> exit code (plain-string keys: results carry strings)
EXIT_CODES = {o.value: code for o, code in OUTCOME_EXIT.items()}


@dataclass
class ExecuteResult:
    """Where a target stands: returned by execute (with its steps) and status."""

    target: str
    target_dir: Path
    outcome: str
    current_task: str | None
    current_stage: str | None
    open_question: dict[str, Any] | None
    awaiting_response: dict[str, Any] | None
    blocked: list[dict[str, Any]]
    tasks: list[dict[str, Any]]
    open_questions: list[dict[str, Any]]
    pending_answers: list[dict[str, Any]]
    steps: list[str] = field(default_factory=list)
    orchestrated: OrchestrateResult | None = None
    lock_holder: str | None = None
    last_execute: dict[str, Any] | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.outcome, ExitCode.OK)

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "target_dir": str(self.target_dir),
            "outcome": self.outcome,
            "exit_code": self.exit_code,
            "current_task": self.current_task,
            "current_stage": self.current_stage,
            "open_question": self.open_question,
            "awaiting_response": self.awaiting_response,
            "blocked": self.blocked,
            "tasks": self.tasks,
            "open_questions": self.open_questions,
            "pending_answers": self.pending_answers,
            "steps": self.steps,
            "orchestrated": self.orchestrated.to_json() if self.orchestrated else None,
            "lock_holder": self.lock_holder,
            "last_execute": self.last_execute,
        }


@dataclass
class AnswerResult:
    target_dir: Path
    question_id: str
    choice: str
    answer_id: str
    lock_holder: str | None
    replaces: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "target_dir": str(self.target_dir),
            "question_id": self.question_id,
            "choice": self.choice,
            "answer_id": self.answer_id,
            "recorded": True,
            "applied": False,
            "lock_holder": self.lock_holder,
            "replaces_pending_choice": self.replaces,
            "answers_file": str(TargetLayout(self.target_dir).answers),
        }


@dataclass
class RetryResult:
    target_dir: Path
    retried: list[dict[str, Any]]
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"target_dir": str(self.target_dir), "retried": self.retried, "reason": self.reason}


# --- summaries ----------------------------------------------------------------


def _skipped(rec: dict[str, Any]) -> list[dict[str, str]]:
    """What this task did not validate, with the reason (honest records)."""
    out = []
    for key, waiver in sorted(rec.get("waivers", {}).items()):
        out.append({"what": key, "reason": waiver["reason"]})
    for check_id, v in rec.get("validations", {}).items():
        if v.get("status") == "skipped":
            out.append({"what": f"validation:{check_id}", "reason": v.get("skip_reason", "")})
    return out


def _where(bundle: dict[str, Any], state: dict[str, Any]) -> tuple[str, str | None]:
    """(outcome, current task) computed from the state."""
    tasks = state["tasks"]
    for contract in bundle["tasks"]:
        rec = tasks[contract["id"]]
        if rec["state"] in (st.COMPLETED, st.BLOCKED):
            continue
        if not all(tasks[d]["state"] == st.COMPLETED for d in contract["depends_on"]):
            continue
        if rec["state"] in st.QUESTION_STATES:
            return "awaiting_operator", contract["id"]
        if rec["state"] == st.AWAITING_RESPONSE:
            return "awaiting_response", contract["id"]
        return st.READY, contract["id"]
    if all(r["state"] == st.COMPLETED for r in tasks.values()):
        return "completed", None
    first_blocked = next((c["id"] for c in bundle["tasks"] if tasks[c["id"]]["state"] == st.BLOCKED), None)
    return "blocked", first_blocked


def summarize(layout: st.Layout, bundle: dict[str, Any], state: dict[str, Any], **extra: Any) -> ExecuteResult:
    outcome, current = _where(bundle, state)
    tasks = state["tasks"]
    contracts = {t["id"]: t for t in bundle["tasks"]}
    requests = state.get("requests", {})
    open_q = None
    awaiting = None
    stage = tasks[current]["stage"] if current else None
    if outcome == "awaiting_operator" and current:
        open_q = public_request(requests.get(tasks[current]["open_question"] or ""))
    if outcome == "awaiting_response" and current:
        c = contracts[current]
        awaiting = {
            "task_id": current,
            "prompt_file": str(layout.root / c["prompt_file"]),
            "response_file": str(layout.root / c["response_file"]),
        }
    blocked = []
    for c in bundle["tasks"]:
        rec = tasks[c["id"]]
        if rec["state"] == st.BLOCKED:
            blocked.append({"task_id": c["id"], "reason": rec.get("blocked_reason")})
    task_rows = []
    for c in bundle["tasks"]:
        rec = tasks[c["id"]]
        waiting_on = [d for d in c["depends_on"] if tasks[d]["state"] != st.COMPLETED]
        task_rows.append(
            {
                "id": c["id"],
                "title": c["title"],
                "state": rec["state"],
                "stage": rec["stage"],
                "attempts": rec["attempts"],
                "last_validation": rec.get("last_validation"),
                "open_question": rec.get("open_question"),
                "blocked_reason": rec.get("blocked_reason"),
                "waiting_on": waiting_on,
                "skipped": _skipped(rec),
                "proposal": rec.get("proposal"),
            }
        )
    open_questions = [public_request(q) for q in requests.values() if q["status"] == "open"]
    pending = [
        {k: a.get(k) for k in ("answer_id", "question_id", "choice", "at")} for a in st.pending_answers(layout, state)
    ]
    return ExecuteResult(
        target=state["target"],
        target_dir=layout.root,
        outcome=outcome,
        current_task=current,
        current_stage=stage,
        open_question=open_q,
        awaiting_response=awaiting,
        blocked=blocked,
        tasks=task_rows,
        open_questions=[q for q in open_questions if q],
        pending_answers=pending,
        last_execute=state.get("last_execute"),
        **extra,
    )
