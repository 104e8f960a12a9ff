"""The executor's run, first half: its bookkeeping (save after every transition, notes,
the checked task transition) and the operator's requests and answers (open a
question, remember an answer for later tasks, apply answers as they arrive).
The task loop and its gates are ``targetgen/run.py``'s :class:`Run`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from merlin.targetgen import state as st
from merlin.targetgen.operator import options_for
from merlin.targetgen.results import _skipped
from merlin.targetgen.vocab import can_task_transition

Progress = Callable[[str], None]


class RunState:
    """One execute's target state, saved after every transition, and its operator requests."""

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

    @staticmethod
    def _waived_note(rec: dict[str, Any]) -> str:
        waived = sorted(rec.get("waivers", {}))
        return f" (skipped by the operator: {', '.join(waived)})" if waived else ""

    @staticmethod
    def _done_note(rec: dict[str, Any], text: str) -> str:
        skipped = _skipped(rec)
        return text + (f"; not validated: {', '.join(s['what'] for s in skipped)}" if skipped else "")

    @staticmethod
    def _describe(entry: dict[str, Any]) -> str:
        if entry.get("timed_out"):
            return f"timed out after {entry['duration_s']}s"
        if entry.get("error"):
            return f"{entry['error']}, exit {entry['exit_code']}"
        return f"exit {entry['exit_code']}"

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
