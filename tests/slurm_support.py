"""Helpers for the tests that use the real local Slurm (scripts/services start).

Skips with a clear reason only where Slurm is not installed or not running.
All Slurm tests share the two nodes, so they are one xdist group ("slurm").
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

OBJECT_STORE = 100 * 1024 * 1024


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
def slurm_root(tmp_path: Path) -> Iterator[Path]:
    """A state root whose Slurm clusters are all stopped at teardown (scancel), even on failure."""
    require_slurm()
    root = tmp_path / "state"
    yield root
    from merlin.clusters.registry import backend as backend_for
    from merlin.ledger.store import Ledger

    ledger = Ledger(root)
    for name in ledger.cluster_names():
        rec = ledger.read_cluster(name)
        if rec is not None and rec.kind != "local" and rec.status not in ("stopped", "failed", "expired"):
            backend_for(rec.kind, ledger).stop(rec, grace=2.0)
        elif rec is not None and rec.kind == "local" and rec.status != "stopped":
            from merlin.controlplane import ControlPlane

            ControlPlane(root).stop_cluster(name, grace=2.0)
