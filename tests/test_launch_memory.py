"""The env launcher holds a command to its memory limit (``--memory``), as the local supervisor does:
how the Ray engine's jobs get the limit Ray itself only reserves (docs/environments.md)."""

from __future__ import annotations

import subprocess
import sys

from merlin.envs.argv import usage_argv
from merlin.envs.launch import MEMORY_LINE
from merlin.ledger.paths import Layout

HOG = "import time; x = bytearray(400 * 2**20); x[::4096] = b'1' * len(x[::4096]); time.sleep(30)"


def launch(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "merlin.envs.launch", *args], capture_output=True, text=True, timeout=timeout)


def test_a_command_over_its_memory_is_ended_with_one_line_saying_so() -> None:
    res = launch("--memory", str(128 * 2**20), "--quiet", "--", sys.executable, "-c", HOG)
    assert res.returncode == -9, (res.returncode, res.stderr)  # the launcher ends as its command did: SIGKILL
    lines = [x for x in res.stderr.splitlines() if x.startswith(MEMORY_LINE)]
    assert len(lines) == 1 and "over its limit of 128.0 MiB" in lines[0], res.stderr


def test_a_command_under_its_memory_keeps_its_exit_code_and_the_usage_is_written(tmp_path) -> None:
    layout = Layout(tmp_path / "state")
    layout.usage_report("run-1", 1).parent.mkdir(parents=True)
    argv = usage_argv(layout, "run-1", 1, memory=256 * 2**20)
    assert argv[-4:] == ["--memory", str(256 * 2**20), "--quiet", "--"]
    res = subprocess.run([*argv, sys.executable, "-c", "import sys; sys.exit(3)"], capture_output=True, text=True, timeout=20)
    assert res.returncode == 3 and MEMORY_LINE not in res.stderr, res.stderr
    assert layout.usage_report("run-1", 1).is_file()
    assert "--usage" not in usage_argv(layout, "run-1", 1, usage=False, memory=1)  # nodes that do not see the state root


def test_a_bad_memory_value_is_one_line_and_exit_2() -> None:
    res = launch("--memory", "lots", "--", "true")
    assert res.returncode == 2 and res.stderr.strip() == "merlin-env: a memory limit is a positive number of bytes, not 'lots'", res.stderr
