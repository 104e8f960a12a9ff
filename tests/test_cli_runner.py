"""The in-process CLI helper answers as the CLI process does, and gives back what it borrowed."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from cli_runner import run_cli as run_here
from conftest import run_cli as run_process

CASES = [
    ("--version",),
    ("ray", "jobs", "list", "--json"),
    ("ray", "jobs", "status", "no-such-run", "--json"),
    ("ray", "jobs", "submit", "--engine", "local", "--target", "demo", "--workflow", "w", "--env", "1BAD=x", "--json", "--", "true"),
    ("ray", "jobs", "list", "--no-such-flag"),
    ("ray", "no-such-group"),
]


@pytest.mark.parametrize("args", CASES, ids=lambda a: " ".join(a))
def test_in_process_answers_as_the_process_does(args: tuple[str, ...], tmp_path: Path) -> None:
    env = {"MERLIN_STATE_ROOT": str(tmp_path / "state")}
    here, there = run_here(*args, env=env), run_process(*args, env=env)
    assert (here.returncode, here.stdout, here.stderr) == (there.returncode, there.stdout, there.stderr)


def test_a_json_error_is_one_document_per_call(tmp_path: Path) -> None:
    env = {"MERLIN_STATE_ROOT": str(tmp_path / "state")}
    for _ in range(2):  # a second call starts as a fresh process would (no JSON document emitted yet)
        res = run_here("ray", "jobs", "status", "no-such-run", "--json", env=env)
        assert res.returncode != 0 and json.loads(res.stdout)["exit_code"] == res.returncode


def test_the_call_gives_back_env_cwd_argv_umask_and_streams(tmp_path: Path) -> None:
    def now() -> tuple:
        umask = os.umask(0o022)
        os.umask(umask)
        return dict(os.environ), os.getcwd(), list(sys.argv), sys.stdout, sys.stderr, sys.stdin, umask

    before = now()
    res = run_here("--version", env={"MERLIN_PROBE": "1"}, cwd=tmp_path)
    assert res.returncode == 0 and res.stdout.startswith("merlin ")
    assert now() == before


def test_output_of_a_child_process_is_captured(tmp_path: Path) -> None:
    """fd 1 of the call is the captured file: what a child of the command prints is in stdout."""
    root = str(tmp_path / "state")
    inv = tmp_path / "lab.yaml"
    inv.write_text("schema_version: 1\nitems:\n  - id: board-01\n    pool: board\n")
    assert run_here("ray", "resources", "define", str(inv), "--state-root", root).returncode == 0
    res = run_here("ray", "resources", "run", "--state-root", root, "board:1", "--",
                   sys.executable, "-c", "import os, sys; print('child', os.environ['MERLIN_LEASE_ITEMS']); sys.exit(5)")
    assert res.returncode == 5, res.stderr
    assert res.stdout.strip() == "child board-01" and "lease " in res.stderr
