"""A local head whose GCS and raylet are SIGKILLed (issue 20 #2, #3).

Ray's autoscaler monitor and log monitor outlive them and the job's processes,
reparented to init, keep running. One look records each run ``lost`` with a
retry step and ends what it left (found by ``MERLIN_RUN_ID`` in their
environment); a retry never starts beside a live earlier attempt. A head that
only does not answer (stopped with SIGSTOP) is not dead: its runs stay
``running``, "could not observe".
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from cli_runner import run_cli
from merlin.clusters import procs
from merlin.clusters.auth import headers_for
from merlin.clusters.net import probe
from merlin.controlplane import ControlPlane
from merlin.errors import Blocked
from merlin.ledger import RunStatus
from ray_fixtures import ray_processes_of
from test_ray_cluster import start_args, wait_status

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _until(check, timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.mark.ray_own_head  # starts, SIGSTOPs and SIGKILLs a head of its own
def test_sigkilled_head_makes_runs_lost_in_one_look_ends_their_processes_and_a_retry_never_doubles(cluster_root: Path) -> None:
    root = cluster_root
    cp = ControlPlane(root)
    assert run_cli(*start_args(root, "hk"), timeout=240).returncode == 0
    crec = cp.ledger.read_cluster("hk")
    token = headers_for(crec.auth, "hk")
    runs = [cp.submit(["sleep", "600"], target="demo", workflow=f"hk{i}", engine="ray", cluster="hk") for i in range(2)]
    for r in runs:
        wait_status(cp, r.run_id, RunStatus.RUNNING)
        _until(lambda r=r: procs.processes_with_env("MERLIN_RUN_ID", r.run_id), what=f"{r.run_id}'s processes")

    # a job submitted with Ray's own SDK, not through merlin (issue 20 #4): status counts it, stop refuses naming it
    from ray.job_submission import JobSubmissionClient

    sdk = JobSubmissionClient(crec.address, headers=token)
    outside = sdk.submit_job(entrypoint="sleep 600")
    _until(lambda: [j["id"] for j in cp.cluster_status("hk", sockets=False).foreign_jobs] == [outside], what="the outside job to be counted")
    with pytest.raises(Blocked) as refused:
        cp.stop_cluster("hk")
    assert outside in refused.value.message and "merlin did not submit" in refused.value.message
    assert all(r.run_id in refused.value.message for r in runs)
    listed = run_cli("ray", "jobs", "list", "--refresh", "--state-root", str(root))  # the runs' list says so too
    assert listed.returncode == 0 and f"cluster 'hk' also runs 1 Ray job(s) merlin did not submit: {outside}" in listed.stderr, listed.stderr
    assert f"ray cluster status --name hk --state-root {root}" in listed.stderr, listed.stderr
    sdk.stop_job(outside)
    _until(lambda: not cp.cluster_status("hk", sockets=False).foreign_jobs, what="the outside job to stop")

    # not dead, only silent: SIGSTOP the whole head; the runs stay running ("could not observe")
    members = ray_processes_of(crec.temp_dir) + [p.pid for p in crec.processes]
    procs.signal_pids(members, signal.SIGSTOP)
    try:
        _until(lambda: probe(crec.address, token).state != "ok", what="the stopped head to stop answering")
        cp.refresh([r.run_id for r in runs])  # one look at both (a silent head holds each request for its timeout)
        for r in runs:
            seen = cp.get(r.run_id)
            assert seen.status == RunStatus.RUNNING and seen.message.startswith("could not observe"), seen.message
    finally:
        procs.signal_pids(members, signal.SIGCONT)
    _until(lambda: cp.status(runs[0].run_id).status == RunStatus.RUNNING and not cp.get(runs[0].run_id).message.startswith("could not"),
           what="the resumed head to answer again")

    # an orphan of runs[1] that surely outlives the head (Ray's own job processes may or may not, by timing)
    orphan = subprocess.Popen(["sleep", "600"], env={**os.environ, "MERLIN_RUN_ID": runs[1].run_id}, start_new_session=True)

    # SIGKILL only the GCS and the raylet, as the probe did: the monitors survive them
    head = [p for p in crec.processes if p.name in ("gcs_server", "raylet")]
    assert {p.name for p in head} == {"gcs_server", "raylet"}
    procs.signal_pids([p.pid for p in head], signal.SIGKILL)
    _until(lambda: not any(procs.alive(p.pid, p.start_ticks) for p in head), what="the GCS and raylet to die")

    # one look: lost, with a retry step, and the job processes are ended
    for r in runs:
        seen = cp.status(r.run_id)
        assert seen.status == RunStatus.LOST, seen.message
        assert "GCS and raylet are gone" in seen.message
        assert any(s["action"] == "retry" for s in seen.model_dump(mode="json")["next_steps"])
        assert procs.processes_with_env("MERLIN_RUN_ID", r.run_id) == []
    assert orphan.wait(timeout=10) is not None  # ended by the look that recorded its run lost
    assert any("processes the lost attempt left running" in e.cause for e in cp.events(runs[1].run_id))
    status = cp.cluster_status("hk")
    assert status.state == "unreachable" and "GCS and raylet are gone" in status.message

    # a process of the run that is still alive (outside Ray's reach): a retry refuses to double it
    stray = subprocess.Popen(["sleep", "600"], env={**os.environ, "MERLIN_RUN_ID": runs[0].run_id})
    try:
        _until(lambda: procs.processes_with_env("MERLIN_RUN_ID", runs[0].run_id) == [stray.pid], what="the stray process")
        with pytest.raises(Blocked) as err:
            cp.retry(runs[0].run_id)
        assert err.value.cause == "survivors" and "still run on this machine" in err.value.message
        cp.cancel(runs[0].run_id)  # ends what the lost run left
        assert stray.wait(timeout=10) is not None
    finally:
        if stray.poll() is None:
            stray.kill()
            stray.wait()

    # one more left by a lost run that no look ended: the cluster's stop finds it by its run id (issue 20 #2)
    late = subprocess.Popen(["sleep", "600"], env={**os.environ, "MERLIN_RUN_ID": runs[1].run_id}, start_new_session=True)
    try:
        _until(lambda: procs.processes_with_env("MERLIN_RUN_ID", runs[1].run_id) == [late.pid], what="the late orphan")
        stopped = cp.stop_cluster("hk", grace=2.0, force=True)
        assert late.wait(timeout=10) is not None
        assert f"its runs had left running on this machine (pids {late.pid})" in stopped.message, stopped.message
    finally:
        if late.poll() is None:
            late.kill()
            late.wait()
