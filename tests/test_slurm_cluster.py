"""Ray clusters on the real local Slurm (2 nodes on 127.0.0.11/.12; scripts/services start).

Everything here is real: sbatch, srun steps, scancel, Ray heads and workers,
Ray jobs. Skipped only where Slurm is not installed or not running.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.slurm_support import BARE_STOP, OBJECT_STORE, cancel_quietly, slurm_root, slurm_turn, wait_for  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm")]


def _backend(root: Path):
    from merlin.clusters.slurm import SlurmBackend
    from merlin.ledger.store import Ledger

    return SlurmBackend(Ledger(root))


def _alive_ray_nodes(rec) -> list[dict]:
    from merlin.clusters.auth import headers_for
    from merlin.clusters.net import get_json

    data = get_json(rec.address, "/api/v0/nodes?limit=100&detail=true", headers_for(rec.auth, rec.name))
    return [n for n in data["data"]["result"]["result"] if n["state"] == "ALIVE"]


def _left_of(rec, snapshot: set[int]) -> list[int]:
    """Processes of the cluster still alive: recorded/snapshotted pids, or naming a node temp dir."""
    from merlin.clusters import procs

    alive = {p for p in snapshot if procs.alive(p)}
    for p in procs.all_procs():
        if p.state not in ("Z", "X") and any(d in procs.cmdline(p.pid) for d in rec.node_temp_dirs):
            alive.add(p.pid)
    return sorted(alive)


def _job_state(job_id: str) -> str:
    out = subprocess.run(["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"], capture_output=True, text=True).stdout
    return out.strip() or "GONE"


@pytest.mark.ray  # the shared head is the other Ray that must survive
def test_two_node_cluster_runs_a_job_and_stop_leaves_nothing_while_another_ray_survives(slurm_root: Path, ray_cluster):
    """The bystander is the run's shared local Ray cluster (one head fewer to start on 2 cores)."""
    from merlin.clusters import procs
    from merlin.clusters.auth import headers_for
    from merlin.clusters.net import probe
    from merlin.controlplane import ControlPlane
    from merlin.ledger.store import Ledger
    from tests.ray_fixtures import ray_processes_of

    other = Ledger(ray_cluster.state_root).read_cluster(ray_cluster.name)
    assert other is not None and probe(other.address, headers_for(other.auth, other.name)).state == "ok"
    b = _backend(slurm_root)
    progress: list[str] = []
    rec, started = b.start("hpc2", nodes=2, object_store_memory=OBJECT_STORE, wait=True, progress=progress.append)
    assert started and rec.status == "active", rec.message
    assert any(line.startswith("queued") or "allocated" in line for line in progress), progress
    nodes = _alive_ray_nodes(rec)
    assert len(nodes) == 2
    assert sorted(n["node_ip"] for n in nodes) == ["127.0.0.11", "127.0.0.12"]
    # resources from the allocation (1 CPU per Slurm node), not Ray's view of the host
    assert rec.resources["CPU"] == 2.0
    assert rec.nodes == ["n1", "n2"] and rec.head_address == "127.0.0.11"
    # merlin's own batch script is kept in the state root
    script = Path(rec.state_dir) / "batch.sh"
    assert "srun --overlap" in script.read_text() and not BARE_STOP.search(script.read_text())
    # token auth: the file is 0600 and the API refuses a request without it
    assert stat.S_IMODE(os.stat(rec.auth.token_file).st_mode) == 0o600
    assert probe(rec.address).state == "auth"
    assert all(len(d) < 40 for d in rec.node_temp_dirs) and len(rec.node_temp_dirs) == 2

    cp = ControlPlane(slurm_root)
    run = cp.submit(["python3", "-c", "print('merlin-on-slurm')"], target="hpc", workflow="smoke", engine="ray", cluster="hpc2")
    done = cp.wait(run.run_id, timeout=180)
    assert done.status == "succeeded", done.message
    assert "merlin-on-slurm" in cp.logs(run.run_id)

    res = run_cli("ray", "cluster", "status", "--name", "hpc2", "--state-root", str(slurm_root))
    assert res.returncode == 0, res.stderr
    assert "slurm" in res.stdout and rec.scheduler_job_id in res.stdout and rec.address in res.stdout

    b._load_handshake(rec)
    snapshot = b._members(rec)
    assert len(snapshot) >= 4
    stopped = b.stop(rec, grace=3.0)
    assert stopped.status == "stopped", stopped.message
    assert _left_of(stopped, snapshot) == []
    assert not any(Path(d).exists() for d in rec.node_temp_dirs)
    assert _job_state(rec.scheduler_job_id) in ("CANCELLED", "GONE")
    # the other Ray on this machine is untouched
    assert probe(other.address, headers_for(other.auth, other.name)).state == "ok"
    assert ray_processes_of(other.temp_dir) and all(procs.alive(p.pid, p.start_ticks) for p in other.processes)


def test_three_nodes_on_a_two_node_partition_stays_queued_with_partitionconfig(slurm_root: Path):
    b = _backend(slurm_root)
    rec, started = b.start("big", nodes=3, wait=False)
    assert started and rec.status == "queued"
    rec = wait_for(lambda: (r := b.observe(rec)).scheduler_reason == "PartitionConfig" and r, 30, what="reason PartitionConfig")
    assert rec.status == "queued"
    res = run_cli("ray", "cluster", "status", "--name", "big", "--state-root", str(slurm_root))
    assert res.returncode == 3, res.stdout + res.stderr
    assert "PartitionConfig" in res.stdout and "queued" in res.stdout
    # `jobs why` of a run on the queued cluster names the scheduler layer and Slurm's reason
    from merlin.controlplane import ControlPlane

    run = ControlPlane(slurm_root).submit(["true"], target="hpc", workflow="queued", engine="ray", cluster="big")
    why = run_cli("ray", "jobs", "why", run.run_id, "--json", "--state-root", str(slurm_root))
    assert why.returncode == 0, why.stderr
    sched = [c for c in json.loads(why.stdout)["conditions"] if c["layer"] == "scheduler"]
    assert len(sched) == 1 and sched[0]["code"] == "scheduler_queued"
    assert "PartitionConfig" in sched[0]["message"] and rec.scheduler_job_id in sched[0]["message"]
    assert "fewer nodes" in sched[0]["hint"]
    assert {"action": "stop_cluster", "args": {"name": "big"}} in sched[0]["next_steps"]
    # the cluster layer: not active yet, and the step that starts it again is Slurm's, with its options
    (down,) = [c for c in json.loads(why.stdout)["conditions"] if c["code"] == "cluster_not_active"]
    start = down["next_steps"][0]
    assert start["action"] == "start_cluster" and start["args"]["kind"] == "slurm" and start["args"]["options"]["nodes"] == 3
    stopped = b.stop(rec, grace=1.0)
    assert stopped.status == "stopped"
    assert _job_state(rec.scheduler_job_id) in ("CANCELLED", "GONE")


def test_external_scancel_is_noticed_its_runs_become_lost_and_a_retry_starts_the_allocation_again(slurm_root: Path):
    """An allocation cancelled outside merlin: its runs are lost; one with an infrastructure budget is
    retried on a new allocation that its retry keeper submits as the cluster was recorded (docs/retries.md)."""
    pytest.importorskip("ray")
    from merlin.controlplane import ControlPlane

    b = _backend(slurm_root)
    rec, _ = b.start("one", nodes=1, object_store_memory=OBJECT_STORE, wait=True)
    assert rec.status == "active", rec.message
    cp = ControlPlane(slurm_root)
    long = cp.submit(["sleep", "600"], target="hpc", workflow="long", engine="ray", cluster="one")
    again = ["bash", "-c", 'if [ "$MERLIN_ATTEMPT" = 1 ]; then sleep 600; fi; echo "attempt $MERLIN_ATTEMPT on $(hostname)"']
    kept = cp.submit(again, target="hpc", workflow="kept", engine="ray", cluster="one", max_retries_preemption=1, retry_backoff=0.2)
    try:
        for run in (long, kept):
            wait_for(lambda run=run: cp.status(run.run_id).status.value == "running", 120, what="run running")
        b._load_handshake(rec)
        snapshot = b._members(rec)
        first_job = rec.scheduler_job_id
        subprocess.run(["scancel", first_job], check=True)  # from outside merlin
        rec = wait_for(lambda: (r := b.observe(rec)).status in ("stopped", "failed") and r, 90, what="cancel noticed")
        assert rec.status == "stopped" and "cancelled outside merlin" in rec.stop_reason
        assert long.run_id in rec.lost_runs and kept.run_id in rec.lost_runs
        lost = cp.get(long.run_id)
        assert lost.status.value == "lost" and "cancelled outside merlin" in lost.message
        assert _left_of(rec, snapshot) == []
        done = cp.wait(kept.run_id, timeout=200)
        assert done.status.value == "succeeded", done.message
        assert [a.status.value for a in done.attempts] == ["lost", "succeeded"] and done.attempts[0].failure_class == "infrastructure"
        assert "attempt 2 on" in cp.logs(kept.run_id)
        notes = [e.cause for e in cp.events(kept.run_id) if e.event == "note"]
        assert any("its slurm cluster ended under the last attempt" in n and "starts it again as recorded" in n for n in notes), notes
        now = cp.ledger.read_cluster("one")
        assert now.status == "active" and now.scheduler_job_id != first_job and now.kind == "slurm"
        assert cp.get(long.run_id).status.value == "lost"  # no budget: not retried
    finally:
        cancel_quietly(cp, kept.run_id)  # its keeper never starts an allocation after the test


def test_idle_watchdog_ends_the_allocation(slurm_root: Path):
    pytest.importorskip("ray")
    b = _backend(slurm_root)
    rec, _ = b.start("idle", nodes=1, object_store_memory=OBJECT_STORE, idle_timeout=10, wait=True)
    assert rec.status == "active" and rec.idle_timeout == 10
    rec = wait_for(lambda: (r := b.observe(rec)).status == "stopped" and r, 120, poll=1.0, what="idle stop")
    assert rec.stop_reason == "idle"
    assert "idle" in rec.message
    assert _job_state(rec.scheduler_job_id) in ("CANCELLED", "GONE")
