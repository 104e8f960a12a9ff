"""TargetGen's operations, as the facade offers them: validate, plan, explain,
orchestrate, status, answer, retry, and the review of a task awaiting a response.

Each returns a typed result (the executor's own, or a small record here with
``to_json()``), raises :class:`merlin.errors.MerlinError`, and never prints. A pair's
warnings are checked strictly when ``strict`` is set: the warnings are the error
(``spec_error``, exit 2), naming the argument ``strict``. Running the executor as a
recorded run is :mod:`merlin.integrations.targetgen_runs`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from merlin.errors import BadInput, NotFound

if TYPE_CHECKING:  # pragma: no cover
    from merlin.control.plane import Plane
    from merlin.spec.loader import Loaded
    from merlin.targetgen.executor import AnswerResult, ExecuteResult, OrchestrateResult, RetryResult
    from merlin.targetgen.layout import TargetLayout

PathArg = str | Path


def load_checked(capability: PathArg, overlay: PathArg | None, strict: bool) -> tuple[Loaded, Loaded | None, list[str]]:
    """The pair, loaded (errors raise), and its located warnings (``merlin.spec.pairing``): an overlay of
    another target, a compile_target naming another target, a probe nobody asks for. With ``strict`` the
    warnings are the error."""
    from merlin.spec import load_pair
    from merlin.spec.pairing import spec_warnings, strict_error

    cap, ovl = load_pair(capability, overlay)
    warnings = spec_warnings(cap, ovl)
    failure = strict_error(warnings, "strict") if strict else None
    if failure is not None:
        raise failure
    return cap, ovl, warnings


def default_out_dir() -> Path:
    """Where targets are written when no output root is given (``$MERLIN_TARGETGEN_OUT``)."""
    from merlin.targetgen.executor import default_out_dir as out

    return out()


def targetgen_target(capability: PathArg | None, overlay: PathArg | None, out_dir: PathArg | None, from_dir: PathArg | None) -> tuple[str, Path]:
    """(target name, target directory) of an execute, before it runs (spec errors surface here)."""
    if from_dir is not None:
        from merlin.targetgen import state as st

        layout = st.open_target_dir(from_dir)
        return str(st.load_bundle(layout)["target"]), layout.root
    from merlin.spec import load_pair

    if capability is None:
        raise BadInput("give a capability spec or a target directory")
    cap, _ovl = load_pair(capability, overlay)
    name = cap.model.target.name
    return name, (Path(out_dir or default_out_dir()) / name).resolve()


def targetgen_needs(capability: PathArg | None, overlay: PathArg | None, from_dir: PathArg | None) -> list[str]:
    """The overlay's ``resources:`` as lease requests (``POOL:COUNT,k=v``): from the bundle of
    ``from_dir``, else from the overlay file. Empty when the target needs no lab hardware."""
    if from_dir is not None:
        from merlin.targetgen import state as st

        needs = st.load_bundle(st.open_target_dir(from_dir)).get("resources") or []
    elif overlay is not None and capability is not None:
        from merlin.spec import load_pair

        _cap, ovl = load_pair(capability, overlay)
        needs = [r.model_dump() for r in ovl.model.deployment.resources] if ovl else []
    else:
        needs = []
    return [f"{n['pool']}:{n.get('count', 1)}" + "".join(f",{k}={v}" for k, v in sorted((n.get("labels") or {}).items())) for n in needs]


#: the overlay's ``runtime:`` keys (those of ``--env-file``) -> the facade's runtime keys
RUNTIME_KEYS = {"requirements": "requirements_file", "lock": "lock_file"}


def targetgen_runtime(cp: Plane, tdir: Path) -> dict[str, Any] | None:
    """The runtime of a TargetGen run: the overlay's ``runtime:`` section (kept in the bundle)
    plus merlin itself (merlin.envs.selfwheel), or None when the overlay has none (the run then
    runs with this interpreter, as before)."""
    from merlin.targetgen import state as st

    section = st.load_bundle(st.open_target_dir(tdir)).get("runtime")
    if not section:
        return None
    from merlin.envs.selfwheel import requirement

    runtime = {RUNTIME_KEYS.get(k, k): v for k, v in section.items()}
    from merlin.envs.build import install_args

    index_args = install_args({"packages": ["-"], **{k: runtime.get(k) for k in ("index_url", "find_links", "no_index")}}, cp.layout.root, {})[1:]
    runtime["packages"] = [*(runtime.get("packages") or []), requirement(cp.layout.merlin_wheels, index_args)]
    return runtime


# ------------------------------------------------------------------ records


@dataclass(frozen=True)
class Validation:
    """A valid pair: its target, its deployment (if an overlay was given) and its warnings."""

    capability: str
    overlay: str | None
    target: str
    deployment: str | None
    warnings: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"valid": True, "warnings": self.warnings, "target": self.target, "capability": self.capability, "overlay": self.overlay, "deployment": self.deployment}


@dataclass(frozen=True)
class WrittenPlan:
    """A plan written under ``<out_dir>/<target>/``."""

    target: str
    target_dir: Path
    warnings: list[str]
    files: list[str]
    changed: list[str]
    support_plan: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        sp = self.support_plan
        return {
            "target": self.target, "target_dir": str(self.target_dir), "warnings": self.warnings, "files": self.files, "changed": self.changed,
            "integration_styles": sp["integration_styles"], "primary_integration": sp["primary_integration"],
            "target_families": sp["target_families"], "required_layers": sp["required_layers"],
        }  # fmt: skip


@dataclass(frozen=True)
class Explanation:
    """The plan with the reason behind every decision (nothing written)."""

    warnings: list[str]
    support_plan: dict[str, Any]
    task_graph: dict[str, Any]
    verification_manifest: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"warnings": self.warnings, "support_plan": self.support_plan, "task_graph": self.task_graph, "verification_manifest": self.verification_manifest}


@dataclass(frozen=True)
class ReviewPrompt:
    """The prompt packet of a task awaiting a response, and where its response goes."""

    target_dir: Path
    task_id: str
    state: str
    prompt_file: Path
    prompt: str
    response_file: Path

    def to_json(self) -> dict[str, Any]:
        return {
            "target_dir": str(self.target_dir), "task_id": self.task_id, "state": self.state, "prompt_file": str(self.prompt_file),
            "prompt": self.prompt, "response_file": str(self.response_file), "response_exists": self.response_file.is_file(),
        }  # fmt: skip


@dataclass(frozen=True)
class ReviewResponse:
    """A response written where the executor reads it."""

    target_dir: Path
    task_id: str
    response_file: Path
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return {"target_dir": str(self.target_dir), "task_id": self.task_id, "response_file": str(self.response_file), "bytes": self.bytes}


@dataclass(frozen=True)
class ReviewQueue:
    """What waits on a person across targets: open questions and tasks awaiting a response."""

    targets: list[dict[str, Any]] = field(default_factory=list)
    questions: list[dict[str, Any]] = field(default_factory=list)
    awaiting_response: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"targets": self.targets, "questions": self.questions, "awaiting_response": self.awaiting_response}


# --------------------------------------------------------------- operations


def validate(capability: PathArg, overlay: PathArg | None = None, *, strict: bool = False) -> Validation:
    cap, ovl, warnings = load_checked(capability, overlay, strict)
    return Validation(
        capability=str(capability), overlay=None if overlay is None else str(overlay), target=cap.model.target.name,
        deployment=ovl.model.deployment.name if ovl else None, warnings=warnings,
    )


def plan(capability: PathArg, overlay: PathArg | None = None, *, out_dir: PathArg | None = None, strict: bool = False) -> WrittenPlan:
    from merlin.targetgen.planner import build_plan, write_plan

    cap, ovl, warnings = load_checked(capability, overlay, strict)
    result = build_plan(cap, ovl)
    target_dir, changed = write_plan(result, Path(out_dir) if out_dir else default_out_dir())
    return WrittenPlan(result.target, target_dir, warnings, sorted(result.files()), changed, result.support_plan)


def explain(capability: PathArg, overlay: PathArg | None = None, *, strict: bool = False) -> Explanation:
    from merlin.targetgen.planner import build_plan

    cap, ovl, warnings = load_checked(capability, overlay, strict)
    result = build_plan(cap, ovl)
    return Explanation(warnings, result.support_plan, result.task_graph, result.verification_manifest)


def orchestrate(
    capability: PathArg, overlay: PathArg | None = None, *, out_dir: PathArg | None = None, prompt_backend: str | None = None, reset: bool = False, strict: bool = False
) -> OrchestrateResult:
    from merlin.targetgen import executor as ex

    if strict:
        load_checked(capability, overlay, strict)
    kw: dict[str, Any] = {"prompt_backend": prompt_backend} if prompt_backend is not None else {}
    return ex.orchestrate(capability, overlay, out_dir=out_dir, reset=reset, **kw)


def status(target_dir: PathArg) -> ExecuteResult:
    from merlin.targetgen import executor as ex

    return ex.status(target_dir)


def answer(target_dir: PathArg, question_id: str, choice: str, note: str | None = None) -> AnswerResult:
    from merlin.targetgen import executor as ex

    return ex.answer(target_dir, question_id, choice, note=note)


def retry(target_dir: PathArg, task: str | None = None, reason: str | None = None) -> RetryResult:
    from merlin.targetgen import executor as ex

    return ex.retry(target_dir, task, reason=reason)


def target_dirs(out_dir: PathArg | None = None) -> list[Path]:
    """The orchestrated target directories under an output root (default: :func:`default_out_dir`)."""
    from merlin.targetgen.layout import TargetLayout

    root = Path(out_dir) if out_dir is not None else default_out_dir()
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if TargetLayout(p).state.is_file() and TargetLayout(p).bundle.is_file())


def review_queue(target_dir: PathArg | None = None) -> ReviewQueue:
    """Open operator questions and tasks awaiting a response: of one target, or of every target under the output root."""
    out = ReviewQueue()
    for d in [Path(target_dir)] if target_dir is not None else target_dirs():
        data = status(d).to_json()
        where = {"target": data["target"], "target_dir": data["target_dir"]}
        out.targets.append({**where, "outcome": data["outcome"], "current_task": data["current_task"], "current_stage": data["current_stage"]})
        out.questions.extend({**q, **where} for q in data["open_questions"])
        if data["awaiting_response"]:
            out.awaiting_response.append({**data["awaiting_response"], **where})
    return out


def _contract(target_dir: PathArg, task_id: str | None) -> tuple[TargetLayout, dict[str, Any], dict[str, Any]]:
    """(layout, task contract, task record) of the given task or the one awaiting a response."""
    from merlin.targetgen import state as st

    layout = st.open_target_dir(target_dir)
    bundle = st.load_bundle(layout)
    state = st.load_state(layout)
    contracts = {c["id"]: c for c in bundle["tasks"]}
    if task_id is None:
        task_id = next((c["id"] for c in bundle["tasks"] if state["tasks"][c["id"]]["state"] == st.AWAITING_RESPONSE), None)
        if task_id is None:
            raise NotFound(f"{layout.root}: no task is awaiting a response")
    if task_id not in contracts:
        raise BadInput(f"{layout.root}: no task {task_id!r} (tasks: {', '.join(contracts)})")
    return layout, contracts[task_id], state["tasks"][task_id]


def review_prompt(target_dir: PathArg, task_id: str | None = None) -> ReviewPrompt:
    """The prompt packet of ``task_id`` (default: the task awaiting a response)."""
    from merlin.ledger.paths import inside

    layout, c, rec = _contract(target_dir, task_id)
    if not c.get("prompt_file"):
        raise BadInput(f"{c['id']} has no prompt packet (it needs no proposal)")
    path = inside(layout.root, c["prompt_file"], argument=None)
    if not path.is_file():
        raise NotFound(f"{path}: the prompt packet is not written yet; run targetgen_execute (it writes a missing one)")
    response = inside(layout.root, c["response_file"], argument=None)
    return ReviewPrompt(layout.root, c["id"], rec["state"], path, path.read_text(encoding="utf-8", errors="replace"), response)


def review_respond(target_dir: PathArg, task_id: str, text: str, *, by: str) -> ReviewResponse:
    """Write the response of a task awaiting one, atomically where the executor reads it; ``by`` is recorded."""
    from merlin.atomic import atomic_write_text
    from merlin.ledger.paths import inside
    from merlin.targetgen import state as st

    layout, c, rec = _contract(target_dir, task_id)
    if rec["state"] != st.AWAITING_RESPONSE:
        raise BadInput(f"{c['id']} is {rec['state']}, not awaiting_response (see targetgen_status)")
    path = inside(layout.root, c["response_file"], argument=None)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text if text.endswith("\n") else text + "\n")
    st.event(layout, kind="response_written", task=c["id"], by=by, bytes=len(text.encode()))
    return ReviewResponse(layout.root, c["id"], path, path.stat().st_size)
