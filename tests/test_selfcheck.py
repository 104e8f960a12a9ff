"""targetgen execute runs merlin's own validate/plan checks in this process, with the
output and exit code the subprocess gave (and the same command in the record)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from conftest import EXAMPLES
from merlin.targetgen.probes import run_command
from merlin.targetgen.selfcheck import run_inprocess

CAP = EXAMPLES / "x86_cpu_baseline" / "capability.yaml"


def test_validate_and_plan_run_in_process(tmp_path: Path) -> None:
    log = tmp_path / "task.log"
    ok = run_command([sys.executable, "-m", "merlin", "targetgen", "validate", str(CAP)], timeout=60, log_path=log, cwd=tmp_path, header="v")
    assert ok.passed and "is valid" in ok.excerpt
    assert "in-process" in log.read_text()  # no second interpreter was started
    plan = run_command([sys.executable, "-m", "merlin", "targetgen", "plan", str(CAP), "--out-dir", str(tmp_path / "p"), "--json"], timeout=60, cwd=tmp_path)
    assert plan.passed and json.loads(plan.excerpt)["target"] == "x86_cpu_baseline"
    assert (tmp_path / "p" / "x86_cpu_baseline" / "support_plan.json").is_file()


def test_a_bad_spec_fails_with_the_cli_exit_code(tmp_path: Path) -> None:
    bad = tmp_path / "cap.yaml"
    bad.write_text("schema_version: 1\n")
    code, text = run_inprocess([sys.executable, "-m", "merlin", "targetgen", "validate", str(bad)], tmp_path) or (None, "")
    assert code == 2 and str(bad) in text


def test_other_commands_still_run_as_subprocesses(tmp_path: Path) -> None:
    assert run_inprocess([sys.executable, "-m", "merlin", "targetgen", "explain", str(CAP)], tmp_path) is None
    assert run_inprocess(["python3", "-c", "pass"], tmp_path) is None
    assert run_inprocess([sys.executable, "-m", "merlin", "targetgen", "validate", str(CAP), "--bogus"], tmp_path) is None
