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
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from merlin.atomic import append_line
from merlin.errors import BadInput, LockBusy
from merlin.targetgen import state as st
from merlin.targetgen.bundle import (
    DEFAULT_PROMPT_BACKEND,
    new_task_record,
    orchestrate_locked,
    sha256_file,
)
from merlin.targetgen.bundle import OrchestrateResult as OrchestrateResult
from merlin.targetgen.results import EXIT_CODES as EXIT_CODES
from merlin.targetgen.results import AnswerResult, ExecuteResult, RetryResult, summarize
from merlin.targetgen.run import Run
from merlin.targetgen.run_state import Progress

__all__ = [
    "EXIT_CODES",
    "AnswerResult",
    "ExecuteResult",
    "OrchestrateResult",
    "Progress",
    "RetryResult",
    "answer",
    "default_lock_wait",
    "default_out_dir",
    "execute",
    "orchestrate",
    "retry",
    "status",
    "summarize",
]


def default_lock_wait() -> float:
    """Seconds a command waits for the target lock ($MERLIN_TARGETGEN_LOCK_WAIT, default 5)."""
    raw = os.environ.get("MERLIN_TARGETGEN_LOCK_WAIT")
    try:
        return max(0.0, float(raw)) if raw else 5.0
    except ValueError:
        raise BadInput(f"MERLIN_TARGETGEN_LOCK_WAIT={raw!r} is not a number of seconds") from None


def default_out_dir() -> Path:
    return Path(os.environ.get("MERLIN_TARGETGEN_OUT") or "build/generated/targetgen")


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
                "orchestrate again with the new path and `reset`",
                argument="reset",
            )
        digest = sha256_file(path)
        if digest != item["sha256"]:
            raise BadInput(
                f"{path}: the {key} changed since execution_bundle.json was written "
                f"(sha256 {item['sha256'][:12]}... -> {digest[:12]}...); orchestrate again with `reset` "
                "(the current state is archived under history/)",
                argument="reset",
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
        raise BadInput("execute: give either a `capability` file or a `target_dir` (exactly one)", argument="capability", related="target_dir")
    if overlay is not None and capability is None:
        raise BadInput(
            "execute: `overlay` goes with a `capability`, not with a `target_dir` (the bundle records its overlay)",
            argument="overlay",
            related=("capability", "target_dir"),
        )
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
        run = Run(layout, bundle, state, progress)
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
                # a named task may be one that has started and is not completed.
                others = [
                    t
                    for t in state["task_order"]
                    if tasks[t]["state"] != st.COMPLETED and not (tasks[t]["state"] == st.PLANNED and not tasks[t].get("attempt_started"))
                ]
                hint = (
                    "; naming it as `task` restarts a task in progress: " + ", ".join(others)
                    if others
                    else "; completed tasks cannot be retried and planned ones have not started (run execute)"
                )
                raise BadInput(f"{layout.root}: nothing to retry: no blocked or failed task ({states}){hint}", argument="task" if others else None)
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
