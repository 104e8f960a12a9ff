"""Helpers for the tests that use the real local Slurm (scripts/services start).

Skips with a clear reason only where Slurm is not installed or not running.
All Slurm/SSH/PBS end-to-end tests share the two nodes (and the machine's two
cores), so they take turns: they are one xdist group, which ``./scripts/test``
runs on one worker (tests/xdist_schedule.py), and ``slurm_turn`` holds a file
lock in the run's shared temp dir (so they take turns under any other
distribution too) and bounds each test with a deadline (SIGALRM), after which
the test fails and its teardown still stops what it started.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

#: merlin's scripts never run `ray stop` in any form (a bare one ends every Ray on the node, other users' too)
BARE_STOP = re.compile(r"\bray\s+stop\b")

OBJECT_STORE = 100 * 1024 * 1024
#: one end-to-end test's bound (a 2-node start is ~20-40 s on a quiet 2-core machine)
E2E_DEADLINE = 240
#: how long a test may wait for its turn on the nodes
TURN_TIMEOUT = 900


@pytest.fixture
def slurm_turn(request: pytest.FixtureRequest) -> Iterator[None]:
    """One Slurm/SSH end-to-end test at a time across xdist workers, each bounded."""
    from filelock import FileLock

    from tests.ray_fixtures import shared_dir

    deadline = E2E_DEADLINE

    def overdue(_signum, _frame):
        raise TimeoutError(f"{request.node.name}: over its {deadline}s end-to-end deadline")

    with FileLock(str(shared_dir(request.config) / "slurm-tests.lock"), timeout=TURN_TIMEOUT):
        previous = signal.signal(signal.SIGALRM, overdue)
        signal.alarm(deadline)
        try:
            yield
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)


def slurm_problem() -> str | None:
    """None if a usable 2-node Slurm answers, else why not."""
    if shutil.which("sbatch") is None or shutil.which("squeue") is None:
        return "Slurm is not installed (apt-get install slurmctld slurmd slurm-client munge; see .ci/run)"
    try:
        res = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %t"], capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return "sinfo timed out: slurmctld is not answering (start it with scripts/services start)"
    if res.returncode != 0:
        return f"Slurm is not running ({res.stderr.strip()[:120]}); start it with scripts/services start"
    up = [ln for ln in res.stdout.splitlines() if ln.split()[-1].rstrip("*") in ("idle", "alloc", "mix", "comp")]
    if len(up) < 2:
        return f"Slurm has fewer than 2 usable nodes ({res.stdout.strip()!r}); see scripts/services"
    return None


def require_slurm() -> None:
    why = slurm_problem()
    if why:
        pytest.skip(why)


def wait_for(predicate, timeout: float, poll: float = 0.25, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout:.0f}s")
        time.sleep(poll)


@pytest.fixture
def slurm_root(slurm_turn: None, tmp_path: Path) -> Iterator[Path]:
    """A state root whose Slurm clusters are all stopped at teardown (scancel), even on failure."""
    require_slurm()
    root = tmp_path / "state"
    yield root
    signal.alarm(0)  # the cleanup below is not the test's time
    from merlin.clusters.registry import backend as backend_for
    from merlin.ledger.store import Ledger

    ledger = Ledger(root)
    for name in ledger.cluster_names() if root.exists() else []:
        rec = ledger.read_cluster(name)
        try:
            if rec is not None and rec.kind != "local" and rec.status not in ("stopped", "failed", "expired"):
                backend_for(rec.kind, ledger).stop(rec, grace=2.0)
            elif rec is not None and rec.kind == "local" and rec.status != "stopped":
                from merlin.controlplane import ControlPlane

                ControlPlane(root).stop_cluster(name, grace=2.0)
        finally:
            # whatever stop managed: the allocation itself never outlives the test
            if rec is not None and rec.kind == "slurm" and rec.scheduler_job_id:
                subprocess.run(["scancel", rec.scheduler_job_id], capture_output=True, timeout=30)


def cancel_quietly(cp, run_id: str) -> None:
    """Cancel a run at a test's end, whatever state the test left it in (its retry keeper then
    starts nothing more); a cancel that cannot reach its cluster must not hide the test's failure."""
    from merlin.errors import MerlinError

    try:
        cp.cancel(run_id)
    except MerlinError:
        pass
