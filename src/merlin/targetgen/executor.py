"""The TargetGen executor: a resumable state machine, one gate at a time.

Pure Python API (the CLI only parses arguments and renders):

- ``orchestrate(capability, overlay=None, out_dir=None, prompt_backend=..., reset=False)``
- ``execute(target_dir=None, capability=None, overlay=None, out_dir=None) -> ExecuteResult``
- ``answer(target_dir, question_id, choice)``
- ``retry(target_dir, task_id=None, reason=None)``
- ``status(target_dir) -> ExecuteResult``

A task goes ``planned`` -> preflight (SDK probes, credentials, device gate)
-> ``preflight_ready`` -> validation commands -> [``awaiting_response`` ->
``proposal_ready`` -> branch gate] -> ``completed``. A failed probe stops at
``preflight_failed``; a missing credential, a closed device gate, a failed
validation or the branch gate stop at ``awaiting_operator``; each opens an
operator request. ``execute`` stops at the first gate with one outcome:
completed (exit 0), awaiting_operator / awaiting_response (exit 10) or
blocked (exit 3). Everything is saved after every transition, atomically,
under the target lock, so a killed execute loses nothing but the step it
was running, which the next execute runs again.
"""

from __future__ import annotations

import os
import shlex
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from merlin.atomic import append_line, atomic_write_text
from merlin.errors import BadInput, ExitCode, LockBusy
from merlin.targetgen import state as st
from merlin.targetgen.bundle import (
    DEFAULT_PROMPT_BACKEND,
    OrchestrateResult,
    fill_argv,
    new_task_record,
    orchestrate_locked,
    sha256_file,
)
from merlin.targetgen.layout import TargetLayout
from merlin.targetgen.operator import options_for, public_request
from merlin.targetgen.vocab import OUTCOME_EXIT, can_task_transition

Progress = Callable[[str], None]

#: outcome -> exit code (plain-string keys: results carry strings)
EXIT_CODES = {o.value: code for o, code in OUTCOME_EXIT.items()}


def default_lock_wait() -> float:
    """Seconds a command waits for the target lock ($MERLIN_TARGETGEN_LOCK_WAIT, default 5)."""
    raw = os.environ.get("MERLIN_TARGETGEN_LOCK_WAIT")
    try:
        return max(0.0, float(raw)) if raw else 5.0
    except ValueError:
        raise BadInput(f"MERLIN_TARGETGEN_LOCK_WAIT={raw!r} is not a number of seconds") from None


def default_out_dir() -> Path:
    return Path(os.environ.get("MERLIN_TARGETGEN_OUT") or "build/generated/targetgen")


# --- results ------------------------------------------------------------------


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


# --- the state machine --------------------------------------------------------


class _Run:
    """One execute: advances tasks until a gate, saving after every transition."""

    def __init__(self, layout: st.Layout, bundle: dict[str, Any], state: dict[str, Any], progress: Progress | None) -> None:
        self.layout = layout
        self.bundle = bundle
        self.state = state
        self.progress = progress
        self.contracts = {t["id"]: t for t in bundle["tasks"]}
        self.steps: list[str] = []
        self.probe_cache: dict[str, dict[str, Any]] = {}
        inputs = bundle["inputs"]
        self.capability = inputs["capability"]["path"]
        self.overlay = inputs["overlay"]["path"] if inputs.get("overlay") else None

    # -- bookkeeping

    def save(self) -> None:
        st.save_state(self.layout, self.state, self.bundle)

    def note(self, text: str) -> None:
        self.steps.append(text)
        if self.progress:
            self.progress(text)

    def transition(self, rec: dict[str, Any], to: str, stage: str | None, why: str) -> None:
        frm = rec["state"]
        if not can_task_transition(frm, to):  # a bug in the executor, never a user's doing
            raise AssertionError(f"{rec['task_id']}: illegal task state change {frm} -> {to} (see merlin.targetgen.vocab)")
        to = str(to)
        rec["state"] = to
        rec["stage"] = stage
        rec["history"].append({"at": st.now(), "from": frm, "to": to, "stage": stage, "why": why})
        st.event(self.layout, kind="transition", task=rec["task_id"], from_state=frm, to_state=to, stage=stage, why=why)
        self.note(f"{rec['task_id']}: {frm} -> {to}: {why}")
        self.save()

    def begin(self) -> None:
        prev = self.state.get("last_execute")
        if prev and not prev.get("finished_at"):
            self.state["interrupted_executes"] = self.state.get("interrupted_executes", 0) + 1
            self.note(f"the previous execute (pid {prev.get('pid')}, started {prev.get('started_at')}) did not finish; resuming from its saved state")
        for rec in self.state["tasks"].values():
            running = rec.get("running")
            if running:
                rec["running"] = None
                rec["history"].append(
                    {
                        "at": st.now(),
                        "from": rec["state"],
                        "to": rec["state"],
                        "stage": rec["stage"],
                        "why": f"interrupted: {running['kind']} {running['id']} started {running['started_at']} by pid "
                        f"{running['pid']} never finished; it runs again",
                    }
                )
                st.event(self.layout, kind="interrupted", task=rec["task_id"], running=running)
                self.note(f"{rec['task_id']}: {running['kind']} {running['id']} was interrupted; running it again")
        self.state["executes"] = self.state.get("executes", 0) + 1
        self.state["last_execute"] = {"pid": os.getpid(), "started_at": st.now(), "finished_at": None, "outcome": None}
        self.save()

    def finish(self, outcome: str) -> None:
        where, current = _where(self.bundle, self.state)
        rec = self.state["tasks"].get(current) if current else None
        self.state["outcome"] = outcome
        self.state["current_task"] = current
        self.state["current_stage"] = rec["stage"] if rec else None
        self.state["open_question_id"] = rec.get("open_question") if rec else None
        self.state["last_execute"].update(finished_at=st.now(), outcome=outcome)
        self.save()
        st.event(self.layout, kind="execute_finished", outcome=outcome, current_task=current)

    def interrupted(self, reason: str) -> None:
        """Ctrl-C: say so in the state (``status`` shows it); the next execute resumes from here."""
        self.state["last_execute"].update(finished_at=st.now(), outcome="interrupted", reason=reason)
        self.save()
        st.event(self.layout, kind="execute_interrupted", reason=reason)

    # -- main loop

    def advance(self) -> str:
        self.apply_all_pending()
        while True:
            task_id = self.next_task()
            if task_id is None:
                break
            outcome = self.step(task_id)
            if outcome is not None:
                return outcome
        if all(r["state"] == st.COMPLETED for r in self.state["tasks"].values()):
            return "completed"
        return "blocked"

    def next_task(self) -> str | None:
        tasks = self.state["tasks"]
        for contract in self.bundle["tasks"]:
            rec = tasks[contract["id"]]
            if rec["state"] in (st.COMPLETED, st.BLOCKED):
                continue
            if all(tasks[d]["state"] == st.COMPLETED for d in contract["depends_on"]):
                return contract["id"]
        return None

    def step(self, task_id: str) -> str | None:
        """Advance one task until it completes (None) or reaches a gate (the outcome)."""
        rec = self.state["tasks"][task_id]
        c = self.contracts[task_id]
        for _ in range(1000):  # each pass changes the state; the bound is a safety net
            s = rec["state"]
            if s == st.PLANNED:
                if not rec.get("attempt_started"):
                    rec["attempts"] += 1
                    rec["attempt_started"] = True
                if self.preflight(c, rec):
                    return "awaiting_operator"
                self.transition(rec, st.PREFLIGHT_READY, "validation", "preflight passed" + self._waived_note(rec))
            elif s == st.PREFLIGHT_READY:
                if self.validate(c, rec):
                    return "awaiting_operator"
                if not c["needs_proposal"]:
                    self.transition(rec, st.COMPLETED, "done", self._done_note(rec, "validations done; no proposal needed"))
                    return None
                if self.bundle["prompt_backend"] == "manualllm":
                    self.ensure_prompt(c)
                    self.transition(rec, st.AWAITING_RESPONSE, "prompt", f"validations done; waiting for {c['response_file']}")
                else:
                    rec["proposal"] = {
                        "source": "none",
                        "summary": "No proposal was requested (prompt backend none); see the brief " + c["brief_file"],
                        "recorded_at": st.now(),
                    }
                    self.transition(rec, st.PROPOSAL_READY, "branch_gate", "validations done; prompt backend none: no proposal")
            elif s == st.AWAITING_RESPONSE:
                if not self.read_response(c, rec):
                    return "awaiting_response"
                self.transition(rec, st.PROPOSAL_READY, "branch_gate", f"response recorded from {c['response_file']}")
            elif s == st.PROPOSAL_READY:
                where = c["repo_root"]
                self.open_request(
                    rec,
                    "branch_gate",
                    "branch_gate",
                    f"Task {task_id} reached its mutation boundary (policy {c['mutation_policy']}, repository root {where}). "
                    + (
                        f"Its proposal is recorded from {c['response_file']}. "
                        if rec.get("proposal", {}).get("response_file")
                        else "No proposal was generated (prompt backend none). "
                    )
                    + "merlin never changes repository files itself: continue without mutation, confirm you applied it "
                    "on a dedicated branch, or pause (for example to switch branches).",
                )
                self.transition(rec, st.AWAITING_OPERATOR, "branch_gate", "branch gate: waiting for the operator")
            elif s in st.QUESTION_STATES:
                q = self.state["requests"].get(rec.get("open_question") or "")
                if q is None or q["status"] != "open":
                    self.transition(rec, st.PLANNED, "preflight", "its question is gone; starting the task's checks again")
                    continue
                self.apply_pending(q)
                if q["status"] == "open":
                    return "awaiting_operator"
            else:  # completed or blocked
                return None
        raise RuntimeError(f"{task_id}: state machine did not settle")  # pragma: no cover

    @staticmethod
    def _waived_note(rec: dict[str, Any]) -> str:
        waived = sorted(rec.get("waivers", {}))
        return f" (skipped by the operator: {', '.join(waived)})" if waived else ""

    @staticmethod
    def _done_note(rec: dict[str, Any], text: str) -> str:
        skipped = _skipped(rec)
        return text + (f"; not validated: {', '.join(s['what'] for s in skipped)}" if skipped else "")

    # -- commands

    def _run_marked(self, rec: dict[str, Any], kind: str, ident: str, fn: Callable[[], Any]) -> Any:
        """Record what is running (so a killed execute is detected and the step rerun), run it, clear."""
        rec["running"] = {"kind": kind, "id": ident, "pid": os.getpid(), "started_at": st.now()}
        self.save()
        try:
            return fn()
        finally:
            rec["running"] = None

    def run_probe(self, c: dict[str, Any], rec: dict[str, Any], sdk: str) -> dict[str, Any]:
        from merlin.targetgen.probes import probe_command, run_shell

        if sdk in self.probe_cache:
            return {**self.probe_cache[sdk], "cached": True}
        command = probe_command(sdk, self.bundle["preflight"]["probes"])
        timeout = float(self.bundle["preflight"]["timeout_s"])
        if self.progress:
            self.progress(f"{c['id']}: probing {sdk}: {command}")
        result = self._run_marked(
            rec,
            "probe",
            sdk,
            lambda: run_shell(
                command, timeout=timeout, log_path=self.layout.log(c["id"]), cwd=self.layout.root, header=f"{st.now()} probe {sdk}"
            ),
        )
        entry = {"sdk": sdk, "passed": result.passed, "at": st.now(), **result.to_json()}
        self.probe_cache[sdk] = entry
        self.note(f"{c['id']}: probe {sdk}: {'passed' if result.passed else 'failed, ' + result.describe()}")
        return entry

    def preflight(self, c: dict[str, Any], rec: dict[str, Any]) -> bool:
        """Run the pending preflight checks; open a request and return True at the first failure."""
        tid = c["id"]
        rec["stage"] = "preflight"
        pf = rec["preflight"]
        waivers = rec["waivers"]
        failed = []
        for sdk in c["preflight"]["sdk_requirements"]:
            if f"probe:{sdk}" in waivers or pf["probes"].get(sdk, {}).get("passed"):
                continue
            pf["probes"][sdk] = self.run_probe(c, rec, sdk)
            if not pf["probes"][sdk]["passed"] and not self.reuse_answer(rec, f"probe:{sdk}"):
                failed.append(sdk)
        if failed:
            detail = "; ".join(
                f"{sdk} (`{pf['probes'][sdk]['command']}`: {self._describe(pf['probes'][sdk])})" for sdk in failed
            )
            output = "\n".join(
                f"[{sdk}] {pf['probes'][sdk]['output_excerpt']}" for sdk in failed if pf["probes"][sdk]["output_excerpt"]
            )
            self.open_request(
                rec,
                "probe",
                "probe",
                f"SDK probe failed for task {tid}: {detail}. Fix it and retry, continue without the SDK "
                f"(recorded as skipped), or mark the task blocked." + (f"\nThe probe printed:\n{output}" if output else ""),
                sdks=failed,
            )
            self.transition(rec, st.PREFLIGHT_FAILED, "preflight", f"SDK probe failed: {', '.join(failed)}")
            return True
        for cred in c["credential_requirements"]:
            name, env = cred["name"], cred["env"]
            current = pf["credentials"].get(name)
            if f"credential:{name}" in waivers or (
                current and (current["status"] == "present" or current.get("confirmed_by_operator"))
            ):
                continue
            present = bool(os.environ.get(env))
            pf["credentials"][name] = {"env": env, "status": "present" if present else "missing", "checked_at": st.now()}
            self.note(f"{tid}: credential {name} (${env}): {'present' if present else 'missing'}")
            if not present and not self.reuse_answer(rec, f"credential:{name}"):
                self.open_request(
                    rec,
                    "credential",
                    f"credential-{name}",
                    f"Credential {name!r} needed by task {tid} is missing: environment variable {env} is not set "
                    f"in the environment of execute (only its presence is ever recorded, never its value).",
                    env=env,
                    credential=name,
                )
                self.transition(rec, st.AWAITING_OPERATOR, "credentials", f"credential {name} missing (${env})")
                return True
        if c["preflight"]["device_gate"] and "device" not in waivers:
            current = pf.get("device")
            if not (current and current["status"] in ("passed", "confirmed_by_operator")):
                return self.device_gate(c, rec)
        return False

    def remember(self, rec: dict[str, Any], key: str, kind: str, reason: str, q: dict[str, Any]) -> None:
        """Record an operator's skip or confirmation on this task and for later tasks of the target."""
        entry = {"reason": reason, "question": q["id"], "task": rec["task_id"], "at": st.now()}
        if kind == "waived":
            rec["waivers"][key] = entry
        self.state.setdefault("target_answers", {})[key] = {**entry, "kind": kind}

    def reuse_answer(self, rec: dict[str, Any], key: str) -> bool:
        """A later task hitting a check the operator already answered for this target reuses that answer."""
        prior = self.state.get("target_answers", {}).get(key)
        if not prior or prior["task"] == rec["task_id"]:
            return False
        origin = f"answered for {prior['task']} in {prior['question']}"
        pf = rec["preflight"]
        if prior["kind"] == "waived":
            rec["waivers"][key] = {"reason": f"{prior['reason']} ({origin})", "question": prior["question"], "task": prior["task"], "at": st.now()}
        elif key.startswith("credential:"):
            pf["credentials"][key.split(":", 1)[1]]["confirmed_by_operator"] = True
            pf["credentials"][key.split(":", 1)[1]]["confirmed_in"] = prior["question"]
        elif key == "device":
            pf["device"] = {**(pf.get("device") or {}), "status": "confirmed_by_operator", "confirmed_in": prior["question"]}
        self.note(f"{rec['task_id']}: {key}: reusing the operator's answer ({prior['kind']}, {origin})")
        return True

    def device_gate(self, c: dict[str, Any], rec: dict[str, Any]) -> bool:
        from merlin.targetgen.probes import run_shell

        tid = c["id"]
        probe = self.bundle["preflight"].get("device_probe")
        pf = rec["preflight"]
        if probe:
            timeout = float(self.bundle["preflight"]["timeout_s"])
            if self.progress:
                self.progress(f"{tid}: device probe: {probe}")
            result = self._run_marked(
                rec,
                "device_probe",
                "device",
                lambda: run_shell(probe, timeout=timeout, log_path=self.layout.log(tid), cwd=self.layout.root, header=f"{st.now()} device probe"),
            )
            pf["device"] = {"status": "passed" if result.passed else "failed", "at": st.now(), **result.to_json()}
            if result.passed:
                self.note(f"{tid}: device gate closed by itself: `{probe}` passed")
                self.save()
                return False
            if self.reuse_answer(rec, "device"):
                return False
            question = (
                f"Device gate for task {tid}: the device probe `{probe}` failed ({result.describe()})."
                + (f" It printed:\n{result.excerpt}" if result.excerpt else " It printed nothing.")
            )
        else:
            pf["device"] = {"status": "no_probe", "at": st.now()}
            if self.reuse_answer(rec, "device"):
                return False
            question = (
                f"Device gate for task {tid}: no device probe is configured for this deployment "
                "(set deployment.preflight.device_probe in the overlay to check it automatically). Is the device available?"
            )
        self.open_request(rec, "device", "device", question)
        self.transition(rec, st.AWAITING_OPERATOR, "device", "device gate: " + ("probe failed" if probe else "no device probe"))
        return True

    def validate(self, c: dict[str, Any], rec: dict[str, Any]) -> bool:
        from merlin.targetgen.probes import run_command

        tid = c["id"]
        rec["stage"] = "validation"
        default_timeout = float(self.bundle["preflight"].get("validation_timeout_s", 600))
        for cmd in c["validation_commands"]:
            current = rec["validations"].get(cmd["id"])
            if current and current["status"] in ("passed", "skipped"):
                continue
            scratch = self.layout.scratch(tid)
            scratch.mkdir(parents=True, exist_ok=True)
            argv = fill_argv(
                cmd["argv"], capability=self.capability, overlay=self.overlay, target_dir=str(self.layout.root), scratch_dir=str(scratch)
            )
            timeout = float(cmd.get("timeout_s") or default_timeout)
            if self.progress:
                self.progress(f"{tid}: validation {cmd['id']}: {shlex.join(argv)}")
            def run_validation(argv: list[str] = argv, timeout: float = timeout, cmd_id: str = cmd["id"]) -> Any:
                return run_command(
                    argv,
                    timeout=timeout,
                    log_path=self.layout.log(tid),
                    cwd=self.layout.root,
                    header=f"{st.now()} validation {cmd_id} (attempt {rec['attempts']})",
                )

            result = self._run_marked(rec, "validation", cmd["id"], run_validation)
            status = "passed" if result.passed else "failed"
            entry = {
                "id": cmd["id"],
                "description": cmd.get("description"),
                "status": status,
                "attempt": rec["attempts"],
                "at": st.now(),
                "log": f"logs/{tid}.log",
                **result.to_json(),
            }
            rec["validations"][cmd["id"]] = entry
            rec["last_validation"] = {"id": cmd["id"], "status": status, "exit_code": result.exit_code}
            self.note(f"{tid}: validation {cmd['id']}: {status}" + ("" if result.passed else f" ({result.describe()})"))
            self.save()
            if not result.passed:
                excerpt = result.excerpt[-800:]
                self.open_request(
                    rec,
                    "validation",
                    f"validation-{cmd['id']}",
                    f"Validation {cmd['id']!r} of task {tid} failed: `{shlex.join(argv)}`: {result.describe()}. "
                    f"Full output in logs/{tid}.log." + (f"\nLast output:\n{excerpt}" if excerpt else ""),
                    check_id=cmd["id"],
                )
                self.transition(rec, st.AWAITING_OPERATOR, "validation", f"validation {cmd['id']} failed ({result.describe()})")
                return True
        return False

    @staticmethod
    def _describe(entry: dict[str, Any]) -> str:
        if entry.get("timed_out"):
            return f"timed out after {entry['duration_s']}s"
        if entry.get("error"):
            return f"{entry['error']}, exit {entry['exit_code']}"
        return f"exit {entry['exit_code']}"

    # -- prompts and responses

    def ensure_prompt(self, c: dict[str, Any]) -> None:
        """Write a missing prompt packet again (an existing one, even edited by hand, is never touched)."""
        path = self.layout.root / c["prompt_file"]
        if path.exists():
            return
        from merlin.spec import load_pair
        from merlin.targetgen import prompts as pr
        from merlin.targetgen.planner import build_plan

        cap, ovl = load_pair(self.capability, self.overlay)
        plan = build_plan(cap, ovl)
        task = next(t for t in plan.tasks if t["id"] == c["id"])
        rendered = pr.render_prompt(
            spec=cap.model,
            overlay=ovl.model if ovl else None,
            capability_path=cap.path,
            task=task,
            support_plan=plan.support_plan,
            prompt_backend=self.bundle["prompt_backend"],
            response_file=c["response_file"],
        )
        atomic_write_text(path, rendered.text)
        self.note(f"{c['id']}: wrote the missing prompt {c['prompt_file']}")

    def read_response(self, c: dict[str, Any], rec: dict[str, Any]) -> bool:
        import hashlib

        path = self.layout.root / c["response_file"]
        if not path.is_file():
            return False
        data = path.read_bytes()
        text = data.decode("utf-8", errors="replace")
        if not text.strip():
            self.note(f"{c['id']}: {c['response_file']} is empty; still waiting for a response")
            return False
        snapshot = f"proposals/{c['id']}.md"
        atomic_write_text(self.layout.root / snapshot, text)
        paragraphs = [p.strip() for p in text.strip().split("\n\n") if p.strip()]
        summary = next((p for p in paragraphs if not p.startswith("#")), paragraphs[0] if paragraphs else "")
        rec["proposal"] = {
            "source": "response_file",
            "response_file": c["response_file"],
            "snapshot": snapshot,
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
            "summary": summary[:500],
            "recorded_at": st.now(),
        }
        return True

    # -- operator requests and answers

    def open_request(self, rec: dict[str, Any], kind: str, key: str, question: str, **facts: Any) -> dict[str, Any]:
        tid = rec["task_id"]
        for q in self.state["requests"].values():
            if q["task_id"] == tid and q["key"] == key and q["status"] == "open":
                rec["open_question"] = q["id"]
                return q
        rec["questions_opened"] = rec.get("questions_opened", 0) + 1
        qid = f"{tid}-{key}-{rec['questions_opened']}"
        options, recommended = options_for(kind, **facts)
        request = {
            "id": qid,
            "task_id": tid,
            "kind": kind,
            "key": key,
            "question": question,
            "options": options,
            "recommended_option": recommended,
            "status": "open",
            "opened_at": st.now(),
            "resolved_at": None,
            "answer": None,
            "pauses": [],
            "facts": facts,
        }
        self.state["requests"][qid] = request
        rec["open_question"] = qid
        st.event(self.layout, kind="question_opened", task=tid, question_id=qid, question_kind=kind)
        self.note(f"{tid}: question {qid}: {question.splitlines()[0]}")
        return request

    def _consume(self, answer: dict[str, Any], ignored_reason: str | None = None) -> None:
        self.state.setdefault("consumed_answers", []).append(answer["answer_id"])
        if ignored_reason:
            self.state.setdefault("ignored_answers", []).append({**answer, "ignored_because": ignored_reason, "at_ignore": st.now()})
            st.event(self.layout, kind="answer_ignored", answer_id=answer["answer_id"], question_id=answer["question_id"], why=ignored_reason)
            self.note(f"answer {answer['choice']} to {answer['question_id']} ignored: {ignored_reason}")

    def apply_all_pending(self) -> None:
        pending = st.pending_answers(self.layout, self.state)
        by_question: dict[str, list[dict[str, Any]]] = {}
        for a in pending:
            by_question.setdefault(a["question_id"], []).append(a)
        for qid, answers in by_question.items():
            q = self.state["requests"].get(qid)
            if q is None or q["status"] != "open":
                for a in answers:
                    self._consume(a, "the question is no longer open" if q else "no such question")
                self.save()
                continue
            self.apply_pending(q)

    def apply_pending(self, q: dict[str, Any]) -> None:
        """Apply the latest pending answer to an open question (earlier pending ones are superseded)."""
        answers = [a for a in st.pending_answers(self.layout, self.state) if a["question_id"] == q["id"]]
        if not answers:
            return
        for a in answers[:-1]:
            self._consume(a, f"superseded by a later answer ({answers[-1]['choice']})")
        latest = answers[-1]
        valid = {o["id"] for o in q["options"]}
        if latest["choice"] not in valid:
            self._consume(latest, f"{latest['choice']!r} is not an option of {q['id']}")
            self.save()
            return
        self._consume(latest)
        self.apply_answer(q, latest)

    def apply_answer(self, q: dict[str, Any], a: dict[str, Any]) -> None:
        rec = self.state["tasks"][q["task_id"]]
        choice = a["choice"]
        st.event(self.layout, kind="answer_applied", question_id=q["id"], choice=choice, answer_id=a["answer_id"])
        if choice == "pause":
            q["pauses"].append({"at": st.now(), "answer_id": a["answer_id"], "answered_at": a.get("at")})
            self.note(f"{q['task_id']}: {q['id']}: paused by the operator; the question stays open")
            self.save()
            return
        q["status"] = "resolved"
        q["resolved_at"] = st.now()
        q["answer"] = {"choice": choice, "answer_id": a["answer_id"], "answered_at": a.get("at"), "note": a.get("note")}
        rec["open_question"] = None
        why = f"operator chose {choice} ({q['id']})"
        pf = rec["preflight"]
        kind = q["kind"]
        if choice == "mark_blocked":
            rec["blocked_reason"] = f"{q['question'].splitlines()[0]} (operator chose mark_blocked on {q['id']})"
            self.transition(rec, st.BLOCKED, "blocked", why)
            return
        if kind == "probe":
            for sdk in q["facts"].get("sdks", []):
                if choice == "continue_without_sdk":
                    probe = pf["probes"].get(sdk, {})
                    reason = (
                        f"SDK probe `{probe.get('command')}` failed ({self._describe(probe) if probe else 'unknown'}); "
                        "operator chose continue_without_sdk"
                    )
                    self.remember(rec, f"probe:{sdk}", "waived", reason, q)
                else:
                    pf["probes"].pop(sdk, None)
            self.transition(rec, st.PLANNED, "preflight", why)
        elif kind == "credential":
            name = q["facts"]["credential"]
            if choice == "continue_without_credential":
                reason = f"${q['facts']['env']} was not set; operator chose continue_without_credential"
                self.remember(rec, f"credential:{name}", "waived", reason, q)
            elif choice == "credential_available":
                pf["credentials"].setdefault(name, {"env": q["facts"]["env"], "status": "missing"})["confirmed_by_operator"] = True
                self.remember(rec, f"credential:{name}", "confirmed", "operator confirmed the credential is available", q)
            else:
                pf["credentials"].pop(name, None)
            self.transition(rec, st.PLANNED, "preflight", why)
        elif kind == "device":
            if choice == "continue_without_device":
                reason = f"device gate not passed ({(pf.get('device') or {}).get('status', 'unknown')}); operator chose continue_without_device"
                self.remember(rec, "device", "waived", reason, q)
            elif choice == "device_available":
                pf["device"] = {**(pf.get("device") or {}), "status": "confirmed_by_operator", "confirmed_at": st.now()}
                self.remember(rec, "device", "confirmed", "operator confirmed the device is available", q)
            else:
                pf["device"] = None
            self.transition(rec, st.PLANNED, "preflight", why)
        elif kind == "validation":
            check = q["facts"]["check_id"]
            if choice == "continue_skip_validation":
                v = rec["validations"].get(check, {"id": check})
                v["failed_result"] = {k: v.get(k) for k in ("exit_code", "timed_out", "error", "duration_s")}
                v["status"] = "skipped"
                v["skip_reason"] = f"failed ({self._describe(v)}); operator chose continue_skip_validation"
                rec["validations"][check] = v
                rec["last_validation"] = {"id": check, "status": "skipped", "exit_code": v.get("exit_code")}
            else:
                rec["validations"].pop(check, None)
            self.transition(rec, st.PREFLIGHT_READY, "validation", why)
        elif kind == "branch_gate":
            proposal = rec.get("proposal") or {}
            if choice == "continue_without_mutation":
                proposal["mutation"] = {"applied": False, "decision": choice, "at": st.now()}
                done = "proposal recorded, not applied (continue_without_mutation)"
            else:
                proposal["mutation"] = {"applied": True, "by": "operator", "decision": choice, "at": st.now()}
                done = "proposal applied by the operator on a dedicated branch (applied_on_branch)"
            rec["proposal"] = proposal
            self.transition(rec, st.COMPLETED, "done", self._done_note(rec, done))
        else:  # pragma: no cover - requests are only created with known kinds
            raise RuntimeError(f"unknown request kind {kind}")


# --- public API ---------------------------------------------------------------


def _check_inputs(bundle: dict[str, Any]) -> None:
    """The inputs recorded in the bundle still exist and are unchanged."""
    for key in ("capability", "overlay"):
        item = bundle["inputs"].get(key)
        if not item:
            continue
        path = Path(item["path"])
        if not path.is_file():
            raise BadInput(
                f"{path}: the {key} recorded in execution_bundle.json no longer exists; "
                "orchestrate again with the new path and --reset"
            )
        digest = sha256_file(path)
        if digest != item["sha256"]:
            raise BadInput(
                f"{path}: the {key} changed since execution_bundle.json was written "
                f"(sha256 {item['sha256'][:12]}... -> {digest[:12]}...); run orchestrate again with --reset "
                "(the current state is archived under history/)"
            )


def orchestrate(
    capability: Path | str,
    overlay: Path | str | None = None,
    *,
    out_dir: Path | str | None = None,
    prompt_backend: str = DEFAULT_PROMPT_BACKEND,
    reset: bool = False,
    lock_timeout: float | None = None,
    progress: Progress | None = None,
) -> OrchestrateResult:
    """Write the bundle, briefs, prompts and state under ``<out_dir>/<target.name>``."""
    from merlin.spec import load_pair

    cap, ovl = load_pair(capability, overlay)
    layout = st.Layout((Path(out_dir or default_out_dir()) / cap.model.target.name).resolve())
    layout.root.mkdir(parents=True, exist_ok=True)
    with st.target_lock(layout, "orchestrate", default_lock_wait() if lock_timeout is None else lock_timeout):
        return orchestrate_locked(layout, cap, ovl, prompt_backend=prompt_backend, reset=reset, progress=progress)


def execute(
    target_dir: Path | str | None = None,
    *,
    capability: Path | str | None = None,
    overlay: Path | str | None = None,
    out_dir: Path | str | None = None,
    prompt_backend: str | None = None,
    lock_timeout: float | None = None,
    progress: Progress | None = None,
) -> ExecuteResult:
    """Advance the target until a gate; orchestrates first when given a capability that was not yet orchestrated."""
    if (capability is None) == (target_dir is None):
        raise BadInput("execute: give either a CAPABILITY file or --from-dir DIR (exactly one)")
    if overlay is not None and capability is None:
        raise BadInput("execute: --overlay goes with a CAPABILITY, not with --from-dir (the bundle records its overlay)")
    wait = default_lock_wait() if lock_timeout is None else lock_timeout
    orchestrated = None
    if capability is not None:
        from merlin.spec import load_pair

        cap, ovl = load_pair(capability, overlay)
        layout = st.Layout((Path(out_dir or default_out_dir()) / cap.model.target.name).resolve())
        layout.root.mkdir(parents=True, exist_ok=True)
        lock = st.target_lock(layout, "execute", wait)
    else:
        layout = st.open_target_dir(target_dir)  # type: ignore[arg-type]
        lock = st.target_lock(layout, "execute", wait)
    with lock:
        if capability is not None:
            fresh = not (layout.bundle.is_file() and layout.state.is_file())
            result = orchestrate_locked(
                layout,
                cap,
                ovl,
                prompt_backend=prompt_backend or DEFAULT_PROMPT_BACKEND,
                reset=False,
                progress=progress,
                require_same_backend=prompt_backend is not None,
            )
            if fresh:
                orchestrated = result
                if progress:
                    progress(f"orchestrated {result.target}: {result.tasks} tasks in {layout.root}")
        bundle = st.load_bundle(layout)
        _check_inputs(bundle)
        state = st.load_state(layout)
        run = _Run(layout, bundle, state, progress)
        run.begin()
        try:
            outcome = run.advance()
        except KeyboardInterrupt:
            run.interrupted("interrupted by Ctrl-C (SIGINT)")
            raise
        run.finish(outcome)
        return summarize(layout, bundle, state, steps=run.steps, orchestrated=orchestrated)


def status(target_dir: Path | str) -> ExecuteResult:
    """Where the target stands, read without taking the lock (state files are atomic)."""
    layout = st.open_target_dir(target_dir)
    bundle = st.load_bundle(layout)
    state = st.load_state(layout)
    return summarize(layout, bundle, state, lock_holder=st.lock_holder(layout))


def answer(
    target_dir: Path | str,
    question_id: str,
    choice: str,
    *,
    note: str | None = None,
    lock_timeout: float = 2.0,
) -> AnswerResult:
    """Record an answer durably (answers.jsonl); the next (or running) execute applies it.

    Takes the target lock with a short wait so the check "the question is open"
    is exact; if an execute holds the lock, the check uses the last saved state
    and the answer is still recorded: it never lands in a file execute rewrites.
    """
    import difflib

    layout = st.open_target_dir(target_dir)
    holder = None
    with ExitStack() as stack:
        try:
            stack.enter_context(st.target_lock(layout, "answer", lock_timeout))
        except LockBusy:
            holder = st.lock_holder(layout) or "another merlin process"
        state = st.load_state(layout)
        requests = state.get("requests", {})
        open_ids = [q["id"] for q in requests.values() if q["status"] == "open"]
        listing = f"open questions: {', '.join(open_ids)}" if open_ids else "no question is open"
        q = requests.get(question_id)
        if q is None:
            hint = difflib.get_close_matches(question_id, list(requests), n=1, cutoff=0.6)
            extra = f"did you mean {hint[0]!r}? " if hint else ""
            raise BadInput(f"{layout.root}: no question {question_id!r} ({extra}{listing})")
        if q["status"] != "open":
            how = f" (answered {q['answer']['choice']})" if q.get("answer") else ""
            raise BadInput(f"{layout.root}: question {question_id} is {q['status']}{how}, not open ({listing})")
        options = [o["id"] for o in q["options"]]
        if choice not in options:
            hint = difflib.get_close_matches(choice, options, n=1, cutoff=0.6)
            extra = f"; did you mean {hint[0]!r}?" if hint else ""
            raise BadInput(f"{question_id}: {choice!r} is not an option (expected one of: {', '.join(options)}{extra})")
        earlier = [a for a in st.pending_answers(layout, state) if a["question_id"] == question_id]
        record = {
            "schema_version": st.ANSWER_SCHEMA_VERSION,
            "answer_id": uuid.uuid4().hex,
            "question_id": question_id,
            "choice": choice,
            "at": st.now(),
            "by": f"pid {os.getpid()}",
        }
        if note:
            record["note"] = note
        import json

        append_line(layout.answers, json.dumps(record, sort_keys=True, ensure_ascii=False))
        st.event(layout, kind="answer_recorded", question_id=question_id, choice=choice, answer_id=record["answer_id"], lock_busy=bool(holder))
    return AnswerResult(layout.root, question_id, choice, str(record["answer_id"]), holder, earlier[-1]["choice"] if earlier else None)


def retry(
    target_dir: Path | str,
    task_id: str | None = None,
    *,
    reason: str | None = None,
    lock_timeout: float | None = None,
) -> RetryResult:
    """Return a blocked or failed task (or the given task) to planned, recording why."""
    layout = st.open_target_dir(target_dir)
    why = reason or "operator retry"
    with st.target_lock(layout, "retry", default_lock_wait() if lock_timeout is None else lock_timeout):
        bundle = st.load_bundle(layout)
        state = st.load_state(layout)
        tasks = state["tasks"]
        if task_id is not None:
            if task_id not in tasks:
                raise BadInput(f"{layout.root}: no task {task_id!r} (tasks: {', '.join(state['task_order'])})")
            rec = tasks[task_id]
            if rec["state"] == st.COMPLETED:
                raise BadInput(f"{task_id} is completed; there is nothing to retry")
            if rec["state"] == st.PLANNED and not rec.get("attempt_started"):
                raise BadInput(f"{task_id} has not started yet (state planned); run execute")
            targets = [task_id]
        else:
            targets = [t for t in state["task_order"] if tasks[t]["state"] in (st.BLOCKED, st.PREFLIGHT_FAILED)]
            if not targets:
                states = ", ".join(f"{t}={tasks[t]['state']}" for t in state["task_order"])
                # --task accepts a task that has started and is not completed.
                others = [
                    t
                    for t in state["task_order"]
                    if tasks[t]["state"] != st.COMPLETED and not (tasks[t]["state"] == st.PLANNED and not tasks[t].get("attempt_started"))
                ]
                hint = (
                    "; --task ID can restart a task in progress: " + ", ".join(others)
                    if others
                    else "; completed tasks cannot be retried and planned ones have not started (run execute)"
                )
                raise BadInput(f"{layout.root}: nothing to retry: no blocked or failed task ({states}){hint}")
        retried = []
        for tid in targets:
            old = tasks[tid]
            if old.get("open_question"):
                q = state["requests"].get(old["open_question"])
                if q and q["status"] == "open":
                    q["status"] = "superseded"
                    q["resolved_at"] = st.now()
                    q["answer"] = {"choice": None, "superseded_by": "retry", "reason": why}
            new = new_task_record(tid)
            new["attempts"] = old["attempts"]
            new["questions_opened"] = old.get("questions_opened", 0)
            new["retries"] = old.get("retries", 0) + 1
            new["last_retry"] = {"at": st.now(), "from_state": old["state"], "reason": why}
            new["history"] = old["history"] + [
                {"at": st.now(), "from": old["state"], "to": st.PLANNED, "stage": None, "why": f"retry: {why}"}
            ]
            tasks[tid] = new
            answers = state.get("target_answers", {})
            for key in [k for k, v in answers.items() if v["task"] == tid]:
                del answers[key]
            st.event(layout, kind="retry", task=tid, from_state=old["state"], why=why)
            retried.append({"task_id": tid, "from_state": old["state"]})
        state["outcome"] = st.READY
        st.save_state(layout, state, bundle)
    return RetryResult(layout.root, retried, why)
