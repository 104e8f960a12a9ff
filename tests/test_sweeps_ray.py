"""A sweep on the shared Ray head (docs/sweeps.md): one Ray job per item, at most --parallel at once
(judged from the items' own clocks), every item's result.json in the summary."""

from __future__ import annotations

import sys
import time

import pytest

from merlin.controlplane import ControlPlane
from test_sweeps_local import ITEM, max_overlap

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_a_sweep_on_the_shared_head_runs_one_job_per_item_within_parallel(ray_cp: ControlPlane, tmp_path) -> None:
    log = tmp_path / "clock.log"
    ray_cp.sweeps("submit", "onray", command=[sys.executable, "-c", ITEM, str(log), "0.2", "{input}"], inputs=[str(i) for i in range(8)], parallel=2, engine="ray")
    deadline = time.monotonic() + 400
    while (v := ray_cp.sweeps("status", "onray"))["state"] == "running":
        assert time.monotonic() < deadline, v
        time.sleep(0.5)
    assert v["state"] == "succeeded", (v["counts"], v.get("failures"))
    rows = ray_cp.sweeps("summary", "onray")["rows"]
    assert [r["result"]["square"] for r in rows] == [i * i for i in range(8)]
    assert all(ray_cp.get(r["run_id"]).engine == "ray" and ray_cp.get(r["run_id"]).attempts[-1].submission_id for r in rows)
    assert max_overlap(log) <= 2
