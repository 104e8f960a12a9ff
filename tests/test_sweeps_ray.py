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
    for r in rows:  # measured by the launcher that wraps each Ray job (docs/sweeps.md)
        assert r["usage_wall_s"] >= 0.2 and r["usage_cpu_s"] > 0 and r["usage_max_rss_bytes"] > 0, r


def test_a_ray_run_records_the_resource_use_of_its_command(ray_cp: ControlPlane) -> None:
    """Every Ray run, not only a sweep's: wall time, CPU seconds and peak RSS of the command's process tree,
    measured inside the job by the launcher (wait4), shown by jobs status --json."""
    import json

    from cli_runner import run_cli

    code = "import time; b = bytearray(80 * 2**20); t = time.process_time()\nwhile time.process_time() - t < 0.3: pass\ntime.sleep(0.2)"
    rec = ray_cp.submit([sys.executable, "-c", code], target="usage", workflow="w", engine="ray", wait=True, timeout=300)
    assert rec.status.value == "succeeded", rec.message
    usage = rec.attempts[-1].usage
    assert usage is not None, rec
    assert usage["cpu_s"] >= 0.25 and usage["wall_s"] >= 0.5 and usage["max_rss_bytes"] >= 80 * 2**20, usage
    shown = json.loads(run_cli("ray", "jobs", "status", rec.run_id, "--json", "--state-root", str(ray_cp.root)).stdout)
    assert shown["attempts"][-1]["usage"]["cpu_s"] == usage["cpu_s"]
