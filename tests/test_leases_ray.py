"""On a real local Ray cluster: two runs that each lease the one FPGA slot run one after
the other, and `jobs why` of the second names the first as the holder while it waits."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from merlin.control.why import run_conditions
from merlin.controlplane import ControlPlane
from merlin.ledger.status import RunStatus

pytestmark = [pytest.mark.ray, pytest.mark.slow]

# log the start, hold the slot until the gate file exists (at most 120 s), log the end
WORK = (
    "import os,sys,time; open(sys.argv[1],'a').write(f'start {time.time()}\\n'); t=time.time()\n"
    "while not os.path.exists(sys.argv[2]) and time.time()-t<120: time.sleep(0.1)\n"
    "open(sys.argv[1],'a').write(f'end {time.time()}\\n')"
)


def test_two_runs_leasing_one_slot_never_overlap_and_why_names_the_holder(ray_cp: ControlPlane, tmp_path: Path) -> None:
    ray_cp.leases.define([{"id": "fpga-01", "pool": "firesim_fpga", "labels": {"board": "u250"}}])
    logs = [tmp_path / "first.log", tmp_path / "second.log"]

    gate = tmp_path / "go"

    def submit(log: Path) -> str:
        cmd = [sys.executable, "-m", "merlin", "ray", "resources", "run", "--ttl", "10s", "firesim_fpga:1", "--", sys.executable, "-c", WORK, str(log), str(gate)]
        return ray_cp.submit(cmd, target="fpga", workflow="lease", engine="ray").run_id

    first = submit(logs[0])
    deadline = time.monotonic() + 180
    while not logs[0].exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert logs[0].exists(), "the first run never got the slot"
    second = submit(logs[1])
    named = None
    while time.monotonic() < deadline and not logs[1].exists():
        conds = run_conditions(ray_cp, second)
        held = [c for c in conds if c["code"] == "lease_item_held"]
        if held:
            named = held[0]["evidence"]
            break
        time.sleep(0.2)
    assert not logs[1].exists(), "the second run started while the first held the slot"
    gate.touch()  # let the first run end: the second gets the slot then
    assert named is not None, "while it waited, `jobs why` of the second run never named a holder"
    assert named["run_id"] == first and named["item"] == "fpga-01" and named["until"]
    for run_id in (first, second):
        assert ray_cp.wait(run_id, timeout=240).status == RunStatus.SUCCEEDED, ray_cp.logs(run_id)
    (s1, e1), (s2, e2) = [[float(line.split()[1]) for line in log.read_text().splitlines()] for log in logs]
    assert e1 <= s2, f"the runs overlapped: first {s1}..{e1}, second {s2}..{e2}"
    assert all(x["state"] == "released" for x in ray_cp.leases.all_leases()), "both leases released when their runs ended"


# log start, hold until the gate exists, log end; also log the items it was given
LEASED = (
    "import os,sys,time; open(sys.argv[1],'a').write(f'start {time.time()} ' + os.environ['MERLIN_LEASE_ITEMS'] + '\\n'); t=time.time()\n"
    "while not os.path.exists(sys.argv[2]) and time.time()-t<120: time.sleep(0.1)\n"
    "open(sys.argv[1],'a').write(f'end {time.time()}\\n')"
)


def _times(log: Path) -> tuple[float, float, str]:
    start, end = log.read_text().splitlines()
    return float(start.split()[1]), float(end.split()[1]), start.split()[2]


def _until(pred, timeout: float = 180.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.2)
    return pred()


@pytest.mark.ray_own_head  # starts a head of its own
def test_hosted_items_are_node_resources_and_leased_runs_queue_then_run_in_turn(cluster_root: Path, tmp_path: Path) -> None:
    """Items attached to this host become the node's custom resources; two `--lease firesim_fpga:1`
    runs run one after the other; a gang run (slot + board) waits holding nothing until both are free."""
    import socket

    from tests.ray_fixtures import start_cluster

    cp = ControlPlane(cluster_root)
    host = socket.gethostname()
    cp.leases.define([{"id": "fpga-01", "pool": "firesim_fpga", "host": host}, {"id": "board-01", "pool": "board", "host": host}])
    cp, crec = start_cluster(cluster_root, "hw")
    assert crec.resources.get("firesim_fpga") == 1 and crec.resources.get("board") == 1, crec.resources

    logs = {k: tmp_path / f"{k}.log" for k in ("a", "b", "gang")}
    gates = {k: tmp_path / f"{k}.go" for k in logs}

    def submit(key: str, *leases: str) -> str:
        rec = cp.submit([sys.executable, "-c", LEASED, str(logs[key]), str(gates[key])], target="fpga", workflow=key, engine="ray", cluster="hw", leases=list(leases))
        assert rec.status in (RunStatus.WAITING, RunStatus.PENDING), rec.message
        assert cp.ledger.read_request(rec.run_id).resources == {p.split(":")[0]: 1.0 for p in leases}, "entrypoint_resources match the lease"
        return rec.run_id

    a = submit("a", "firesim_fpga:1")
    assert _until(logs["a"].exists), f"run a never started: {cp.get(a).message}"
    b = submit("b", "firesim_fpga:1")
    time.sleep(1.0)
    assert cp.get(b).status == RunStatus.WAITING and not logs["b"].exists()
    held = [c for c in run_conditions(cp, b) if c["code"] == "lease_item_held"]
    assert held and held[0]["evidence"]["run_id"] == a

    board = cp.leases.reserve(["board:1"], ttl=300)  # someone holds the board
    gang = submit("gang", "firesim_fpga:1", "board:1")
    gates["a"].touch()
    assert _until(logs["b"].exists), f"run b never started after a: {cp.get(b).message}"
    gates["b"].touch()
    assert cp.wait(b, timeout=180).status == RunStatus.SUCCEEDED, cp.logs(b)
    # the slot is free now, the board is not: the gang waits, holding nothing
    time.sleep(1.5)
    g = cp.get(gang)
    assert g.status == RunStatus.WAITING and not logs["gang"].exists()
    assert cp.leases.show(g.leases[0])["items"] == [] and cp.leases.show(g.leases[0])["state"] == "waiting"
    holders = {it["id"]: it["holder"] for it in cp.leases.items()}
    assert holders["fpga-01"] is None and holders["board-01"]["lease_id"] == board["lease_id"]
    cp.leases.release(board["lease_id"])
    assert _until(logs["gang"].exists), f"the gang never started once both were free: {cp.get(gang).message}"
    gates["gang"].touch()
    for run_id in (a, gang):
        assert cp.wait(run_id, timeout=180).status == RunStatus.SUCCEEDED, cp.logs(run_id)
    (sa, ea, ia), (sb, eb, ib), (sg, _eg, ig) = (_times(logs[k]) for k in ("a", "b", "gang"))
    assert ea <= sb and eb <= sg, f"runs overlapped on the slot: a {sa}..{ea}, b {sb}..{eb}, gang from {sg}"
    assert ia == ib == "fpga-01" and sorted(ig.split(",")) == ["board-01", "fpga-01"]
    assert _until(lambda: all(x["state"] == "released" for x in cp.leases.all_leases() if x["owner"].get("run_id")), 10)
