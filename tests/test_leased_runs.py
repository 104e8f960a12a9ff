"""Runs that need hardware (``submit(..., leases=[...])``) on the local engine: recorded
waiting, started by their waiter when the lease is granted, the items in their
environment and record, the lease renewed while they run and released when they end,
fail, are cancelled or die. Real processes, a real lease book."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from merlin.clusters import procs
from merlin.controlplane import ControlPlane
from merlin.errors import BadInput
from merlin.ledger.status import RunStatus

SLOT = [{"id": "fpga-01", "pool": "firesim_fpga", "labels": {"board": "u250"}}]


def until(pred, timeout: float = 30.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(every)
    return pred()


def lease_state(cp: ControlPlane, lid: str) -> str:
    return cp.leases.show(lid)["state"]


@pytest.fixture
def cp(tmp_path: Path) -> ControlPlane:
    cp = ControlPlane(tmp_path / "state")
    cp.leases.define(SLOT)
    return cp


def test_a_leased_run_waits_then_starts_by_itself_with_its_items(cp: ControlPlane, tmp_path: Path) -> None:
    holder = cp.leases.reserve(["firesim_fpga:1"], ttl=120)
    out = tmp_path / "items.txt"
    code = "import os,sys; open(sys.argv[1],'w').write(os.environ['MERLIN_LEASE_ITEMS'] + ' ' + os.environ['MERLIN_LEASE_ID'])"
    rec = cp.submit([sys.executable, "-c", code, str(out)], target="fpga", workflow="lease", engine="local", leases=["firesim_fpga:1"])
    assert rec.status == RunStatus.WAITING and len(rec.leases) == 1
    lid = rec.leases[0]
    assert lease_state(cp, lid) == "waiting"
    assert cp.leases.show(lid)["owner"]["run_id"] == rec.run_id
    # the waiter answers the submitter first, then notes what the lease waits on (a moment later)
    until(lambda: holder["lease_id"] in cp.status(rec.run_id).message)
    time.sleep(1.0)
    again = cp.status(rec.run_id)
    assert again.status == RunStatus.WAITING and not out.exists(), "it must not start while the slot is held"
    assert again.attempt.submission_id is None and "waiting for lease" in again.message and holder["lease_id"] in again.message
    cp.leases.release(holder["lease_id"])  # no further command: the waiter starts it
    done = cp.wait(rec.run_id, timeout=60)
    assert done.status == RunStatus.SUCCEEDED, cp.logs(rec.run_id)
    assert out.read_text() == f"fpga-01 {lid}"
    assert done.leases == [lid] and done.lease_items == ["fpga-01"]
    assert until(lambda: lease_state(cp, lid) == "released", 5), "released within seconds of the run ending"
    events = [e.event for e in cp.events(rec.run_id)]
    assert "lease_granted" in events and "lease_released" in events


@pytest.mark.slow  # several seconds: left out of --quick
def test_the_lease_is_renewed_while_the_run_is_active(cp: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MERLIN_LEASE_TTL", "1")
    rec = cp.submit([sys.executable, "-c", "import time; time.sleep(3.5)"], target="fpga", workflow="renew", engine="local", leases=["firesim_fpga"])
    lid = rec.leases[0]
    assert until(lambda: cp.get(rec.run_id).status == RunStatus.RUNNING, 20)
    first = cp.leases.show(lid)["expires_at"]
    time.sleep(2.0)  # twice the TTL: only renewals keep it
    cp.leases.refresh()
    now = cp.leases.show(lid)
    assert now["state"] == "granted" and now["expires_at"] > first
    assert cp.wait(rec.run_id, timeout=30).status == RunStatus.SUCCEEDED
    assert until(lambda: lease_state(cp, lid) == "released", 5)


def test_cancel_while_waiting_withdraws_the_request_and_never_starts_it(cp: ControlPlane, tmp_path: Path) -> None:
    holder = cp.leases.reserve(["firesim_fpga:1"], ttl=120)
    marker = tmp_path / "ran"
    rec = cp.submit([sys.executable, "-c", f"open({str(marker)!r},'w')"], target="fpga", workflow="cancel", engine="local", leases=["firesim_fpga:1"])
    lid, waiter = rec.leases[0], rec.metadata["lease_waiter_pid"]
    assert cp.cancel(rec.run_id).status == RunStatus.CANCELLED
    assert lease_state(cp, lid) == "cancelled"
    assert until(lambda: not procs.alive(waiter), 10), "the waiter exits once its run is cancelled"
    cp.leases.release(holder["lease_id"])
    time.sleep(0.5)
    assert not marker.exists() and cp.get(rec.run_id).status == RunStatus.CANCELLED


def test_a_failing_or_cancelled_or_killed_run_releases_its_lease(cp: ControlPlane) -> None:
    fail = cp.submit([sys.executable, "-c", "raise SystemExit(3)"], target="fpga", workflow="fail", engine="local", leases=["firesim_fpga"])
    assert cp.wait(fail.run_id, timeout=30).status == RunStatus.FAILED
    assert until(lambda: lease_state(cp, fail.leases[0]) == "released", 5)

    long = [sys.executable, "-c", "import time; time.sleep(120)"]
    run = cp.submit(long, target="fpga", workflow="cancel", engine="local", leases=["firesim_fpga"])
    assert until(lambda: cp.get(run.run_id).status == RunStatus.RUNNING, 20)
    cp.cancel(run.run_id, grace=1)
    assert until(lambda: lease_state(cp, run.leases[0]) == "released", 5)

    killed = cp.submit(long, target="fpga", workflow="kill", engine="local", leases=["firesim_fpga"])
    rec = until(lambda: (r := cp.get(killed.run_id)).status == RunStatus.RUNNING and r, 20)
    os.killpg(rec.attempt.pgid, signal.SIGKILL)  # the command's process dies
    assert until(lambda: lease_state(cp, killed.leases[0]) == "released", 5)
    assert cp.get(killed.run_id).status == RunStatus.FAILED

    orphan = cp.submit(long, target="fpga", workflow="waiterdies", engine="local", leases=["firesim_fpga"])
    rec = until(lambda: (r := cp.get(orphan.run_id)).status == RunStatus.RUNNING and r, 20)
    os.kill(rec.metadata["lease_waiter_pid"], signal.SIGKILL)  # the process holding the lease dies
    assert until(lambda: (cp.leases.refresh(), lease_state(cp, orphan.leases[0]))[1] != "granted", 5)
    cp.cancel(orphan.run_id, grace=1)


def _sigkill_waiter(cp: ControlPlane, run_id: str) -> int:
    pid = cp.get(run_id).metadata["lease_waiter_pid"]
    os.kill(pid, signal.SIGKILL)
    assert until(lambda: not procs.alive(pid), 10)
    return pid


@pytest.mark.slow  # several processes, seconds even on a quiet machine
def test_a_waiting_run_whose_waiter_was_sigkilled_is_recorded_lost_by_the_next_look(cp: ControlPlane) -> None:
    """Its waiter (pid + start time in the record) died before the grant: nothing will ever start it.
    Each way of looking at it (status, jobs status, jobs list --refresh, jobs wait, resources queue)
    records it lost with a true message and a retry; the book cancels the dead waiter's request."""
    import json

    holder = cp.leases.reserve(["firesim_fpga:1"], ttl=300, run_id="someone-else")
    env = dict(os.environ, MERLIN_STATE_ROOT=str(cp.root))
    cli = [sys.executable, "-m", "merlin", "ray"]
    looks = {
        "status": lambda rid: cp.status(rid),
        "jobs status": lambda rid: subprocess.run([*cli, "jobs", "status", rid, "--json"], capture_output=True, text=True, env=env, timeout=60),
        "jobs list --refresh": lambda rid: subprocess.run([*cli, "jobs", "list", "--refresh", "--json"], capture_output=True, text=True, env=env, timeout=60),
        "jobs wait": lambda rid: cp.wait(rid, timeout=10),
        "resources queue": lambda rid: subprocess.run([*cli, "resources", "queue", "--json"], capture_output=True, text=True, env=env, timeout=60),
    }
    for how, look in looks.items():
        rec = cp.submit(["true"], target="fpga", workflow="dead", engine="local", leases=["firesim_fpga:1"])
        assert rec.metadata["lease_waiter_start"] and rec.metadata["lease_waiter_attempt"] == 1
        lid = rec.leases[0]
        assert until(lambda lid=lid: lease_state(cp, lid) == "waiting", 10)
        pid = _sigkill_waiter(cp, rec.run_id)
        assert cp.get(rec.run_id).status == RunStatus.WAITING, "nothing has looked yet"
        look(rec.run_id)
        lost = cp.get(rec.run_id)
        assert lost.status == RunStatus.LOST, (how, lost.status, lost.message)
        assert f"lease waiter (pid {pid}) died before lease {lid} was granted" in lost.message, how
        assert [s.action for s in lost.next_steps][:1] == ["retry"] and lost.waiting_on is None, how
        assert lost.attempt.error_type == "LEASE_WAITER_DIED" and lost.attempt.end_time is not None
        lease = cp.leases.show(lid)
        assert lease["state"] == "cancelled" and f"waiting process {pid}" in lease["reason"], (how, lease["state"], lease["reason"])
        assert "lease_waiter_died" in [e.event for e in cp.events(rec.run_id)]
    assert json.loads(looks["jobs status"](rec.run_id).stdout)["status"] == "lost"
    # a retry queues again with a new waiter, and starts once the slot is free
    again = cp.retry(rec.run_id)
    assert again.status == RunStatus.WAITING and again.metadata["lease_waiter_attempt"] == 2
    assert cp.status(rec.run_id).status == RunStatus.WAITING, "its new waiter runs: not lost"
    cp.leases.release(holder["lease_id"])
    assert cp.wait(rec.run_id, timeout=60).status == RunStatus.SUCCEEDED


def test_a_lease_the_inventory_can_never_grant_is_refused_at_submit(cp: ControlPlane) -> None:
    with pytest.raises(BadInput, match="could never be granted"):
        cp.submit(["true"], target="fpga", workflow="x", engine="local", leases=["firesim_fpga:2"])
    assert cp.list_runs() == []


def test_cli_submit_with_lease(cp: ControlPlane, tmp_path: Path) -> None:
    env = dict(os.environ, MERLIN_STATE_ROOT=str(cp.root))
    ran = subprocess.run(
        [sys.executable, "-m", "merlin", "ray", "jobs", "submit", "--engine", "local", "--target", "fpga", "--workflow", "cli",
         "--lease", "firesim_fpga:1,board=u250", "--json", "--", sys.executable, "-c", "print('hi')"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    import json

    rec = json.loads(ran.stdout)
    assert rec["status"] in ("waiting", "pending", "running", "succeeded") and rec["leases"]
    assert cp.wait(rec["run_id"], timeout=30).status == RunStatus.SUCCEEDED
    bad = subprocess.run([sys.executable, "-m", "merlin", "ray", "jobs", "submit", "--engine", "local", "--target", "fpga", "--workflow", "cli",
                          "--lease", "firesim_fpga:1,board=vcu118", "--", "true"], capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert bad.returncode == 2 and "could never be granted" in bad.stderr


def test_retry_of_a_leased_run_queues_for_a_new_lease(cp: ControlPlane, tmp_path: Path) -> None:
    flag = tmp_path / "second-time"
    code = f"import os,sys; p={str(flag)!r}; ok=os.path.exists(p); open(p,'w'); sys.exit(0 if ok else 1)"
    rec = cp.submit([sys.executable, "-c", code], target="fpga", workflow="retry", engine="local", leases=["firesim_fpga"])
    assert cp.wait(rec.run_id, timeout=30).status == RunStatus.FAILED
    holder = cp.leases.reserve(["firesim_fpga:1"], ttl=120)
    again = cp.retry(rec.run_id)
    assert again.status == RunStatus.WAITING and again.leases and again.leases != rec.leases
    cp.leases.release(holder["lease_id"])
    done = cp.wait(rec.run_id, timeout=30)
    assert done.status == RunStatus.SUCCEEDED and len(done.attempts) == 2 and done.lease_items == ["fpga-01"]
    assert until(lambda: lease_state(cp, again.leases[0]) == "released", 5)


def test_jobs_status_shows_the_first_reason_and_jobs_list_the_holder(cp: ControlPlane) -> None:
    holder = cp.leases.reserve(["firesim_fpga:1"], ttl=120, run_id="someone-else")
    rec = cp.submit(["true"], target="fpga", workflow="why", engine="local", leases=["firesim_fpga:1"])
    env = dict(os.environ, MERLIN_STATE_ROOT=str(cp.root), COLUMNS="250", NO_COLOR="1")
    status = subprocess.run([sys.executable, "-m", "merlin", "ray", "jobs", "status", rec.run_id], capture_output=True, text=True, env=env, timeout=60)
    assert status.returncode == 0, status.stderr
    assert "waiting on" in status.stdout and "lease_item_held" in status.stdout and holder["lease_id"] in status.stdout
    listing = subprocess.run([sys.executable, "-m", "merlin", "ray", "jobs", "list", "-o", "wide"], capture_output=True, text=True, env=env, timeout=60)
    assert "WAITING-ON" in listing.stdout.splitlines()[0]
    row = next(line for line in listing.stdout.splitlines() if rec.run_id in line)
    assert "waiting" in row and f"lease firesim_fpga:1, fpga-01 held by {holder['lease_id']}, run someone-else until" in row
    cp.cancel(rec.run_id)
    cp.leases.release(holder["lease_id"])


def test_waiting_on_is_in_the_record_and_follows_the_queue(cp: ControlPlane) -> None:
    """WAITING-ON comes from the record (written by the waiter), not from a lease-book pass per
    listed row: ``jobs list --json`` and the gateway's listing carry it, and it moves with the queue."""
    import json

    from merlin.control.summaries import summary

    holder = cp.leases.reserve(["firesim_fpga:1"], ttl=120, run_id="someone-else")
    first = cp.submit(["true"], target="fpga", workflow="first", engine="local", leases=["firesim_fpga:1"])
    second = cp.submit(["true"], target="fpga", workflow="second", engine="local", leases=["firesim_fpga:1"])
    behind = f"lease firesim_fpga:1, #2 in queue behind {first.leases[0]}"
    assert until(lambda: cp.get(second.run_id).waiting_on == behind, 10), cp.get(second.run_id).waiting_on
    env = dict(os.environ, MERLIN_STATE_ROOT=str(cp.root))
    listing = subprocess.run([sys.executable, "-m", "merlin", "ray", "jobs", "list", "--json"], capture_output=True, text=True, env=env, timeout=60)
    rows = {r["run_id"]: r for r in json.loads(listing.stdout)}
    assert rows[second.run_id]["waiting_on"] == behind
    assert rows[first.run_id]["waiting_on"].startswith(f"lease firesim_fpga:1, fpga-01 held by {holder['lease_id']}")
    assert summary(rows[second.run_id])["waiting_on"] == behind, "the gateway's runs_list summary shows the same field"
    cp.cancel(first.run_id)  # the queue moves: the second is now first in line, behind the holder only
    assert until(lambda: (cp.get(second.run_id).waiting_on or "").startswith(f"lease firesim_fpga:1, fpga-01 held by {holder['lease_id']}"), 10)
    cp.leases.release(holder["lease_id"])
    done = cp.wait(second.run_id, timeout=60)
    assert done.status == RunStatus.SUCCEEDED and done.waiting_on is None, "only a waiting run waits on something"


# ------------------------------------------------------------------ TargetGen

EXAMPLE = Path(__file__).resolve().parents[1] / "target_specs" / "examples" / "gemmini_rocc_dev"


def test_targetgen_firesim_overlay_queues_for_its_slot_then_runs_then_releases(cp: ControlPlane, tmp_path: Path) -> None:
    """The FireSim overlay declares `resources: [{pool: firesim_fpga, count: 1}]`: execute waits while
    the slot is held (recorded waiting), runs once it is free with the item in its record, and releases it."""
    holder = cp.leases.reserve(["firesim_fpga:1"], ttl=120, run_id="someone-else")
    env = dict(os.environ, MERLIN_STATE_ROOT=str(cp.root))
    argv = [sys.executable, "-m", "merlin", "targetgen", "execute", str(EXAMPLE / "capability.yaml"), "--overlay", str(EXAMPLE / "overlays" / "firesim_u250.yaml"),
            "--out-dir", str(tmp_path / "out"), "--json"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        waiting = until(lambda: [r for r in cp.list_runs() if r["status"] == "waiting" and r["leases"]], 60)
        assert waiting, "execute never recorded its run as waiting"
        run = waiting[0]
        assert cp.ledger.read_request(run["run_id"]).leases == ["firesim_fpga:1"]
        assert until(lambda: holder["lease_id"] in cp.get(run["run_id"]).message, 10), "its message names the holder"
        time.sleep(1.0)
        assert proc.poll() is None and cp.get(run["run_id"]).status == RunStatus.WAITING, "it must not run while the slot is held"
        assert not (tmp_path / "out" / "gemmini_rocc_dev" / "state.json").exists() or cp.get(run["run_id"]).attempt.start_time is None
        cp.leases.release(holder["lease_id"])
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode in (0, 3, 10), err
    rec = cp.get(run["run_id"])
    assert rec.status in (RunStatus.SUCCEEDED, RunStatus.BLOCKED) and rec.outcome, rec.message
    assert rec.lease_items == ["fpga-01"] and rec.attempt.start_time is not None
    lease = cp.leases.show(rec.leases[0])
    assert lease["state"] == "released" and lease["owner"]["run_id"] == rec.run_id
    assert cp.leases.show(holder["lease_id"])["ended_at"] <= lease["granted_at"]
    events = [e.event for e in cp.events(rec.run_id)]
    assert events.index("lease_granted") < events.index("outcome") < events.index("lease_released")


def test_targetgen_overlay_resources_are_in_the_bundle_and_schema(tmp_path: Path) -> None:
    import json

    from merlin.spec import load_pair
    from merlin.targetgen.executor import orchestrate

    _cap, ovl = load_pair(EXAMPLE / "capability.yaml", EXAMPLE / "overlays" / "firesim_u250.yaml")
    assert [r.model_dump() for r in ovl.model.deployment.resources] == [{"pool": "firesim_fpga", "count": 1, "labels": {}}]
    result = orchestrate(EXAMPLE / "capability.yaml", EXAMPLE / "overlays" / "firesim_u250.yaml", out_dir=tmp_path)
    from merlin.integrations.targetgen_runs import targetgen_needs

    assert targetgen_needs(None, None, result.target_dir) == ["firesim_fpga:1"]
    schema = json.loads((EXAMPLE.parents[1] / "schema" / "overlay.schema.json").read_text())
    assert "resources" in json.dumps(schema["$defs"]["Deployment"]["properties"])


def test_targetgen_execute_on_an_engine_submits_with_the_overlays_lease(cp: ControlPlane, tmp_path: Path) -> None:
    rec = cp.targetgen_submit(capability=EXAMPLE / "capability.yaml", overlay=EXAMPLE / "overlays" / "firesim_u250.yaml", out_dir=tmp_path / "out",
                              from_dir=None, engine="local")  # fmt: skip
    assert rec.status == RunStatus.WAITING or rec.leases, rec.message
    assert cp.ledger.read_request(rec.run_id).leases == ["firesim_fpga:1"]
    done = cp.wait(rec.run_id, timeout=120)
    assert done.status == RunStatus.SUCCEEDED and done.outcome and done.lease_items == ["fpga-01"], cp.logs(rec.run_id)
    assert until(lambda: lease_state(cp, done.leases[0]) == "released", 5)
    assert len(cp.leases.all_leases()) == 1, "the job side attaches to the run and leases nothing more"
