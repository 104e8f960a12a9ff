"""Acceptance: every example target and every upstream spec, with each of its
overlays, reaches ``completed`` through a scripted loop (answer the
recommended option, or a confirming one; write the expected response file;
execute again) in a bounded number of steps. Mostly through the Python API
for speed; one target fully through the CLI with --json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli_runner import run_cli
from conftest import example_targets, overlays_for, upstream_targets
from merlin.targetgen import executor as ex


def cases() -> list[Any]:
    out = []
    for kind, targets in (("example", example_targets()), ("upstream", upstream_targets())):
        for cap in targets:
            overlays = overlays_for(cap) or [None]
            for ovl in overlays:
                # Alternate the answering strategy so both kinds of "go on" options are exercised.
                strategy = "recommended" if len(out) % 2 == 0 else "confirm"
                name = f"{kind}-{cap.parent.name}-{ovl.stem if ovl else 'no_overlay'}"
                out.append(pytest.param(cap, ovl, strategy, id=name))
    # The executor without any overlay (no deployment layer, no deployment task).
    firsts = [c for c in example_targets() if overlays_for(c)][:1]
    out += [pytest.param(c, None, "recommended", id=f"example-{c.parent.name}-no_overlay") for c in firsts]
    return out


CASES = cases()
CONFIRMING = ("device_available", "credential_available", "applied_on_branch")


def choose(question: dict[str, Any], strategy: str) -> str:
    ids = [o["id"] for o in question["options"]]
    if strategy == "confirm":
        for option in ids:
            if option in CONFIRMING:
                return option
        return next((o for o in ids if o.startswith("continue")), question["recommended_option"])
    return question["recommended_option"]


def response_text(task_id: str) -> str:
    return f"Proposal for {task_id}: keep the change inside the write scope.\n\nFiles: none changed by this test.\n"


def drive(result: ex.ExecuteResult, strategy: str, max_steps: int) -> tuple[ex.ExecuteResult, int]:
    steps = 0
    while result.outcome != "completed":
        steps += 1
        assert steps <= max_steps, f"no completion after {max_steps} steps; stuck at {result.to_json()}"
        assert result.outcome != "blocked", result.to_json()
        if result.outcome == "awaiting_operator":
            q = result.open_question
            ex.answer(result.target_dir, q["id"], choose(q, strategy))
        elif result.outcome == "awaiting_response":
            Path(result.awaiting_response["response_file"]).write_text(response_text(result.awaiting_response["task_id"]))
        else:  # pragma: no cover - execute always stops at a gate
            raise AssertionError(f"unexpected outcome {result.outcome}")
        result = ex.execute(result.target_dir)
        assert result.exit_code == {"completed": 0, "blocked": 3}.get(result.outcome, 10)
    return result, steps


def test_there_is_something_to_drive() -> None:
    assert any("example-" in p.id for p in CASES), "no example targets found"


@pytest.mark.parametrize(("capability", "overlay", "strategy"), CASES)
def test_scripted_loop_reaches_completed(tmp_path: Path, capability: Path, overlay: Path | None, strategy: str) -> None:
    first = ex.execute(capability=capability, overlay=overlay, out_dir=tmp_path)
    assert first.orchestrated is not None
    bundle = json.loads((first.target_dir / "execution_bundle.json").read_text())
    tasks = bundle["tasks"]
    # Per task at most: probes, credential(s), device, one question per validation, a response, the branch gate.
    bound = sum(4 + len(t["credential_requirements"]) + len(t["validation_commands"]) for t in tasks)
    final, steps = drive(first, strategy, bound)
    assert final.exit_code == 0 and final.current_task is None and final.open_question is None
    state = json.loads((final.target_dir / "execution_state.json").read_text())
    for t in tasks:
        rec = state["tasks"][t["id"]]
        assert rec["state"] == "completed", t["id"]
        # Every validation really ran and is recorded as passed or (honestly) skipped with a reason.
        for cmd in t["validation_commands"]:
            v = rec["validations"][cmd["id"]]
            assert v["status"] in ("passed", "skipped"), (t["id"], v)
            assert isinstance(v["exit_code"], int) or v["timed_out"]
            if v["status"] == "skipped":
                assert v["skip_reason"] and v["failed_result"]
        for sdk in t["preflight"]["sdk_requirements"]:
            assert rec["preflight"]["probes"][sdk]["passed"] or f"probe:{sdk}" in rec["waivers"]
        for cred in t["credential_requirements"]:
            status = rec["preflight"]["credentials"][cred["name"]]["status"]
            assert status in ("present", "missing")
        if t["needs_proposal"]:
            assert rec["proposal"]["summary"].startswith(f"Proposal for {t['id']}")
            assert rec["proposal"]["mutation"]["applied"] is (strategy == "confirm")
        view = json.loads((final.target_dir / "task_states" / f"{t['id']}.json").read_text())
        assert view["state"] == "completed"
    assert not ex.status(final.target_dir).open_questions


def test_one_target_fully_through_the_cli_with_json(tmp_path: Path) -> None:
    candidates = [p for p in CASES if p.values[1] is not None]
    # The smallest example when it is there (fast), else the first target with an overlay.
    preferred = [p for p in candidates if p.id == "example-x86_cpu_baseline-host_local"]
    capability, overlay, _ = (preferred or candidates)[0].values
    out = tmp_path / "out"
    orch = run_cli("targetgen", "orchestrate", str(capability), "--overlay", str(overlay), "--out-dir", str(out), "--json")
    assert orch.returncode == 0, orch.stderr
    target_dir = json.loads(orch.stdout)["target_dir"]
    proc = run_cli("targetgen", "execute", "--from-dir", target_dir, "--json")
    seen = set()
    for _ in range(40):
        data = json.loads(proc.stdout)
        assert proc.returncode == data["exit_code"], proc.stderr
        seen.add(data["outcome"])
        if data["outcome"] == "completed":
            break
        if data["outcome"] == "awaiting_operator":
            assert proc.returncode == 10
            q = data["open_question"]
            assert q["recommended_option"] in [o["id"] for o in q["options"]]
            ans = run_cli("targetgen", "answer", "--target-dir", target_dir, "--question-id", q["id"], "--choice", q["recommended_option"], "--json")
            assert ans.returncode == 0 and json.loads(ans.stdout)["recorded"] is True, ans.stderr
        elif data["outcome"] == "awaiting_response":
            assert proc.returncode == 10
            Path(data["awaiting_response"]["response_file"]).write_text(response_text(data["awaiting_response"]["task_id"]))
        else:
            raise AssertionError(data)
        if len(seen) == 1:
            status = run_cli("targetgen", "status", "--target-dir", target_dir, "--json")
            assert status.returncode == 0 and json.loads(status.stdout)["outcome"] == data["outcome"]
        proc = run_cli("targetgen", "execute", "--from-dir", target_dir, "--json")
    assert data["outcome"] == "completed" and proc.returncode == 0
    assert "awaiting_response" in seen
    table = run_cli("targetgen", "status", "--target-dir", target_dir)
    assert table.returncode == 0 and "completed" in table.stdout
    # Orchestrating again keeps the completed state.
    again = run_cli("targetgen", "orchestrate", str(capability), "--overlay", str(overlay), "--out-dir", str(out))
    assert again.returncode == 0 and "kept the existing state" in again.stderr
    assert json.loads(run_cli("targetgen", "status", "--target-dir", target_dir, "--json").stdout)["outcome"] == "completed"
