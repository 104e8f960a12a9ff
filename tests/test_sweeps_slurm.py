"""A sweep on the real 2-node Slurm (n1, n2; scripts/services start): the items are Ray jobs on the
Ray cluster merlin started inside a Slurm allocation; at most --parallel at once (the items' own
clocks), every result joined in the summary."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from merlin.controlplane import ControlPlane
from test_slurm_runs import _start
from test_sweeps_local import ITEM, max_overlap
from tests.slurm_support import slurm_root, slurm_turn  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm")]


def test_a_sweep_on_the_two_node_slurm_cluster(slurm_root: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    _start(slurm_root, "sw")
    cp = ControlPlane(slurm_root)
    log = tmp_path / "clock.log"
    cp.sweeps("submit", "onslurm", command=[sys.executable, "-c", ITEM, str(log), "0.2", "{input}"], inputs=[str(i) for i in range(4)],
              parallel=2, engine="ray", cluster="sw")  # fmt: skip
    deadline = time.monotonic() + 400
    while (v := cp.sweeps("status", "onslurm"))["state"] == "running":
        assert time.monotonic() < deadline, v
        time.sleep(0.5)
    assert v["state"] == "succeeded", (v["counts"], v.get("failures"))
    rows = cp.sweeps("summary", "onslurm")["rows"]
    assert [r["result"]["square"] for r in rows] == [i * i for i in range(4)]
    assert all(cp.get(r["run_id"]).cluster.name == "sw" and cp.get(r["run_id"]).engine == "ray" for r in rows)
    assert max_overlap(log) <= 2
