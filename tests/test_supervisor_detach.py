"""A single-threaded submitter (the CLI) forks the local supervisor instead of starting a new
interpreter: a child forks it and exits, so the supervisor is nobody's child, in a session of
its own, and everything a supervisor guarantees holds (its record, cancel, its death making the
run lost and ending the command). ``MERLIN_SUPERVISOR_FORK=0`` keeps the new interpreter."""

from __future__ import annotations

import json
import os
import signal

import psutil

from conftest import run_cli
from merlin.controlplane import ControlPlane
from merlin.ledger import RunStatus
from process_support import wait_until


def submit(*command: str, env: dict[str, str] | None = None) -> dict:
    res = run_cli("ray", "jobs", "submit", "--engine", "local", "--target", "t", "--workflow", "w", "--json", "--", *command, env=env)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_the_cli_forks_a_detached_supervisor_that_records_cancels_and_is_reaped() -> None:
    cp = ControlPlane()
    rec = submit("sleep", "30")
    run_id = rec["run_id"]
    running = wait_until(lambda: (r := cp.get(run_id)).status == RunStatus.RUNNING and r)
    sup = running.attempts[-1].supervisor_pid
    proc = psutil.Process(sup)
    assert "jobs submit" in " ".join(proc.cmdline()), proc.cmdline()  # a fork of the CLI, not a new interpreter
    assert os.getsid(sup) == sup and proc.ppid() != os.getpid()  # its own session; not this process's child
    assert running.attempts[-1].supervisor_start == cp.get(run_id).attempts[-1].supervisor_start is not None
    res = run_cli("ray", "jobs", "cancel", run_id)
    assert res.returncode == 0, res.stderr
    assert cp.get(run_id).status == RunStatus.CANCELLED
    wait_until(lambda: gone(sup), timeout=15)  # ended, and reaped by whoever adopted it


def test_a_killed_forked_supervisor_makes_the_run_lost_and_takes_its_command_down() -> None:
    cp = ControlPlane()
    run_id = submit("sleep", "30")["run_id"]
    running = wait_until(lambda: (r := cp.get(run_id)).status == RunStatus.RUNNING and r.attempts[-1].pid and r)
    sup, cmd = running.attempts[-1].supervisor_pid, running.attempts[-1].pid
    os.kill(sup, signal.SIGKILL)
    wait_until(lambda: gone(cmd), timeout=15)  # PR_SET_PDEATHSIG, as for a supervisor of its own interpreter
    assert cp.status(run_id).status == RunStatus.LOST


def test_a_fast_command_through_the_forked_supervisor_and_the_new_interpreter_alike() -> None:
    cp = ControlPlane()
    for env in (None, {"MERLIN_SUPERVISOR_FORK": "0"}):
        res = run_cli("ray", "jobs", "submit", "--engine", "local", "--target", "t", "--workflow", "w", "--wait", "--json", "--",
                      "sh", "-c", "echo out; exit 3", env=env)
        rec = json.loads(res.stdout)
        assert res.returncode != 0 and rec["status"] == "failed" and rec["attempts"][-1]["exit_code"] == 3, res.stderr
        assert cp.logs(rec["run_id"]).strip() == "out"
    rid = submit("sleep", "30", env={"MERLIN_SUPERVISOR_FORK": "0"})["run_id"]
    sup = wait_until(lambda: cp.get(rid).attempts[-1].supervisor_pid)
    assert "merlin.engines.local_supervisor" in " ".join(psutil.Process(sup).cmdline())
    cp.cancel(rid)
    wait_until(lambda: gone(sup), timeout=15)
