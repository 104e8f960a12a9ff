"""What ``./scripts/test`` runs: the whole suite by default (as CI does), the inner loop with ``--quick``."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from conftest import REPO

INSTALLS = {
    "test_unreachable_registry_is_a_clear_error_and_retried_next_time",
    "test_two_first_runs_at_once_install_once",
    "test_ctrl_c_while_creating_the_venv_says_so_and_the_next_run_installs",
    "test_ctrl_c_during_pip_install_says_so_exits_130_and_the_next_run_finishes",
}


def _collected(*args: str) -> set[str]:
    res = subprocess.run([str(REPO / "scripts" / "test"), *args, "--collect-only", "-q", "-n", "0", "-p", "no:randomly",
                          "tests/test_wrapper.py"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return {line.split("::")[-1] for line in res.stdout.splitlines() if "::" in line}


@pytest.mark.slow  # several seconds: left out of --quick
def test_quick_skips_the_real_installs_and_the_full_run_keeps_them() -> None:
    full, quick = _collected(), _collected("--quick")
    assert INSTALLS <= full, "the full suite runs every real install of the wrapper"
    assert not INSTALLS & quick and quick == full - INSTALLS, "--quick leaves out exactly the installs (in this file)"


def test_ci_runs_the_full_suite() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    calls = [line.strip() for line in ci.splitlines() if re.match(r"\s*\./scripts/test\b", line)]
    assert calls == ["./scripts/test"], calls  # no --quick, no -m: the installs and the Ray tests run in CI


def test_the_quick_selection_is_the_documented_one() -> None:
    script = (REPO / "scripts" / "test").read_text()
    readme = (REPO / "README.md").read_text()
    expr = re.search(r'args\+=\(-m "([^"]+)"\)', script)
    assert expr is not None and expr.group(1) == "not slow and not ray and not wrapper_install"
    assert "./scripts/test --quick" in readme
    assert Path(REPO / "pyproject.toml").read_text().count("wrapper_install:") == 1  # a registered marker
