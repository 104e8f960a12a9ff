"""Ctrl-C (a real SIGINT) of merlin processes that talk to a real Ray: `jobs logs -f`,
and `cluster start-local` interrupted half-way."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest

from conftest import run_cli
from merlin.controlplane import ControlPlane
from test_ctrl_c import _read_until
from test_executor_concurrency import start_cli
from test_ray_cluster import start_args

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_ctrl_c_of_jobs_logs_follow_of_a_ray_run_exits_130_without_a_traceback(ray_cp: ControlPlane) -> None:
    code = "import time; print('tick', flush=True); time.sleep(60)"
    rec = ray_cp.submit([sys.executable, "-c", code], target="demo", workflow="w", engine="ray")
    try:
        proc = start_cli("ray", "jobs", "logs", "-f", rec.run_id)
        _read_until(proc.stdout, "\n", proc, timeout=60)  # following: the job's first log line came
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        assert "Traceback" not in err and "GeneratorExit" not in err, err
    finally:
        ray_cp.cancel(rec.run_id)


@pytest.mark.ray_own_head  # starts a head of its own
def test_ctrl_c_during_cluster_start_local_records_it_as_failed_and_ends_its_processes(cluster_root: Path) -> None:
    proc = start_cli(*start_args(cluster_root, "cc"))
    record = cluster_root / "cluster" / "cc.json"
    deadline = time.monotonic() + 60
    while not (record.is_file() and json.loads(record.read_text()).get("session_id")):  # `ray start` is running
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.05)
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    # it says what it stopped, and that nothing it started keeps running
    said = next((line for line in err.splitlines() if line.startswith("cluster 'cc': start interrupted by Ctrl-C")), None)
    assert said is not None, err
    assert re.search(r"stopped the [1-9]\d* Ray processes it had started", said) and "nothing it started keeps running" in said, said
    cp = ControlPlane(cluster_root)
    rec = cp.ledger.read_cluster("cc")
    assert rec.status.value == "failed" and "interrupted" in rec.message and rec.processes == []
    st = cp.cluster_status("cc")
    assert st.state == "failed" and st.alive_processes == 0
    assert [s["action"] for s in st.next_steps] == ["start_cluster"]
    status = run_cli("ray", "cluster", "status", "--name", "cc", "--state-root", str(cluster_root))
    assert status.returncode == 3 and "interrupted" in status.stderr, status.stderr
    stop = run_cli("ray", "cluster", "stop", "--name", "cc", "--state-root", str(cluster_root))
    assert stop.returncode == 0, stop.stderr
    assert cp.ledger.read_cluster("cc").status.value == "stopped"
