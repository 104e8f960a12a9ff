"""The executor's state machine, one transition per test: preflight probes,
credentials, device gate, validations, responses, branch gate, answers,
retry, orchestrate-again and reset. Driven through the Python API on a small
spec written into tmp_path; validation commands are swapped for fast ones in
the bundle where a test is not about them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from merlin.errors import BadInput
from merlin.targetgen import executor as ex

TOKEN_ENV = "MERLIN_TEST_LAB_TOKEN_7F3A"
TASKS = ["review_target_spec", "derive_compile_view", "derive_deployment_overlay", "implement_runtime_hal", "define_verification_ladder"]
HAL = "implement_runtime_hal"


def capability(
    *, credentials: bool = True, device_gate: bool = True, sdks: tuple[str, ...] = ("fake_sdk",), model: str = "remote_device"
) -> dict[str, Any]:
    access: dict[str, Any] = {
        "model": model,
        "availability_class": "lab_hardware",
        "sdk_requirements": list(sdks),
        "verification_gates": ["compile_only"] + (["device_query"] if device_gate else []),
    }
    if credentials:
        access["credential_requirements"] = [{"name": "lab_token", "env": TOKEN_ENV}]
    return {
        "schema_version": 1,
        "target": {"name": "labgpu", "display_name": "Lab GPU"},
        "platform": {"host_isa": "x86_64", "environments": ["runtime-driver"]},
        "execution_model": {"kind": "simt_gpu", "compiler_recovery_stage": "runtime_only"},
        "isa": {"base": "spirv64", "features": ["vulkan"], "exposure": {"kind": "hal_runtime"}},
        "runtime": {"required": True, "driver": {"backend_id": "labgpu"}},
        "access": access,
    }


class Spec:
    """A capability + overlay in tmp_path with controllable probes."""

    def __init__(self, root: Path, **cap_kw: Any) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.sdk_marker = root / "sdk_installed"
        self.cap = root / "capability.yaml"
        self.cap.write_text(yaml.safe_dump(capability(**cap_kw)))
        self.ovl = root / "overlays" / "lab.yaml"
        self.ovl.parent.mkdir(exist_ok=True)
        self.out = root / "out"
        self.write_overlay()

    def write_overlay(self, device_probe: str | None = "__default__", timeout_s: float = 5) -> None:
        if device_probe == "__default__":
            device_probe = f"test -f {self.root / 'device_up'}"
        preflight: dict[str, Any] = {"probes": {"fake_sdk": f"test -f {self.sdk_marker}"}, "timeout_s": timeout_s}
        if device_probe:
            preflight["device_probe"] = device_probe
        self.ovl.write_text(yaml.safe_dump({"schema_version": 1, "deployment": {"name": "lab", "mode": "runtime-driver", "preflight": preflight}}))

    @property
    def target_dir(self) -> Path:
        return (self.out / "labgpu").resolve()

    def orchestrate(self, **kw: Any) -> Any:
        return ex.orchestrate(self.cap, self.ovl, out_dir=self.out, **kw)

    def execute(self) -> ex.ExecuteResult:
        return ex.execute(self.target_dir)

    def bundle(self) -> dict[str, Any]:
        return json.loads((self.target_dir / "execution_bundle.json").read_text())

    def state(self) -> dict[str, Any]:
        return json.loads((self.target_dir / "execution_state.json").read_text())

    def task(self, task_id: str = HAL) -> dict[str, Any]:
        return self.state()["tasks"][task_id]

    def set_validations(self, commands: list[dict[str, Any]], task_id: str | None = None) -> None:
        """Swap validation commands in the bundle (execute --from-dir reads them from there)."""
        bundle = self.bundle()
        for t in bundle["tasks"]:
            if task_id is None or t["id"] == task_id:
                t["validation_commands"] = commands
        (self.target_dir / "execution_bundle.json").write_text(json.dumps(bundle))

    def answer(self, choice: str, question_id: str | None = None) -> None:
        qid = question_id or ex.status(self.target_dir).open_question["id"]
        ex.answer(self.target_dir, qid, choice)

    def respond(self, task_id: str = HAL, text: str = "Proposal: add the labgpu HAL driver.\n\nDetails follow.") -> None:
        (self.target_dir / "prompts" / f"{task_id}.response.md").write_text(text)


OK = [{"id": "ok", "argv": ["true"], "description": "always passes"}]


@pytest.fixture
def spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Spec:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    s = Spec(tmp_path / "spec")
    s.orchestrate()
    s.set_validations(OK)
    return s


def ready_spec(spec: Spec, monkeypatch: pytest.MonkeyPatch) -> Spec:
    """Every preflight check of the HAL task passes."""
    spec.sdk_marker.touch()
    (spec.root / "device_up").touch()
    monkeypatch.setenv(TOKEN_ENV, "s3cr3t-value-never-written")
    return spec


# --- orchestrate ---------------------------------------------------------------


def test_orchestrate_writes_bundle_state_briefs_and_prompts(tmp_path: Path) -> None:
    s = Spec(tmp_path / "spec")
    result = s.orchestrate()
    root = s.target_dir
    assert result.target_dir == root and not result.kept_state
    bundle = s.bundle()
    assert [t["id"] for t in bundle["tasks"]] == TASKS
    for i, t in enumerate(bundle["tasks"], start=1):
        assert (root / f"briefs/{i:02d}-{t['id']}.md").is_file()
        assert (root / "task_states" / f"{t['id']}.json").is_file()
        assert t["validation_commands"] and "mutation_policy" in t and "preflight" in t
    hal = next(t for t in bundle["tasks"] if t["id"] == HAL)
    assert hal["prompt_file"] == f"prompts/{HAL}.prompt.md" and hal["response_file"] == f"prompts/{HAL}.response.md"
    assert sorted(p.name for p in (root / "prompts").iterdir()) == [f"{HAL}.prompt.md"]
    assert f"prompts/{HAL}.response.md" in (root / "prompts" / f"{HAL}.prompt.md").read_text()
    assert bundle["inputs"]["capability"]["sha256"] and bundle["inputs"]["overlay"]["path"] == str(s.ovl.resolve())
    state = s.state()
    assert {t: r["state"] for t, r in state["tasks"].items()} == dict.fromkeys(TASKS, "planned")
    assert (root / "support_plan.json").is_file() and (root / "compile_view.yaml").is_file()
    brief = (root / "briefs" / "04-implement_runtime_hal.md").read_text()
    assert TOKEN_ENV in brief and "Device gate: yes" in brief and "{capability}" not in brief


def test_orchestrate_again_keeps_progress_and_refuses_changed_inputs(spec: Spec, monkeypatch: pytest.MonkeyPatch) -> None:
    ready_spec(spec, monkeypatch)
    assert spec.execute().outcome == "awaiting_response"
    before = spec.state()
    again = spec.orchestrate()
    assert again.kept_state and again.completed == 3
    assert spec.state()["tasks"] == before["tasks"]
    # A changed input is never silently accepted: orchestrate and execute both point to --reset.
    spec.cap.write_text(spec.cap.read_text() + "\n# edited\n")
    with pytest.raises(BadInput, match=r"changed since execution_bundle.json was written.*`reset`"):
        spec.orchestrate()
    with pytest.raises(BadInput, match=r"changed since execution_bundle.json was written.*`reset`") as err:
        spec.execute()
    assert err.value.argument == "reset"
    with pytest.raises(BadInput, match=r"`reset`"):
        ex.execute(capability=spec.cap, overlay=spec.ovl, out_dir=spec.out)
    assert spec.state()["tasks"] == before["tasks"]
    # A different prompt backend is a different bundle too.
    with pytest.raises(BadInput, match=r"prompt backend: manualllm -> none"):
        spec.cap.write_text(spec.cap.read_text().replace("\n# edited\n", ""))
        spec.orchestrate(prompt_backend="none")
    # --reset archives the old state (answers, logs, responses) and starts over.
    spec.respond()
    result = spec.orchestrate(reset=True)
    assert result.reset and result.archived_to is not None
    archived = Path(result.archived_to)
    assert (archived / "execution_state.json").is_file() and (archived / "prompts" / f"{HAL}.response.md").is_file()
    assert all(r["state"] == "planned" for r in spec.state()["tasks"].values())
    assert not (spec.target_dir / "prompts" / f"{HAL}.response.md").exists()


def test_hand_edited_prompt_is_never_overwritten(spec: Spec, monkeypatch: pytest.MonkeyPatch) -> None:
    prompt = spec.target_dir / "prompts" / f"{HAL}.prompt.md"
    prompt.write_text(prompt.read_text() + "\nOPERATOR NOTE: use the v2 queue API.\n")
    edited = prompt.read_text()
    assert spec.orchestrate().prompts_kept == [f"prompts/{HAL}.prompt.md"]
    ready_spec(spec, monkeypatch)
    spec.execute()
    assert prompt.read_text() == edited
    spec.orchestrate(reset=True)
    assert prompt.read_text() == edited
    # A deleted prompt is written again by execute when the task reaches it.
    prompt.unlink()
    spec.set_validations(OK)
    assert spec.execute().outcome == "awaiting_response"
    assert prompt.is_file() and "OPERATOR NOTE" not in prompt.read_text()


# --- preflight -----------------------------------------------------------------


def test_probe_failure_opens_a_question_then_continue_records_the_skip(spec: Spec, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "x")
    (spec.root / "device_up").touch()
    result = spec.execute()
    assert result.outcome == "awaiting_operator" and result.exit_code == 10
    assert result.current_task == HAL
    rec = spec.task()
    assert rec["state"] == "preflight_failed" and rec["stage"] == "preflight"
    probe = rec["preflight"]["probes"]["fake_sdk"]
    assert probe["passed"] is False and probe["exit_code"] == 1 and probe["duration_s"] >= 0
    assert probe["command"] == f"test -f {spec.sdk_marker}" and "output_excerpt" in probe
    q = result.open_question
    assert q["kind"] == "probe" and "fake_sdk" in q["question"] and "exit 1" in q["question"]
    ids = [o["id"] for o in q["options"]]
    assert q["recommended_option"] == "continue_without_sdk" and {"retry_after_fix", "pause", "mark_blocked"} <= set(ids)
    assert all(o["label"] for o in q["options"])
    spec.answer("continue_without_sdk")
    result = spec.execute()
    rec = spec.task()
    assert rec["waivers"]["probe:fake_sdk"]["reason"].startswith(f"SDK probe `test -f {spec.sdk_marker}` failed (exit 1)")
    assert result.outcome == "awaiting_response"
    assert result.awaiting_response == {
        "task_id": HAL,
        "prompt_file": str(spec.target_dir / "prompts" / f"{HAL}.prompt.md"),
        "response_file": str(spec.target_dir / "prompts" / f"{HAL}.response.md"),
    }


def test_probe_retry_after_fix_probes_again(spec: Spec, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "x")
    (spec.root / "device_up").touch()
    spec.execute()
    spec.answer("retry_after_fix")
    assert spec.execute().outcome == "awaiting_operator"  # still not installed: asked again
    assert spec.task()["state"] == "preflight_failed"
    spec.sdk_marker.touch()
    spec.answer("retry_after_fix")
    assert spec.execute().outcome == "awaiting_response"
    rec = spec.task()
    assert rec["preflight"]["probes"]["fake_sdk"]["passed"] is True and not rec["waivers"]
    assert rec["attempts"] == 1
    assert rec["questions_opened"] == 2


def test_unknown_sdk_is_probed_as_an_executable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = Spec(tmp_path / "spec", sdks=("python3", "no_such_sdk_zz"), credentials=False, device_gate=False)
    s.orchestrate()
    s.set_validations(OK)
    s.execute()
    probes = s.task()["preflight"]["probes"]
    assert probes["python3"]["passed"] is True and "found at" in probes["python3"]["output_excerpt"]
    assert probes["no_such_sdk_zz"]["exit_code"] == 127
    assert "no_such_sdk_zz or no-such-sdk-zz: not found on PATH" in probes["no_such_sdk_zz"]["output_excerpt"]


def test_credential_presence_only_is_recorded(spec: Spec, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s3cr3t-value-never-written"
    ready_spec(spec, monkeypatch)
    monkeypatch.setenv(TOKEN_ENV, secret)
    assert spec.execute().outcome == "awaiting_response"
    assert spec.task()["preflight"]["credentials"]["lab_token"]["status"] == "present"
    for path in spec.target_dir.rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="replace"), path


def test_missing_credential_asks_and_each_option_does_what_it_says(spec: Spec, monkeypatch: pytest.MonkeyPatch) -> None:
    spec.sdk_marker.touch()
    (spec.root / "device_up").touch()
    result = spec.execute()
    q = result.open_question
    assert q["kind"] == "credential" and TOKEN_ENV in q["question"]
    assert spec.task()["state"] == "awaiting_operator" and spec.task()["stage"] == "credentials"
    assert spec.task()["preflight"]["credentials"]["lab_token"] == {
        "env": TOKEN_ENV,
        "status": "missing",
        "checked_at": spec.task()["preflight"]["credentials"]["lab_token"]["checked_at"],
    }
    # pause: the question stays open
    spec.answer("pause")
    result = spec.execute()
    assert result.outcome == "awaiting_operator" and result.open_question["id"] == q["id"]
    assert spec.state()["requests"][q["id"]]["pauses"]
    # retry_after_fix with the variable now set: present
    monkeypatch.setenv(TOKEN_ENV, "now-set")
    spec.answer("retry_after_fix")
    assert spec.execute().outcome == "awaiting_response"
    assert spec.task()["preflight"]["credentials"]["lab_token"]["status"] == "present"


def test_credential_confirmation_lets_the_task_go_on(spec: Spec) -> None:
    spec.sdk_marker.touch()
    (spec.root / "device_up").touch()
    spec.execute()
    spec.answer("credential_available")
    assert spec.execute().outcome == "awaiting_response"
    cred = spec.task()["preflight"]["credentials"]["lab_token"]
    assert cred["status"] == "missing" and cred["confirmed_by_operator"] is True


def test_device_gate_closes_by_itself_when_the_probe_passes(spec: Spec, monkeypatch: pytest.MonkeyPatch) -> None:
    ready_spec(spec, monkeypatch)
    assert spec.execute().outcome == "awaiting_response"
    device = spec.task()["preflight"]["device"]
    assert device["status"] == "passed" and device["exit_code"] == 0
    assert not [q for q in spec.state()["requests"].values() if q["kind"] == "device"]


def test_device_gate_question_includes_what_the_probe_printed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = Spec(tmp_path / "spec", credentials=False)
    s.write_overlay(device_probe="echo 'no labgpu on bus 3'; exit 4")
    s.orchestrate()
    s.set_validations(OK)
    s.sdk_marker.touch()
    result = s.execute()
    q = result.open_question
    assert q["kind"] == "device" and "no labgpu on bus 3" in q["question"] and "exit 4" in q["question"]
    assert q["recommended_option"] == "continue_without_device"
    assert "device_available" in [o["id"] for o in q["options"]]
    s.answer("device_available")
    assert s.execute().outcome == "awaiting_response"
    assert s.task()["preflight"]["device"]["status"] == "confirmed_by_operator"


def test_device_gate_without_a_probe_asks_and_continue_records_skip(tmp_path: Path) -> None:
    s = Spec(tmp_path / "spec", credentials=False)
    s.write_overlay(device_probe=None)
    s.orchestrate()
    s.set_validations(OK)
    s.sdk_marker.touch()
    q = s.execute().open_question
    assert q["kind"] == "device" and "no device probe is configured" in q["question"]
    s.answer("continue_without_device")
    assert s.execute().outcome == "awaiting_response"
    assert "device" in s.task()["waivers"]


def test_device_probe_timeout_is_a_failure(tmp_path: Path) -> None:
    s = Spec(tmp_path / "spec", credentials=False)
    s.write_overlay(device_probe="sleep 30", timeout_s=0.5)
    s.orchestrate()
    s.set_validations(OK)
    s.sdk_marker.touch()
    q = s.execute().open_question
    assert q["kind"] == "device" and "timed out" in q["question"]
    assert s.task()["preflight"]["device"]["timed_out"] is True


# --- validation ----------------------------------------------------------------


def test_validation_commands_really_run_with_placeholders_filled(spec: Spec, monkeypatch: pytest.MonkeyPatch) -> None:
    ready_spec(spec, monkeypatch)
    code = "import sys, pathlib; pathlib.Path(sys.argv[4], 'seen').write_text(' '.join(sys.argv[1:])); print('checked', sys.argv[1])"
    spec.set_validations(
        [{"id": "echo", "argv": ["{python}", "-c", code, "{capability}", "{overlay_args}", "{target_dir}", "{scratch_dir}"], "description": "d"}],
        task_id="review_target_spec",
    )
    spec.execute()
    rec = spec.task("review_target_spec")
    v = rec["validations"]["echo"]
    assert v["status"] == "passed" and v["exit_code"] == 0 and v["duration_s"] >= 0
    assert f"checked {spec.cap.resolve()}" in v["output_excerpt"]
    seen = (spec.target_dir / "seen").read_text().split()
    assert seen == [str(spec.cap.resolve()), "--overlay", str(spec.ovl.resolve()), str(spec.target_dir), str(spec.target_dir / "scratch" / "review_target_spec")]
    assert rec["last_validation"] == {"id": "echo", "status": "passed", "exit_code": 0}
    log = (spec.target_dir / "logs" / "review_target_spec.log").read_text()
    assert "validation echo" in log and f"checked {spec.cap.resolve()}" in log and "--- exit 0" in log


def test_real_planner_validations_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The planner's own validation commands (validate, replan, parse) pass on a fresh target."""
    s = Spec(tmp_path / "spec")
    s.orchestrate()
    ready_spec(s, monkeypatch)
    s.set_validations(OK, task_id=HAL)  # iree-run-module is not installed here
    assert s.execute().outcome == "awaiting_response"
    for task_id in TASKS[:3]:
        assert all(v["status"] == "passed" for v in s.task(task_id)["validations"].values()), task_id
    assert set(s.task("derive_compile_view")["validations"]) == {"replan", "compile_view_parses"}


def test_failed_validation_asks_then_skip_is_recorded_with_reason(spec: Spec, monkeypatch: pytest.MonkeyPatch) -> None:
    ready_spec(spec, monkeypatch)
    spec.set_validations([{"id": "boom", "argv": ["sh", "-c", "echo broken build >&2; exit 3"], "description": "d"}], task_id=HAL)
    result = spec.execute()
    q = result.open_question
    assert q["kind"] == "validation" and "boom" in q["question"] and "exit 3" in q["question"] and "broken build" in q["question"]
    rec = spec.task()
    assert rec["state"] == "awaiting_operator" and rec["stage"] == "validation"
    assert rec["validations"]["boom"]["status"] == "failed" and rec["validations"]["boom"]["exit_code"] == 3
    assert q["recommended_option"] == "continue_skip_validation"
    spec.answer("continue_skip_validation")
    assert spec.execute().outcome == "awaiting_response"
    v = spec.task()["validations"]["boom"]
    assert v["status"] == "skipped" and "exit 3" in v["skip_reason"] and "continue_skip_validation" in v["skip_reason"]
    status = ex.status(spec.target_dir).to_json()
    hal = next(t for t in status["tasks"] if t["id"] == HAL)
    assert hal["last_validation"]["status"] == "skipped"
    assert hal["skipped"] == [{"what": "validation:boom", "reason": v["skip_reason"]}]


def test_failed_validation_retry_after_fix_runs_it_again(spec: Spec, monkeypatch: pytest.MonkeyPatch) -> None:
    ready_spec(spec, monkeypatch)
    flag = spec.root / "fixed"
    spec.set_validations([{"id": "needs_fix", "argv": ["test", "-f", str(flag)], "description": "d"}], task_id=HAL)
    spec.execute()
    flag.touch()
    spec.answer("retry_after_fix")
    assert spec.execute().outcome == "awaiting_response"
    assert spec.task()["validations"]["needs_fix"]["status"] == "passed"


def test_missing_executable_fails_with_127_and_a_clear_message(spec: Spec, monkeypatch: pytest.MonkeyPatch) -> None:
    ready_spec(spec, monkeypatch)
    spec.set_validations([{"id": "tool", "argv": ["no-such-tool-xyz", "--version"], "description": "d"}], task_id=HAL)
    q = spec.execute().open_question
    v = spec.task()["validations"]["tool"]
    assert v["exit_code"] == 127 and v["status"] == "failed"
    assert "no-such-tool-xyz: command not found on PATH" in v["output_excerpt"]
    assert "command not found" in q["question"]


def test_validation_timeout_is_recorded(spec: Spec, monkeypatch: pytest.MonkeyPatch) -> None:
    ready_spec(spec, monkeypatch)
    spec.set_validations([{"id": "slow", "argv": ["sleep", "30"], "description": "d", "timeout_s": 0.5}], task_id=HAL)
    q = spec.execute().open_question
    v = spec.task()["validations"]["slow"]
    assert v["timed_out"] is True and v["exit_code"] is None and v["status"] == "failed"
    assert "timed out" in q["question"]


# --- responses and the branch gate ------------------------------------------------


def test_response_is_matched_by_task_id_and_recorded(spec: Spec, monkeypatch: pytest.MonkeyPatch) -> None:
    ready_spec(spec, monkeypatch)
    assert spec.execute().outcome == "awaiting_response"
    # A response for another task, an empty response: still waiting.
    (spec.target_dir / "prompts" / "implement_other.response.md").write_text("wrong task")
    (spec.target_dir / "prompts" / f"{HAL}.response.md").write_text("  \n")
    assert spec.execute().outcome == "awaiting_response"
    spec.respond(text="# Title\n\nAdd the labgpu driver with a queue per device.\n\nMore.")
    result = spec.execute()
    assert result.outcome == "awaiting_operator" and result.open_question["kind"] == "branch_gate"
    rec = spec.task()
    assert rec["state"] == "awaiting_operator" and rec["stage"] == "branch_gate"
    assert rec["proposal"]["summary"] == "Add the labgpu driver with a queue per device."
    assert (spec.target_dir / rec["proposal"]["snapshot"]).read_text().startswith("# Title")
    assert result.open_question["recommended_option"] == "continue_without_mutation"


def test_branch_gate_continue_without_mutation_completes(spec: Spec, monkeypatch: pytest.MonkeyPatch) -> None:
    ready_spec(spec, monkeypatch)
    spec.execute()
    spec.respond()
    spec.execute()
    spec.answer("pause")
    assert spec.execute().outcome == "awaiting_operator"
    spec.answer("continue_without_mutation")
    result = spec.execute()
    assert result.outcome == "completed" and result.exit_code == 0
    proposal = spec.task()["proposal"]
    assert proposal["mutation"]["applied"] is False and proposal["response_file"] == f"prompts/{HAL}.response.md"
    assert all(r["state"] == "completed" for r in spec.state()["tasks"].values())


def test_branch_gate_applied_on_branch_records_operator_mutation(spec: Spec, monkeypatch: pytest.MonkeyPatch) -> None:
    ready_spec(spec, monkeypatch)
    spec.execute()
    spec.respond()
    spec.execute()
    spec.answer("applied_on_branch")
    assert spec.execute().outcome == "completed"
    assert spec.task()["proposal"]["mutation"] == {**spec.task()["proposal"]["mutation"], "applied": True, "by": "operator"}


def test_prompt_backend_none_goes_to_the_branch_gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = Spec(tmp_path / "spec")
    s.orchestrate(prompt_backend="none")
    s.set_validations(OK)
    ready_spec(s, monkeypatch)
    result = s.execute()
    assert result.outcome == "awaiting_operator" and result.open_question["kind"] == "branch_gate"
    assert "No proposal was generated" in result.open_question["question"]
    s.answer("continue_without_mutation")
    assert s.execute().outcome == "completed"


# --- blocked and retry -----------------------------------------------------------


def test_mark_blocked_then_retry_returns_to_planned_and_resumes(spec: Spec, monkeypatch: pytest.MonkeyPatch) -> None:
    ready_spec(spec, monkeypatch)
    spec.set_validations([{"id": "boom", "argv": ["false"], "description": "d"}], task_id=HAL)
    spec.execute()
    spec.answer("mark_blocked")
    result = spec.execute()
    assert result.outcome == "blocked" and result.exit_code == 3
    assert result.blocked[0]["task_id"] == HAL and "mark_blocked" in result.blocked[0]["reason"]
    # The other tasks went on; the one depending on the blocked task waits.
    states = {t["id"]: t["state"] for t in result.tasks}
    assert states["define_verification_ladder"] == "planned" and states["derive_deployment_overlay"] == "completed"
    assert spec.execute().outcome == "blocked"  # stays blocked until retried
    retried = ex.retry(spec.target_dir, HAL, reason="fixed the build")
    assert retried.retried == [{"task_id": HAL, "from_state": "blocked"}]
    rec = spec.task()
    assert rec["state"] == "planned" and rec["last_retry"]["reason"] == "fixed the build"
    assert rec["history"][-1]["why"] == "retry: fixed the build"
    spec.set_validations(OK, task_id=HAL)
    assert spec.execute().outcome == "awaiting_response"
    assert spec.task()["attempts"] == 2


def test_retry_without_task_picks_blocked_and_failed_tasks(spec: Spec, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "x")
    spec.execute()
    assert spec.task()["state"] == "preflight_failed"
    qid = spec.task()["open_question"]
    result = ex.retry(spec.target_dir)
    assert [r["task_id"] for r in result.retried] == [HAL] and result.reason == "operator retry"
    assert spec.state()["requests"][qid]["status"] == "superseded"
    with pytest.raises(BadInput, match="nothing to retry") as err:
        ex.retry(spec.target_dir)
    # The hint never suggests --task for a task --task would refuse.
    assert "use --task ID for another task" not in str(err.value)
    assert "completed tasks cannot be retried" in str(err.value)


def test_retry_hint_lists_tasks_that_task_option_accepts(spec: Spec) -> None:
    spec.execute()
    assert spec.task()["state"] == "preflight_failed"
    # Leave the failed task in progress but not failed, as a waiting task would be.
    state = spec.state()
    state["tasks"][HAL]["state"] = "awaiting_response"
    (spec.target_dir / "execution_state.json").write_text(json.dumps(state))
    with pytest.raises(BadInput, match=rf"naming it as `task` restarts a task in progress: {HAL}$") as err:
        ex.retry(spec.target_dir)
    assert "review_target_spec" not in str(err.value).split("in progress:")[1]
    assert [r["task_id"] for r in ex.retry(spec.target_dir, HAL).retried] == [HAL]


def test_retry_errors(spec: Spec) -> None:
    spec.execute()
    with pytest.raises(BadInput, match="no task 'nope'"):
        ex.retry(spec.target_dir, "nope")
    with pytest.raises(BadInput, match="review_target_spec is completed"):
        ex.retry(spec.target_dir, "review_target_spec")
    with pytest.raises(BadInput, match="has not started yet"):
        ex.retry(spec.target_dir, "define_verification_ladder")


# --- answers ----------------------------------------------------------------------


def test_answer_checks_question_and_choice(spec: Spec) -> None:
    spec.execute()
    qid = ex.status(spec.target_dir).open_question["id"]
    with pytest.raises(BadInput, match=r"no question 'nope'.*open questions: " + qid):
        ex.answer(spec.target_dir, "nope", "pause")
    with pytest.raises(BadInput, match=r"'continue_without_sdkk' is not an option.*did you mean 'continue_without_sdk'"):
        ex.answer(spec.target_dir, qid, "continue_without_sdkk")
    ex.answer(spec.target_dir, qid, "continue_without_sdk")
    spec.execute()
    with pytest.raises(BadInput, match=rf"question {qid} is resolved \(answered continue_without_sdk\), not open"):
        ex.answer(spec.target_dir, qid, "pause")


def test_latest_pending_answer_wins_and_stale_answers_are_ignored(spec: Spec) -> None:
    spec.execute()
    qid = ex.status(spec.target_dir).open_question["id"]
    ex.answer(spec.target_dir, qid, "pause")
    second = ex.answer(spec.target_dir, qid, "mark_blocked")
    assert second.replaces == "pause"
    assert [a["choice"] for a in ex.status(spec.target_dir).pending_answers] == ["pause", "mark_blocked"]
    assert spec.execute().outcome == "blocked"
    state = spec.state()
    assert [i["choice"] for i in state["ignored_answers"]] == ["pause"]
    assert not ex.status(spec.target_dir).pending_answers


def test_status_json_shape(spec: Spec) -> None:
    spec.execute()
    data = ex.status(spec.target_dir).to_json()
    for key in ("outcome", "current_task", "open_question", "awaiting_response", "tasks", "open_questions", "exit_code"):
        assert key in data
    assert data["outcome"] == "awaiting_operator" and data["current_task"] == HAL
    q = data["open_question"]
    assert set(q) >= {"id", "question", "options", "recommended_option"}
    assert all(set(o) >= {"id", "label"} for o in q["options"])
    assert [t["id"] for t in data["tasks"]] == TASKS
    assert set(data["tasks"][0]) >= {"state", "stage", "attempts", "last_validation"}
    assert data["lock_holder"] is None


def test_execute_needs_a_valid_target(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no such target directory"):
        ex.execute(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInput, match="no execution_bundle.json"):
        ex.execute(tmp_path / "empty")
    with pytest.raises(BadInput, match="exactly one"):
        ex.execute()


def test_execute_with_a_capability_orchestrates_then_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = Spec(tmp_path / "spec", credentials=False, device_gate=False, sdks=())
    first = ex.execute(capability=s.cap, overlay=s.ovl, out_dir=s.out)
    assert first.orchestrated is not None and first.target_dir == s.target_dir
    assert first.outcome == "awaiting_operator"  # iree-run-module is not installed here
    second = ex.execute(capability=s.cap, overlay=s.ovl, out_dir=s.out)
    assert second.orchestrated is None and second.open_question["id"] == first.open_question["id"]
    with pytest.raises(BadInput, match=r"overlay: .*lab.yaml -> none.*`reset`"):
        ex.execute(capability=s.cap, out_dir=s.out)


def test_continue_without_credential_records_the_skip(spec: Spec) -> None:
    spec.sdk_marker.touch()
    (spec.root / "device_up").touch()
    assert spec.execute().open_question["recommended_option"] == "continue_without_credential"
    spec.answer("continue_without_credential")
    assert spec.execute().outcome == "awaiting_response"
    rec = spec.task()
    assert rec["preflight"]["credentials"]["lab_token"]["status"] == "missing"
    assert TOKEN_ENV in rec["waivers"]["credential:lab_token"]["reason"]


def test_device_retry_after_fix_probes_the_device_again(spec: Spec, monkeypatch: pytest.MonkeyPatch) -> None:
    spec.sdk_marker.touch()
    monkeypatch.setenv(TOKEN_ENV, "x")
    q = spec.execute().open_question
    assert q["kind"] == "device" and spec.task()["preflight"]["device"]["status"] == "failed"
    (spec.root / "device_up").touch()
    spec.answer("retry_after_fix")
    assert spec.execute().outcome == "awaiting_response"
    assert spec.task()["preflight"]["device"]["status"] == "passed"
    assert spec.state()["requests"][q["id"]]["answer"]["choice"] == "retry_after_fix"


def test_an_answer_is_reused_by_later_tasks_hitting_the_same_check(tmp_path: Path) -> None:
    """A cloud target needs its credential in every task: one answer covers the target, each task records it."""
    s = Spec(tmp_path / "spec", model="cloud_service", device_gate=False)
    s.orchestrate()
    s.set_validations(OK)
    s.sdk_marker.touch()
    q = s.execute().open_question
    assert q["task_id"] == "review_target_spec" and q["kind"] == "credential"
    s.answer("continue_without_credential")
    result = s.execute()
    assert result.outcome == "awaiting_response", result.open_questions
    assert [r["kind"] for r in s.state()["requests"].values()] == ["credential"]
    for task_id in TASKS[1:4]:
        waiver = s.task(task_id)["waivers"]["credential:lab_token"]
        assert f"answered for review_target_spec in {q['id']}" in waiver["reason"]
        assert s.task(task_id)["preflight"]["credentials"]["lab_token"]["status"] == "missing"
    # A retried later task still reuses the answer given for the target; the probe itself runs again.
    ex.retry(s.target_dir, "implement_runtime_hal", reason="again")
    assert s.execute().outcome == "awaiting_response"
    assert s.task()["attempts"] == 2 and "credential:lab_token" in s.task()["waivers"]
