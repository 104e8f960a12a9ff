"""Executor state on disk: layout, states, atomic saves, the target lock.

``execution_state.json`` is the single source of truth for a target's
progress (tasks, operator requests, applied answers). It is written
atomically in one rename, so a reader or a SIGKILL never sees half a state.
``task_states/<task>.json`` and ``operator_requests/<question>.json`` are
per-item views regenerated from it after every save. Answers are never
written into it by ``answer``: they are appended to ``answers.jsonl`` and
applied by ``execute`` under the lock.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from merlin.atomic import append_line, atomic_write_json, dump_json, file_lock, write_if_changed
from merlin.clock import utcnow
from merlin.errors import BadInput
from merlin.targetgen.layout import TARGET_LOCK_NAME as LOCK_NAME  # noqa: F401
from merlin.targetgen.layout import TargetLayout
from merlin.targetgen.vocab import EXECUTE_OUTCOMES, QUESTION_STATES, Outcome, TaskState  # noqa: F401

STATE_SCHEMA_VERSION = 1
# task_states/<task>.json views and answers.jsonl lines; files written before
# they carried schema_version are still read (nothing requires the field).
TASK_STATE_SCHEMA_VERSION = 1
ANSWER_SCHEMA_VERSION = 1

# Task states and outcomes: defined once in merlin.targetgen.vocab; the short names stay.
PLANNED = TaskState.PLANNED
PREFLIGHT_READY = TaskState.PREFLIGHT_READY
PREFLIGHT_FAILED = TaskState.PREFLIGHT_FAILED
AWAITING_OPERATOR = TaskState.AWAITING_OPERATOR
AWAITING_RESPONSE = TaskState.AWAITING_RESPONSE
PROPOSAL_READY = TaskState.PROPOSAL_READY
COMPLETED = TaskState.COMPLETED
BLOCKED = TaskState.BLOCKED
TASK_STATES = tuple(TaskState)
OUTCOMES = tuple(o.value for o in EXECUTE_OUTCOMES)
READY = Outcome.READY



def now() -> str:
    return utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ")


#: Every path under a target directory (owned by merlin.targetgen.layout.TargetLayout).
Layout = TargetLayout


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"{path}: no such file ({what})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"{path}: unreadable {what}: {exc}") from None


def open_target_dir(target_dir: Path | str) -> Layout:
    """A target directory that ``orchestrate`` has written, or one clear error."""
    root = Path(target_dir)
    if not root.exists():
        raise BadInput(f"{root}: no such target directory (orchestrate the capability first)")
    if not root.is_dir():
        raise BadInput(f"{root}: not a directory (expected a target directory written by orchestrate)")
    layout = Layout(root.resolve())
    if not layout.bundle.is_file():
        raise BadInput(f"{root}: no execution_bundle.json here (not an orchestrated target directory; orchestrate the capability first)")
    if not layout.state.is_file():
        raise BadInput(f"{root}: no execution_state.json here (orchestrate the capability again)")
    return layout


def load_state(layout: Layout) -> dict[str, Any]:
    state = read_json(layout.state, "execution state")
    if not isinstance(state, dict) or state.get("schema_version") != STATE_SCHEMA_VERSION or "tasks" not in state:
        raise BadInput(f"{layout.state}: not a merlin execution state (schema_version {STATE_SCHEMA_VERSION} expected)")
    return state


def load_bundle(layout: Layout) -> dict[str, Any]:
    bundle = read_json(layout.bundle, "execution bundle")
    if not isinstance(bundle, dict) or "tasks" not in bundle or "inputs" not in bundle:
        raise BadInput(f"{layout.bundle}: not a merlin execution bundle")
    return bundle


def save_state(layout: Layout, state: dict[str, Any], bundle: dict[str, Any]) -> None:
    """Write the state atomically, then refresh the per-task and per-request views."""
    state["updated_at"] = now()
    atomic_write_json(layout.state, state)
    write_views(layout, state, bundle)


def write_views(layout: Layout, state: dict[str, Any], bundle: dict[str, Any]) -> None:
    contracts = {t["id"]: t for t in bundle["tasks"]}
    for task_id, record in state["tasks"].items():
        contract = contracts.get(task_id, {})
        view = {
            "schema_version": TASK_STATE_SCHEMA_VERSION,
            "target": state["target"],
            "task_id": task_id,
            "title": contract.get("title"),
            "brief_file": contract.get("brief_file"),
            "prompt_file": contract.get("prompt_file"),
            "response_file": contract.get("response_file"),
            **record,
        }
        write_if_changed(layout.task_state(task_id), dump_json(view).encode("utf-8"))
    for qid, request in state.get("requests", {}).items():
        write_if_changed(layout.requests / f"{qid}.json", dump_json(request).encode("utf-8"))


def event(layout: Layout, **fields: Any) -> None:
    """One line in the append-only events.jsonl audit log."""
    append_line(layout.events, json.dumps({"at": now(), **fields}, sort_keys=True, ensure_ascii=False))


def holder_text(command: str) -> str:
    argv = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv[:6]))
    return f"pid {os.getpid()} ({command}: {argv}) since {now()}"


@contextmanager
def target_lock(layout: Layout, command: str, timeout: float) -> Iterator[None]:
    """The target directory lock; waits ``timeout`` seconds, then LockBusy names the holder."""
    with file_lock(layout.lock, timeout=timeout, holder=holder_text(command)):
        yield


def lock_holder(layout: Layout) -> str | None:
    """Who holds the target lock right now (None if free). Never waits."""
    from merlin.atomic import lock_is_free, read_holder

    if lock_is_free(layout.lock):
        return None
    return read_holder(layout.lock) or "unknown process"


def read_answers(layout: Layout) -> list[dict[str, Any]]:
    """Every answer line in answers.jsonl, in order; a torn last line is skipped."""
    try:
        text = layout.answers.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(item, dict) and {"answer_id", "question_id", "choice"} <= set(item):
            out.append(item)
    return out


def pending_answers(layout: Layout, state: dict[str, Any]) -> list[dict[str, Any]]:
    consumed = set(state.get("consumed_answers", []))
    return [a for a in read_answers(layout) if a["answer_id"] not in consumed]
