"""The CLI's error boundary: one line per problem, documented exit codes, JSON for scripts."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from cli_runner import run_cli
from conftest import EXAMPLES

CAP = str(EXAMPLES / "muon_gpu_hal" / "capability.yaml")


@pytest.mark.parametrize(
    "args, expected",
    [
        (["targetgen", "plan", "--bogus"], "merlin targetgen plan: No such option: --bogus (see merlin targetgen plan --help)"),
        (["targetgen", "plan"], "merlin targetgen plan: Missing argument 'CAPABILITY'."),
        (["ray", "cluster", "start-local", "--port", "abc"], "merlin ray cluster start-local: Invalid value for '--port'"),
        (["targetgen", "nosuch"], "merlin targetgen: No such command 'nosuch'."),
    ],
    ids=["unknown-option", "missing-argument", "bad-integer", "unknown-command"],
)
def test_usage_errors_are_one_line_exit_2(args: list[str], expected: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), result.stderr
    assert "Traceback" not in result.stderr and "╭" not in result.stderr


def test_json_errors_are_a_document_on_stdout(tmp_path: Path) -> None:
    result = run_cli("targetgen", "validate", str(tmp_path / "missing.yaml"), "--json")
    assert result.returncode == 2
    doc = json.loads(result.stdout)
    assert doc["exit_code"] == 2 and doc["errors"] == [doc["error"]] and "no such file" in doc["error"]
    assert doc["error"] in result.stderr  # the person still reads it on stderr


def test_json_error_for_unknown_run_is_exit_4(tmp_path: Path) -> None:
    result = run_cli("ray", "jobs", "status", "no-such-run", "--json", "--state-root", str(tmp_path))
    assert result.returncode == 4
    assert json.loads(result.stdout)["exit_code"] == 4


def test_out_dir_that_is_a_file_is_bad_input(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for command in ("plan", "execute"):
        result = run_cli("targetgen", command, CAP, "--out-dir", str(blocker))
        assert result.returncode == 2, (command, result.stderr)
        assert str(blocker) in result.stderr and "internal error" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_written_files_follow_the_umask(tmp_path: Path) -> None:
    result = run_cli("targetgen", "plan", CAP, "--out-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    mask = os.umask(0)
    os.umask(mask)
    mode = stat.S_IMODE((tmp_path / "muon_gpu_hal" / "support_plan.json").stat().st_mode)
    assert mode == 0o666 & ~mask


def test_no_color_means_no_escape_codes_even_on_a_terminal() -> None:
    plain = run_cli("targetgen", "explain", CAP, env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    styled = run_cli("targetgen", "explain", CAP, env={"FORCE_COLOR": "1", "NO_COLOR": ""})
    assert plain.returncode == styled.returncode == 0
    assert "\x1b[" in styled.stdout  # the terminal path really styles...
    assert "\x1b[" not in plain.stdout and "runtime_hal because" in plain.stdout  # ...and NO_COLOR removes every code


def test_missing_fields_say_what_was_expected(tmp_path: Path) -> None:
    spec = tmp_path / "cap.yaml"
    spec.write_text(
        "schema_version: 1\ntarget: {display_name: x}\nplatform: {host_isa: riscv64}\n"
        "execution_model: {kind: simt_gpu}\nisa: {base: x, exposure: {kind: none}}\nruntime: {}\n"
        "access: {model: board, availability_class: always_local}\n"
    )
    result = run_cli("targetgen", "validate", str(spec))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{spec}:2: target.name: required field is missing (expected a string)",
        f"{spec}:4: execution_model.compiler_recovery_stage: required field is missing "
        "(expected one of: post_global_optimization, llvmcpu_codegen, text_isa_export, runtime_only)",
        f"{spec}:6: runtime.required: required field is missing (expected true or false)",
    ]
