"""The executor's CLI: exit codes, one-line errors, --json shapes, fast imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cli_runner import run_cli
from test_executor import HAL, OK, Spec, ready_spec


def one_line_error(proc: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_cli_imports_stay_lazy() -> None:
    code = "import sys, merlin.cli.app; bad = [m for m in ('jinja2', 'merlin.targetgen.executor', 'merlin.targetgen.prompts') if m in sys.modules]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_bad_inputs_are_one_line_and_exit_2(tmp_path: Path) -> None:
    assert "CAPABILITY file or --target-dir" in one_line_error(run_cli("targetgen", "execute"))
    assert "no such target directory" in one_line_error(run_cli("targetgen", "execute", "--from-dir", str(tmp_path / "nope")))
    assert "no execution_bundle.json" in one_line_error(run_cli("targetgen", "status", "--target-dir", str(tmp_path)))
    assert "no such file" in one_line_error(run_cli("targetgen", "orchestrate", str(tmp_path / "missing.yaml")))
    s = Spec(tmp_path / "spec")
    err = one_line_error(run_cli("targetgen", "orchestrate", str(s.cap), "--prompt-backend", "llm", "--out-dir", str(s.out)))
    assert "'--prompt-backend': 'llm' is not one of 'none', 'manualllm'" in err  # the choices, checked by the CLI
    both = run_cli("targetgen", "execute", str(s.cap), "--from-dir", str(tmp_path))
    assert "not both" in one_line_error(both)


def test_cli_exit_codes_and_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = Spec(tmp_path / "spec")
    s.orchestrate()
    s.set_validations(OK)
    ready_spec(s, monkeypatch)
    s.set_validations([{"id": "boom", "argv": ["false"], "description": "d"}], task_id=HAL)
    target = str(s.target_dir)

    waiting = run_cli("targetgen", "execute", "--from-dir", target, "--json")
    assert waiting.returncode == 10, waiting.stderr
    data = json.loads(waiting.stdout)
    q = data["open_question"]
    assert data["outcome"] == "awaiting_operator" and data["current_task"] == HAL
    assert q["id"] and q["question"] and q["recommended_option"] and all({"id", "label"} <= set(o) for o in q["options"])
    assert data["awaiting_response"] is None

    human = run_cli("targetgen", "execute", "--from-dir", target)
    assert human.returncode == 10 and f"--question-id {q['id']}" in human.stderr and "(recommended)" in human.stderr

    err = one_line_error(run_cli("targetgen", "answer", "--target-dir", target, "--question-id", q["id"], "--choice", "yes"))
    assert "'yes' is not an option" in err
    err = one_line_error(run_cli("targetgen", "answer", "--target-dir", target, "--question-id", "nope", "--choice", "pause"))
    assert "no question 'nope'" in err

    ok = run_cli("targetgen", "answer", "--target-dir", target, "--question-id", q["id"], "--choice", "mark_blocked")
    assert ok.returncode == 0 and "recorded" in ok.stderr
    blocked = run_cli("targetgen", "execute", "--from-dir", target, "--json")
    assert blocked.returncode == 3
    assert json.loads(blocked.stdout)["blocked"][0]["task_id"] == HAL

    table = run_cli("targetgen", "status", "--target-dir", target)
    assert table.returncode == 0 and "blocked" in table.stdout and HAL in table.stdout

    retried = run_cli("targetgen", "retry", "--target-dir", target, "--task", HAL, "--reason", "build fixed", "--json")
    assert retried.returncode == 0 and json.loads(retried.stdout)["retried"] == [{"task_id": HAL, "from_state": "blocked"}]
    assert "nothing to retry" in one_line_error(run_cli("targetgen", "retry", "--target-dir", target))

    s.set_validations(OK, task_id=HAL)
    response = run_cli("targetgen", "execute", "--from-dir", target, "--json")
    assert response.returncode == 10
    pending = json.loads(response.stdout)["awaiting_response"]
    assert pending["task_id"] == HAL and pending["response_file"].endswith(f"prompts/{HAL}.response.md")
    status = json.loads(run_cli("targetgen", "status", "--target-dir", target, "--json").stdout)
    assert status["awaiting_response"] == pending and status["outcome"] == "awaiting_response"


def test_orchestrate_refuses_changed_inputs_with_exit_2(tmp_path: Path) -> None:
    s = Spec(tmp_path / "spec")
    first = run_cli("targetgen", "orchestrate", str(s.cap), "-o", str(s.ovl), "--out-dir", str(s.out), "--json")
    assert first.returncode == 0 and json.loads(first.stdout)["kept_state"] is False
    s.write_overlay(device_probe="true")
    err = one_line_error(run_cli("targetgen", "orchestrate", str(s.cap), "-o", str(s.ovl), "--out-dir", str(s.out)))
    assert "changed since execution_bundle.json was written" in err and "--reset" in err
    reset = run_cli("targetgen", "orchestrate", str(s.cap), "-o", str(s.ovl), "--out-dir", str(s.out), "--reset", "--json")
    assert reset.returncode == 0 and json.loads(reset.stdout)["reset"] is True


def test_status_table_keeps_task_ids_whole_at_80_columns(tmp_path: Path) -> None:
    s = Spec(tmp_path / "spec")
    s.orchestrate()
    s.execute()
    table = run_cli("targetgen", "status", "--target-dir", str(s.target_dir), env={"COLUMNS": "80"})
    assert table.returncode == 0, table.stderr
    # every line fits but a command to paste: one line, never split (the terminal wraps around it)
    assert max(len(line) for line in table.stdout.splitlines() if " targetgen answer " not in line) <= 80
    assert any(line.startswith("  answer: ") and line.endswith("--choice OPTION") for line in table.stdout.splitlines()), table.stdout
    for task_id in ("review_target_spec", "derive_compile_view", "derive_deployment_overlay", HAL, "define_verification_ladder"):
        assert task_id in table.stdout, table.stdout


def test_execute_summary_renders_the_runs_next_steps(tmp_path: Path) -> None:
    """The human summary's commands are the run record's next steps as the CLI renders them (one source)."""
    import json as _json

    from cli_runner import run_cli
    from conftest import EXAMPLES
    from merlin.cli.nextsteps import command
    from merlin.controlplane import ControlPlane

    cap = EXAMPLES / "x86_cpu_baseline" / "capability.yaml"
    ovl = sorted((cap.parent / "overlays").glob("*.yaml"))[0]
    res = run_cli("targetgen", "execute", str(cap), "--overlay", str(ovl), "--out-dir", str(tmp_path / "t"))
    assert res.returncode == 10, res.stderr
    rec = ControlPlane().list_runs()[0]
    want = [f"next: {command(s)}" for s in _json.loads(_json.dumps(rec["next_steps"]))]
    assert want and [line for line in res.stderr.splitlines() if line.startswith("next: ")] == want
    assert "answer with:" not in res.stderr
