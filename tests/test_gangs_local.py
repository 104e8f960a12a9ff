"""Gangs on the local engine (docs/retries.md): ``replicas=N`` starts N supervised processes
together, each with its index, the count and one coordinator address; one replica failing or
lost stops the others, and the gang counts one attempt against the right budget."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest

from cli_runner import run_cli
from merlin.controlplane import ControlPlane
from merlin.ledger import RunStatus

# One write per line: replicas share one log, and print() under PYTHONUNBUFFERED (set here and in
# CI) writes each argument by itself, so two replicas' lines interleave mid-line.
PRINT = (
    "import os, sys, time; e = os.environ; "
    "sys.stdout.write(f\"replica {e['MERLIN_REPLICA_INDEX']} of {e['MERLIN_REPLICA_COUNT']} coordinator {e['MERLIN_COORDINATOR_ADDRESS']}\\n\"); sys.stdout.flush(); "
)


@pytest.fixture
def cp(tmp_path: Path) -> ControlPlane:
    return ControlPlane(tmp_path / "state")


def wait_for(pred, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def coordinators(log: str) -> dict[str, str]:
    return {m[0]: m[2] for m in re.findall(r"replica (\d+) of (\d+) coordinator (\S+)", log)}


def test_a_gang_of_two_starts_together_with_one_coordinator(cp: ControlPlane, tmp_path: Path) -> None:
    rec = cp.submit([sys.executable, "-c", PRINT], target="demo", workflow="gang", replicas=2, wait=True, timeout=60)
    assert rec.status == RunStatus.SUCCEEDED, rec.message
    seen = coordinators(cp.logs(rec.run_id))
    assert set(seen) == {"0", "1"} and len(set(seen.values())) == 1
    assert re.fullmatch(r"127\.0\.0\.1:\d+", seen["0"])
    att = rec.attempts[-1]
    assert [(r.index, r.status, r.exit_code) for r in att.replicas] == [(0, RunStatus.SUCCEEDED, 0), (1, RunStatus.SUCCEEDED, 0)]
    status = run_cli("ray", "jobs", "status", "--state-root", str(cp.root), rec.run_id)
    lines = [line for line in status.stdout.splitlines() if re.match(r"\s*[01]\s*\W?\s*succeeded", line)]
    assert len(lines) == 2, status.stdout


def test_a_killed_replica_stops_the_other_and_the_gang_is_retried_once(cp: ControlPlane, tmp_path: Path) -> None:
    code = PRINT + "time.sleep(300 if e['MERLIN_ATTEMPT'] == '1' else 0)"
    rec = cp.submit([sys.executable, "-c", code], target="demo", workflow="gang", replicas=2, max_retries_preemption=1, retry_backoff=0.2)
    running = wait_for(lambda: (r := cp.get(rec.run_id)).status == RunStatus.RUNNING and len(r.attempts[-1].replicas) == 2 and r)
    wait_for(lambda: len(coordinators(cp.logs(rec.run_id))) == 2)
    os.kill(running.attempts[-1].replicas[1].pid, signal.SIGKILL)
    done = cp.wait(rec.run_id, timeout=120)
    assert done.status == RunStatus.SUCCEEDED, done.message
    assert len(done.attempts) == 2  # the gang counted one attempt, retried once
    first = done.attempts[0]
    assert first.status == RunStatus.LOST and first.failure_class == "infrastructure" and first.error_type == "REPLICA_LOST"
    by_index = {r.index: r for r in first.replicas}
    assert by_index[1].message == "killed by signal SIGKILL"
    assert by_index[0].message == "stopped: replica 1 ended first" and by_index[0].status == RunStatus.FAILED
    assert [r.status for r in done.attempts[1].replicas] == [RunStatus.SUCCEEDED, RunStatus.SUCCEEDED]


def test_a_failing_replica_is_a_program_failure_of_the_whole_gang(cp: ControlPlane) -> None:
    code = PRINT + "sys.exit(3) if e['MERLIN_REPLICA_INDEX'] == '1' else time.sleep(300)"
    rec = cp.submit([sys.executable, "-c", code], target="demo", workflow="gang", replicas=2, max_retries_preemption=2, wait=True, timeout=60)
    assert rec.status == RunStatus.FAILED
    assert len(rec.attempts) == 1 and rec.attempts[0].failure_class == "program"  # not the preemption budget
    assert rec.attempts[0].exit_code == 3
    assert {r.index: r.message for r in rec.attempts[0].replicas} == {0: "stopped: replica 1 ended first", 1: "exit code 3"}


def test_a_gang_over_its_memory_fails_memory_limit_and_is_not_lost(cp: ControlPlane) -> None:
    """``memory`` holds a gang's whole tree to its replicas' memory together; ended for it, the gang
    failed (a program failure), it was not lost to the infrastructure, so the preemption budget stays."""
    code = "import os, time; n = 150 if os.environ['MERLIN_REPLICA_INDEX'] == '1' else 0; b = bytearray(n * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(60)"
    rec = cp.submit([sys.executable, "-c", code], target="demo", workflow="gang", replicas=2, memory="48MiB", max_retries_preemption=2, wait=True, timeout=60)
    assert rec.status == RunStatus.FAILED and len(rec.attempts) == 1, rec.message
    assert rec.attempts[0].error_type == "MEMORY_LIMIT" and "over its limit of 96.0 MiB" in rec.message, rec.message
