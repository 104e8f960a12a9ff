"""PBS clusters against a CONTRACT DOUBLE of qsub/qstat/qdel/pbsdsh (tests/doubles/pbs/).

No PBS server installs here, so the double implements the subset merlin uses
on top of the real local Slurm, with formats from the OpenPBS man pages. These
tests prove merlin speaks that contract; they are not a test against PBS.
Parser tests use hand-written outputs in the documented format (tests/data/pbs).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from merlin.clusters.pbs import PbsBackend, exec_hosts, parse_qstat_json, render_qsub
from merlin.errors import BadInput
from tests.slurm_support import BARE_STOP, OBJECT_STORE, cancel_quietly, slurm_root, slurm_turn, wait_for  # noqa: F401  (fixtures)

DATA = Path(__file__).parent / "data" / "pbs"
DOUBLE = Path(__file__).parent / "doubles" / "pbs"


def test_qstat_json_queued_reason_is_the_comment():
    job = parse_qstat_json(json.loads((DATA / "qstat-queued.json").read_text()))["1041.pbs-head"]
    assert job.phase == "pending" and job.reason.startswith("Can Never Run: Insufficient amount")


def test_qstat_json_running_hosts_and_walltime_end():
    job = parse_qstat_json(json.loads((DATA / "qstat-running.json").read_text()))["1042.pbs-head"]
    assert job.phase == "running" and job.nodes == ["cn01", "cn02"]
    assert job.end_time is not None and (job.end_time.hour, job.end_time.minute) == (22, 31)


def test_qstat_json_finished_walltime_and_qdel():
    jobs = parse_qstat_json(json.loads((DATA / "qstat-finished-walltime.json").read_text()))
    assert jobs["1042.pbs-head"].phase == "ended" and jobs["1042.pbs-head"].walltime_hit
    assert jobs["1043.pbs-head"].cancelled and not jobs["1043.pbs-head"].walltime_hit


def test_exec_host_and_nodefile_dedup_in_script(tmp_path: Path):
    assert exec_hosts("n1/0*2+n1/1+n2/0") == ["n1", "n2"]
    script = render_qsub(name="p", nodes=2, state_dir=tmp_path, node_cmd=["py", "-m", "merlin.clusters.slurm_node"], options={"select": "2:ncpus=1", "walltime": "00:10:00"})
    assert "#PBS -l select=2:ncpus=1" in script and "#PBS -l walltime=00:10:00" in script and "#PBS -l place=scatter" in script
    assert "awk '!seen[$0]++' \"$PBS_NODEFILE\"" in script and 'pbsdsh -n "${IDX[$i]}" --' in script
    assert "--cancel qdel" in script and not BARE_STOP.search(script)


def test_pbs_options_are_checked(tmp_path: Path):
    from merlin.ledger.store import Ledger

    b = PbsBackend(Ledger(tmp_path))
    assert b.parse_options({"select": "3:ncpus=2"})[0] == 3
    with pytest.raises(BadInput, match="`select`"):
        b.parse_options({"select": "2:ncpus=1; rm -rf"})
    with pytest.raises(BadInput, match="`kind` pbs does not take `nodes`") as err:
        b.parse_options({"nodes": 2})
    assert err.value.argument == "nodes" and err.value.related == ["kind"]


@pytest.fixture
def pbs_double(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The double's qsub/qstat/qdel/pbsdsh first on PATH (labelled: NOT a PBS server)."""
    monkeypatch.setenv("PATH", f"{DOUBLE}{os.pathsep}{os.environ['PATH']}")
    return DOUBLE


@pytest.mark.slow
@pytest.mark.xdist_group("slurm")
def test_pbs_double_two_hosts_active_a_gang_spreads_over_them_then_qdel_leaves_nothing(slurm_root: Path, pbs_double: Path):
    pytest.importorskip("ray")
    from merlin.clusters import procs
    from merlin.controlplane import ControlPlane
    from merlin.ledger.store import Ledger
    from tests.test_retries_ray import gang_killed_and_retried

    b = PbsBackend(Ledger(slurm_root))
    rec, started = b.start("pbs2", select="2:ncpus=1", walltime="00:20:00", object_store_memory=OBJECT_STORE, wait=True)
    assert started and rec.status == "active", rec.message
    assert rec.kind == "pbs" and rec.scheduler_job_id.endswith(".merlin-double")
    assert rec.nodes == ["n1", "n2"] and rec.walltime_end is not None
    # a gang of 2 spread over the allocation's two hosts (as on Slurm: the Ray cluster inside it places them),
    # one replica SIGKILLed: the other is stopped and the gang retried once
    hosts = gang_killed_and_retried(ControlPlane(slurm_root), "pbs2", "spread")
    assert len(set(hosts)) == 2, hosts
    b._load_handshake(rec)
    snapshot = b._members(rec)
    stopped = b.stop(rec, grace=3.0)
    assert stopped.status == "stopped" and "qdel" in stopped.message
    assert not [p for p in snapshot if procs.alive(p)]


@pytest.mark.slow
@pytest.mark.xdist_group("slurm")
def test_pbs_double_queued_reason_comes_from_comment(slurm_root: Path, pbs_double: Path):
    from merlin.ledger.store import Ledger

    b = PbsBackend(Ledger(slurm_root))
    rec, _ = b.start("pbs3", select="3:ncpus=1", wait=False)
    rec = wait_for(lambda: (r := b.observe(rec)).scheduler_reason and r, 30, what="a queued comment")
    assert rec.status == "queued" and rec.scheduler_reason.startswith("Can Never Run")
    assert b.stop(rec, grace=1.0).status == "stopped"


@pytest.mark.slow
@pytest.mark.xdist_group("slurm")
def test_a_pbs_allocation_qdeled_outside_merlin_is_submitted_again_for_a_run_with_an_infra_budget(slurm_root: Path, pbs_double: Path):
    """As on Slurm (docs/retries.md): the run's retry keeper submits the allocation again as recorded
    (`qsub` of the double, found on the PATH it inherited) and the retry runs there."""
    import subprocess
    import sys

    pytest.importorskip("ray")
    from merlin.controlplane import ControlPlane
    from merlin.ledger.store import Ledger

    b = PbsBackend(Ledger(slurm_root))
    rec, _ = b.start("pbsr", select="1:ncpus=1", walltime="00:20:00", object_store_memory=OBJECT_STORE, wait=True)
    assert rec.status == "active", rec.message
    cp = ControlPlane(slurm_root)
    code = "import os, time; time.sleep(600 if os.environ['MERLIN_ATTEMPT'] == '1' else 0); print('attempt', os.environ['MERLIN_ATTEMPT'])"
    run = cp.submit([sys.executable, "-c", code], target="hpc", workflow="pbs-retry", engine="ray", cluster="pbsr", max_retries_preemption=1, retry_backoff=0.2)
    try:
        wait_for(lambda: cp.status(run.run_id).status.value == "running", 120, what="run running")
        first = rec.scheduler_job_id
        subprocess.run(["qdel", first], check=True)  # from outside merlin
        done = cp.wait(run.run_id, timeout=180)
        assert done.status.value == "succeeded", done.message
        assert [a.status.value for a in done.attempts] == ["lost", "succeeded"], [a.error_message for a in done.attempts]
        again = cp.ledger.read_cluster("pbsr")
        assert again.status == "active" and again.kind == "pbs" and again.scheduler_job_id != first
        assert any("its pbs cluster ended under the last attempt" in e.cause for e in cp.events(run.run_id) if e.event == "note")
    finally:
        cancel_quietly(cp, run.run_id)  # its keeper never submits an allocation after the test
