"""On a real local Ray cluster: two runs that each lease the one FPGA slot run one after
the other, and `jobs why` of the second names the first as the holder while it waits."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from merlin.controlplane import ControlPlane
from merlin.leases.why import run_conditions
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
