"""`--wait` on a terminal (merlin.cli.waiting): one status line rewritten in place, then the
run's final line. stderr is a real pseudo-terminal (`pty`), and what it shows is rendered
by a terminal emulator (pyte), so the assertions are about the screen a person sees, not
about escape codes."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyte
import pytest

from conftest import REPO
from merlin.controlplane import ControlPlane

COLUMNS, ROWS = 240, 24


@dataclass
class Tty:
    """A process whose stderr is a pseudo-terminal, and the screens it drew."""

    proc: subprocess.Popen[bytes]
    screen: pyte.Screen
    stream: pyte.ByteStream
    raw: bytes = b""
    #: the cursor's line after every chunk of output: what the status line showed over time
    cursor_lines: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display if line.strip()]


def run_on_tty(args: list[str], state_root: Path, *, until: Callable[[Tty], bool] | None = None, timeout: float = 120) -> Tty:
    """``python -m merlin ARGS`` with stderr on a pty (stdout a pipe: the run id); reads until it
    exits. ``until`` is asked after each chunk; once true the caller's action runs (it returns)."""
    master, slave = pty.openpty()
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": str(COLUMNS), "MERLIN_STATE_ROOT": str(state_root)}
    proc = subprocess.Popen([sys.executable, "-m", "merlin", *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
                            env=env, cwd=REPO, start_new_session=True)
    os.close(slave)
    screen = pyte.Screen(COLUMNS, ROWS)
    screen.set_mode(pyte.modes.LNM)  # the pty turns "\n" into "\r\n" already; keep lines as they come
    tty = Tty(proc, screen, pyte.ByteStream(screen))
    tty.master = master  # type: ignore[attr-defined]
    if _pump(tty, timeout, until):
        return tty
    return _close(tty)


def finish(tty: Tty, timeout: float = 60) -> Tty:
    """Read the rest of a tty that ``until`` stopped early."""
    _pump(tty, timeout, None)
    return _close(tty)


def _pump(tty: Tty, timeout: float, until: Callable[[Tty], bool] | None) -> bool:
    """Feed what the pty shows to the screen until the process is gone (False), or ``until`` holds (True)."""
    master = tty.master  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: every writer of the pty is gone
                data = b""
            if not data:
                return False
            tty.raw += data
            tty.stream.feed(data)
            tty.cursor_lines.append(tty.screen.display[tty.screen.cursor.y].rstrip())
            if until is not None and until(tty):
                return True
        elif tty.proc.poll() is not None:
            return False
    return False


def _close(tty: Tty) -> Tty:
    tty.proc.wait(timeout=30)
    os.close(tty.master)  # type: ignore[attr-defined]
    return tty


def status_seconds(lines: list[str], run_id: str, status: str) -> list[int]:
    pattern = re.compile(rf"^run {re.escape(run_id)}: {status} \((\d+)s\)$")
    return [int(m.group(1)) for line in lines if (m := pattern.match(line))]


def submit_args(*command: str) -> list[str]:
    return ["ray", "jobs", "submit", "--engine", "local", "--target", "tty", "--workflow", "wait", "--wait", "--", *command]


@pytest.mark.slow  # several seconds: left out of --quick
def test_wait_on_a_tty_draws_one_status_line_then_the_final_line(tmp_path: Path) -> None:
    root = tmp_path / "state"
    tty = run_on_tty(submit_args(sys.executable, "-c", "import time; time.sleep(4); print('the-run-output')"), root)
    assert tty.proc.returncode == 0, tty.raw
    run_id = tty.proc.stdout.read().decode().strip() if tty.proc.stdout else ""
    assert ControlPlane(root).get(run_id).status.value == "succeeded"
    # the progress: the status line, rewritten in place, with its clock going up
    running = status_seconds(tty.cursor_lines, run_id, "running")
    assert len(running) >= 3 and running == sorted(running) and running[-1] >= 2, tty.cursor_lines
    assert running[-1] - running[0] >= 2
    # the screen a person is left with: the announcement, the final line and the next step; the
    # status line erased (no "running (3s)" left over, nothing of a longer line after a shorter one)
    announced, final, *after = tty.lines()
    # the status at the announcement: pending, or already running (the CLI forks the supervisor: it can start first)
    assert announced in (f"run {run_id} {st}; waiting for it to end (Ctrl-C stops waiting, not the run)" for st in ("pending", "running")), tty.raw
    assert final == f"run {run_id}: succeeded (exit code 0)", tty.raw
    assert len(after) == 1 and f"merlin ray artifacts list {run_id}" in after[0]  # its next step, as a command
    assert "the-run-output" not in tty.raw.decode()  # on a TTY the status line, not the logs
    assert tty.raw.count(b"\n") == 3  # every status update was drawn on the same line


def test_wait_on_a_tty_for_a_failing_run_ends_with_its_failure(tmp_path: Path) -> None:
    root = tmp_path / "state"
    tty = run_on_tty(submit_args(sys.executable, "-c", "import sys, time; time.sleep(1.2); sys.exit(4)"), root)
    assert tty.proc.returncode == 1
    run_id = tty.proc.stdout.read().decode().strip() if tty.proc.stdout else ""
    screen = tty.lines()
    assert status_seconds(tty.cursor_lines, run_id, "running"), tty.cursor_lines
    assert screen[0].startswith((f"run {run_id} pending; waiting", f"run {run_id} running; waiting")), screen
    # the final line is the failure (exit 1), with its next steps
    assert screen[1].startswith(f"run {run_id} failed (exit code 4)"), screen
    logs, retry = screen[1].find(f"merlin ray jobs logs {run_id}"), screen[1].find(f"merlin ray jobs retry {run_id}")
    assert 0 < logs < retry, screen  # its next steps, as commands, on the same line
    assert not any(": running (" in line for line in screen)


def test_ctrl_c_on_the_status_line_leaves_the_run_running_and_says_how_to_cancel(tmp_path: Path) -> None:
    root = tmp_path / "state"
    started = time.monotonic()

    def running(tty: Tty) -> bool:
        return any(": running (" in line for line in tty.cursor_lines)

    tty = run_on_tty(submit_args(sys.executable, "-c", "import time; time.sleep(60)"), root, until=running)
    os.killpg(tty.proc.pid, signal.SIGINT)  # what Ctrl-C sends to the terminal's foreground group
    finish(tty)
    assert tty.proc.returncode == 130 and time.monotonic() - started < 50
    run_id = tty.proc.stdout.read().decode().strip() if tty.proc.stdout else ""
    cp = ControlPlane(root)
    try:
        assert cp.status(run_id).status.value == "running"  # waiting stopped, the run did not
        *_, last_status, final = tty.lines()
        assert status_seconds([last_status], run_id, "running"), tty.lines()  # the status line as it was
        assert final == (
            f"run {run_id} keeps running; cancel it with `merlin ray jobs cancel {run_id}` (or see it with `merlin ray jobs status {run_id}`)"
        ), tty.lines()
    finally:
        cp.cancel(run_id)
