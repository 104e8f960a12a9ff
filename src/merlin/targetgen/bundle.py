"""Orchestrate: turn a plan into an execution bundle, briefs, prompt packets
and a fresh execution state, without ever wiping progress silently.

Layout of ``<out_dir>/<target.name>/`` after orchestrate:

- the plan files (support_plan.json, task_graph.json, ...), byte-stable;
- ``execution_bundle.json``: every task with its contract, brief, prompt and
  response file names, the inputs' paths and sha256, the prompt backend;
- ``execution_state.json`` and ``task_states/<task>.json``;
- ``briefs/NN-<task>.md``: one human brief per task;
- with ``--prompt-backend manualllm``: ``prompts/<task>.prompt.md`` for every
  task that needs a proposal; its answer is expected in
  ``prompts/<task>.response.md`` (matched by task id).

Orchestrating again keeps the state when the inputs are unchanged, and
refuses (pointing to ``--reset``) when they changed. ``--reset`` moves the old
state, answers, logs and responses to ``history/<time>/`` before starting over.
A prompt file edited by hand is never overwritten.
"""

from __future__ import annotations

import hashlib
import shlex
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from merlin.atomic import atomic_write_json, dump_json, write_if_changed
from merlin.errors import BadInput
from merlin.targetgen import state as st
from merlin.targetgen.layout import TargetLayout

BUNDLE_SCHEMA_VERSION = 1
from merlin.targetgen.prompts import DEFAULT_PROMPT_BACKEND, PROMPT_BACKENDS  # noqa: E402  (re-exported)

DEFAULT_VALIDATION_TIMEOUT_S = 600.0
PLACEHOLDERS = ("{python}", "{capability}", "{overlay_args}", "{target_dir}", "{scratch_dir}")

Progress = Callable[[str], None]


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def fill_argv(argv: list[str], *, capability: str, overlay: str | None, target_dir: str, scratch_dir: str) -> list[str]:
    """Fill the placeholders of a validation command (``{overlay_args}`` may expand to two args or none)."""
    out: list[str] = []
    overlay_args = ["--overlay", overlay] if overlay else []
    for arg in argv:
        if arg == "{overlay_args}":
            out += overlay_args
            continue
        arg = (
            arg.replace("{python}", sys.executable)
            .replace("{capability}", capability)
            .replace("{target_dir}", target_dir)
            .replace("{scratch_dir}", scratch_dir)
            .replace("{overlay_args}", " ".join(overlay_args))
        )
        out.append(arg)
    return out


def brief_name(index: int, task_id: str) -> str:
    return f"briefs/{index:02d}-{task_id}.md"


def _source_label(path: str, capability_dir: Path) -> str:
    from merlin.targetgen.prompts import library_root

    p = Path(path)
    for root, label in ((library_root(), "merlin:prompts/"), (capability_dir, "spec:")):
        try:
            return label + p.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            continue
    return path


def build_bundle(cap: Any, ovl: Any | None, plan: Any, prompt_backend: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The bundle (deterministic: no clock) and the prompt texts by task id."""
    from merlin.targetgen import prompts as pr

    spec = cap.model
    overlay = ovl.model if ovl else None
    preflight = overlay.deployment.preflight if overlay else None
    prompt_texts: dict[str, str] = {}
    tasks = []
    for index, task in enumerate(plan.tasks, start=1):
        entry = dict(task)
        entry["index"] = index
        entry["brief_file"] = brief_name(index, task["id"])
        entry["prompt_file"] = entry["response_file"] = entry["prompt_sha256"] = None
        entry["prompt_sources"] = []
        if task["needs_proposal"] and prompt_backend == "manualllm":
            entry["prompt_file"] = st.Layout.prompt_name(task["id"])
            entry["response_file"] = st.Layout.response_name(task["id"])
            rendered = pr.render_prompt(
                spec=spec,
                overlay=overlay,
                capability_path=cap.path,
                task=task,
                support_plan=plan.support_plan,
                prompt_backend=prompt_backend,
                response_file=entry["response_file"],
            )
            prompt_texts[task["id"]] = rendered.text
            entry["prompt_sha256"] = rendered.sha256
            entry["prompt_sources"] = [
                {**s, "file": _source_label(s["file"], Path(cap.path).parent)} for s in rendered.sources
            ]
        tasks.append(entry)
    bundle = {
        "schema_version": BUNDLE_SCHEMA_VERSION,
        "target": spec.target.name,
        "deployment": overlay.deployment.name if overlay else None,
        "prompt_backend": prompt_backend,
        "inputs": {
            "capability": {"path": str(cap.path), "sha256": sha256_file(cap.path)},
            "overlay": {"path": str(ovl.path), "sha256": sha256_file(ovl.path)} if ovl else None,
        },
        "preflight": {
            "probes": dict(preflight.probes) if preflight else {},
            "device_probe": preflight.device_probe if preflight else None,
            "timeout_s": preflight.timeout_s if preflight else 60.0,
            "validation_timeout_s": DEFAULT_VALIDATION_TIMEOUT_S,
        },
        "tasks": tasks,
    }
    if overlay is not None and overlay.deployment.resources:  # only when declared: other bundles stay byte-identical
        bundle["resources"] = [r.model_dump() for r in overlay.deployment.resources]
    section = getattr(overlay, "runtime", None) if ovl is not None else None
    if ovl is not None and section is not None:  # likewise
        bundle["runtime"] = runtime_section(section.model_dump(), Path(ovl.path).parent)
    return bundle, prompt_texts


def runtime_section(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """The overlay's ``runtime:`` as the bundle keeps it: the fields given, paths made absolute
    (they are relative to the overlay file, as ``--env-file`` paths are to theirs: one rule,
    :func:`merlin.spec.run_environment.rebase`)."""
    from merlin.spec.run_environment import rebase

    return {key: rebase(key, value, base) for key, value in raw.items() if value not in (None, [], {}, False)}


def render_brief(bundle: dict[str, Any], task: dict[str, Any], target_dir: Path) -> str:
    inputs = bundle["inputs"]
    overlay = inputs["overlay"]["path"] if inputs.get("overlay") else None
    lines = [
        f"# {task['index']:02d}. {task['title']}",
        "",
        f"- Target: `{bundle['target']}`" + (f" (deployment `{bundle['deployment']}`)" if bundle.get("deployment") else ""),
        f"- Task ID: `{task['id']}`; phase {task['phase']}; family {task['family']}",
        f"- Depends on: {', '.join(f'`{d}`' for d in task['depends_on']) or 'nothing'}",
        f"- Repository root: `{task['repo_root']}`; adapter `{task['execution_adapter']}`; mutation policy `{task['mutation_policy']}`",
        f"- Needs a proposal: {'yes' if task['needs_proposal'] else 'no'}",
    ]
    if task.get("prompt_file"):
        lines.append(f"- Prompt: `{task['prompt_file']}`; response expected in `{task['response_file']}`")
    lines += ["", "## Actions", ""] + [f"- {a}" for a in task["actions"]]
    lines += ["", "## Evidence", ""] + [f"- `{e['value']}`: {e['reason']}" for e in task["evidence"]]
    lines += ["", "## Write scope", ""] + [f"- `{w}`" for w in task["write_scope"]]
    lines += ["", "## Acceptance", ""] + [f"- {a}" for a in task["acceptance_checks"]]
    lines += ["", "## Preflight", ""]
    sdks = task["preflight"]["sdk_requirements"]
    lines.append(f"- SDK probes: {', '.join(sdks) if sdks else 'none'}")
    creds = task["credential_requirements"]
    lines.append(
        "- Credentials (environment variables; only presence is recorded): "
        + (", ".join(f"{c['name']} (`${c['env']}`)" for c in creds) if creds else "none")
    )
    lines.append(f"- Device gate: {'yes' if task['preflight']['device_gate'] else 'no'}")
    lines += ["", "## Validation commands", ""]
    for cmd in task["validation_commands"]:
        argv = fill_argv(
            cmd["argv"],
            capability=inputs["capability"]["path"],
            overlay=overlay,
            target_dir=str(target_dir),
            scratch_dir=str(TargetLayout(target_dir).scratch(task["id"])),
        )
        lines.append(f"- `{cmd['id']}`: {cmd['description']}")
        lines.append(f"  `{shlex.join(argv)}`")
    lines += ["", "## Handoff", ""] + [f"- {h}" for h in task["handoff_contract"]]
    return "\n".join(lines) + "\n"


def new_task_record(task_id: str) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "state": st.PLANNED,
        "stage": None,
        "attempts": 0,
        "attempt_started": False,
        "questions_opened": 0,
        "open_question": None,
        "blocked_reason": None,
        "preflight": {"probes": {}, "credentials": {}, "device": None},
        "waivers": {},
        "validations": {},
        "last_validation": None,
        "proposal": None,
        "running": None,
        "history": [],
    }


def initial_state(bundle: dict[str, Any]) -> dict[str, Any]:
    ts = st.now()
    return {
        "schema_version": st.STATE_SCHEMA_VERSION,
        "target": bundle["target"],
        "created_at": ts,
        "updated_at": ts,
        "outcome": st.READY,
        "current_task": None,
        "current_stage": None,
        "open_question_id": None,
        "task_order": [t["id"] for t in bundle["tasks"]],
        "tasks": {t["id"]: new_task_record(t["id"]) for t in bundle["tasks"]},
        "requests": {},
        "consumed_answers": [],
        "target_answers": {},
        "ignored_answers": [],
        "last_execute": None,
        "executes": 0,
    }


@dataclass
class OrchestrateResult:
    target: str
    target_dir: Path
    kept_state: bool
    reset: bool
    archived_to: Path | None
    tasks: int
    completed: int
    prompts_written: list[str] = field(default_factory=list)
    prompts_kept: list[str] = field(default_factory=list)
    prompt_backend: str = DEFAULT_PROMPT_BACKEND

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "target_dir": str(self.target_dir),
            "kept_state": self.kept_state,
            "reset": self.reset,
            "archived_to": str(self.archived_to) if self.archived_to else None,
            "tasks": self.tasks,
            "completed": self.completed,
            "prompt_backend": self.prompt_backend,
            "prompts_written": self.prompts_written,
            "prompts_kept": self.prompts_kept,
            "bundle": str(TargetLayout(self.target_dir).bundle),
            "state": str(TargetLayout(self.target_dir).state),
        }


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    diffs = []
    for key in ("capability", "overlay"):
        a, b = old["inputs"].get(key), new["inputs"].get(key)
        if a is None and b is None:
            continue
        if a is None or b is None:
            diffs.append(f"{key}: {a['path'] if a else 'none'} -> {b['path'] if b else 'none'}")
        elif a["path"] != b["path"]:
            diffs.append(f"{key} path: {a['path']} -> {b['path']}")
        elif a["sha256"] != b["sha256"]:
            diffs.append(f"{key} {b['path']} changed (sha256 {a['sha256'][:12]}... -> {b['sha256'][:12]}...)")
    if old.get("prompt_backend") != new.get("prompt_backend"):
        diffs.append(f"prompt backend: {old.get('prompt_backend')} -> {new.get('prompt_backend')}")
    if [t["id"] for t in old["tasks"]] != [t["id"] for t in new["tasks"]]:
        diffs.append("task list: " + ", ".join(t["id"] for t in old["tasks"]) + " -> " + ", ".join(t["id"] for t in new["tasks"]))
    return diffs


def _archive(layout: st.Layout) -> Path | None:
    """Move the previous run's state, answers, logs and responses to history/<time>/."""
    stamp = st.now().replace(":", "").replace("-", "").replace(".", "")
    dest = layout.history / stamp
    moved = False
    items = [layout.state, layout.task_states, layout.requests, layout.answers, layout.logs, layout.scratch_root, layout.proposals]
    items += sorted(layout.prompts.glob("*.response.md")) if layout.prompts.is_dir() else []
    for item in items:
        if item.exists():
            target = dest / item.relative_to(layout.root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(item), str(target))
            moved = True
    return dest if moved else None


def _write_prompts(
    layout: st.Layout, old_bundle: dict[str, Any] | None, bundle: dict[str, Any], texts: dict[str, str], progress: Progress | None
) -> tuple[list[str], list[str]]:
    """Write prompt packets; a file that differs from what merlin last generated was edited by hand: keep it."""
    old_sha = {t["id"]: t.get("prompt_sha256") for t in (old_bundle or {}).get("tasks", [])}
    written, kept = [], []
    for task in bundle["tasks"]:
        if not task.get("prompt_file"):
            continue
        path = layout.root / task["prompt_file"]
        text = texts[task["id"]]
        if path.exists():
            current = hashlib.sha256(path.read_bytes()).hexdigest()
            if current not in (old_sha.get(task["id"]), task["prompt_sha256"]):
                kept.append(task["prompt_file"])
                if progress:
                    progress(f"kept {task['prompt_file']}: edited by hand (delete it to regenerate)")
                continue
        if write_if_changed(path, text.encode("utf-8")):
            written.append(task["prompt_file"])
    return written, kept


def write_generated(
    layout: st.Layout, bundle: dict[str, Any], texts: dict[str, str], old_bundle: dict[str, Any] | None, progress: Progress | None
) -> tuple[list[str], list[str]]:
    write_if_changed(layout.bundle, dump_json(bundle).encode("utf-8"))
    for task in bundle["tasks"]:
        write_if_changed(layout.root / task["brief_file"], render_brief(bundle, task, layout.root).encode("utf-8"))
    return _write_prompts(layout, old_bundle, bundle, texts, progress)


def orchestrate_locked(
    layout: st.Layout,
    cap: Any,
    ovl: Any | None,
    *,
    prompt_backend: str,
    reset: bool,
    progress: Progress | None = None,
    require_same_backend: bool = True,
) -> OrchestrateResult:
    """Orchestrate with the target lock already held (see ``orchestrate``)."""
    from merlin.targetgen.planner import build_plan, write_plan

    if prompt_backend not in PROMPT_BACKENDS:
        raise BadInput(f"unknown prompt backend {prompt_backend!r} (expected one of: {', '.join(PROMPT_BACKENDS)})")
    plan = build_plan(cap, ovl)
    old_bundle = None
    if layout.bundle.is_file():
        try:
            old_bundle = st.load_bundle(layout)
        except BadInput:
            old_bundle = None
    has_state = layout.state.is_file()
    if old_bundle is not None and not require_same_backend:
        prompt_backend = old_bundle.get("prompt_backend", prompt_backend)
    bundle, texts = build_bundle(cap, ovl, plan, prompt_backend)
    archived = None
    if has_state and not reset:
        if old_bundle is None:
            raise BadInput(
                f"{layout.root}: execution_state.json exists but execution_bundle.json is missing or unreadable; "
                "orchestrate again with `reset` to start over (the old state is archived under history/)",
                argument="reset",
            )
        diffs = _differences(old_bundle, bundle)
        if diffs:
            raise BadInput(
                f"{layout.root}: the inputs changed since execution_bundle.json was written ("
                + "; ".join(diffs)
                + "); progress is kept until you orchestrate again with `reset` (the old state is archived under history/)",
                argument="reset",
            )
        state = st.load_state(layout)
        write_plan(plan, layout.root.parent)
        written, kept = write_generated(layout, bundle, texts, old_bundle, progress)
        st.write_views(layout, state, bundle)
        done = sum(1 for r in state["tasks"].values() if r["state"] == st.COMPLETED)
        return OrchestrateResult(
            bundle["target"], layout.root, True, False, None, len(bundle["tasks"]), done, written, kept, prompt_backend
        )
    if reset and (has_state or layout.answers.exists()):
        archived = _archive(layout)
        st.event(layout, kind="reset", archived_to=str(archived) if archived else None)
        if progress and archived:
            progress(f"archived the previous state to {archived}")
    write_plan(plan, layout.root.parent)
    written, kept = write_generated(layout, bundle, texts, old_bundle, progress)
    state = initial_state(bundle)
    atomic_write_json(layout.state, state)
    st.write_views(layout, state, bundle)
    st.event(layout, kind="orchestrated", target=bundle["target"], tasks=len(bundle["tasks"]), prompt_backend=prompt_backend)
    return OrchestrateResult(
        bundle["target"], layout.root, False, reset, archived, len(bundle["tasks"]), 0, written, kept, prompt_backend
    )
