"""The executor's run, second half: the task loop (one gate at a time) and its gates:
preflight (SDK probes, credentials, device gate), validation commands, prompts
and responses. Bookkeeping and operator requests are :class:`RunState`'s."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from typing import Any

from merlin.atomic import atomic_write_text
from merlin.targetgen import state as st
from merlin.targetgen.bundle import fill_argv
from merlin.targetgen.results import _where
from merlin.targetgen.run_state import RunState


class Run(RunState):
    """One execute: advances tasks until a gate, saving after every transition."""

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
