"""An interrupted test run leaves no Ray head behind.

Runs a small inner suite (``-n 2``, the shared head through ``tests.ray_fixtures``)
whose one test holds the head and sleeps, interrupts it as a person or a CI
runner would, and checks that every process of the head is gone within a
bounded wait: Ctrl-C (SIGINT to the run's process group), ``timeout`` (SIGTERM
to the pytest controller) and a SIGKILL of the controller, which nothing in
the run can answer, so the run's watchdog (``tests/ray_reaper.py``) does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO
from ray_fixtures import ray_processes_of
from test_ray_shared_cluster import INNER_CONFTEST

pytestmark = [pytest.mark.slow, pytest.mark.ray_own_head]  # the inner run starts a head of its own

# the inner suite's conftest: the same as the shared-head test's (the run's fixtures, a state root per test)

INNER_TEST = '''
import json
import time

import pytest

pytestmark = pytest.mark.ray


def test_holds_the_head(ray_cluster):
    (ray_cluster.state_root.parent / "holding.json").write_text(json.dumps({"record": str(ray_cluster.record_path)}))
    time.sleep(600)
'''

GONE_WITHIN = 90.0


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the inner run ended before its test held the head:\n{proc.communicate()[0][-4000:]}")
        assert time.monotonic() < deadline, f"the inner run never started its head ({path})"
        time.sleep(0.2)


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm", "sigkill"])
def test_an_interrupted_run_leaves_no_ray_head(how: str, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(INNER_CONFTEST)
    (suite / "test_hold.py").write_text(INNER_TEST)
    basetemp = tmp_path / "inner-basetemp"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "PYTEST_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-n", "2", "-p", "no:cacheprovider", "-p", "no:randomly", f"--basetemp={basetemp}",
         "-o", "addopts=", str(suite)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=suite, start_new_session=True,
    )
    shared = basetemp / "ray-shared"
    temp_dir = None
    try:
        _wait_for(shared / "holding.json", proc, timeout=300)
        record = json.loads(Path(json.loads((shared / "holding.json").read_text())["record"]).read_text())
        temp_dir = record["temp_dir"]
        assert ray_processes_of(temp_dir), "the head is up while the inner test holds it"
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)  # what the terminal sends: every process of the run's group
        elif how == "sigterm":
            os.kill(proc.pid, signal.SIGTERM)  # what `timeout` sends: the controller only
        else:
            os.kill(proc.pid, signal.SIGKILL)  # the controller dies without a word
        deadline = time.monotonic() + GONE_WITHIN
        while (left := ray_processes_of(temp_dir)) and time.monotonic() < deadline:
            time.sleep(0.5)
        log = (shared / "reaper.log").read_text() if (shared / "reaper.log").exists() else "(no reaper log)"
        assert not left, f"{how}: the head's processes {left} outlived the run by {GONE_WITHIN:.0f} s; watchdog: {log}"
        from merlin.controlplane import ControlPlane

        cp = ControlPlane(shared / "state")
        while (rec := cp.ledger.read_cluster("default")) is not None and rec.status != "stopped" and time.monotonic() < deadline:
            time.sleep(0.5)  # the stop ends the processes first, then records it
        assert rec is not None and rec.status == "stopped", f"{how}: the record says {rec and rec.status}"
        if how != "sigkill":
            out, _ = proc.communicate(timeout=120)
            assert proc.returncode != 0, out  # an interrupted run is not a passing one
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the inner run's own process group: what is left of it
        except ProcessLookupError:
            pass
        if proc.returncode is None:
            proc.communicate()
        if temp_dir and ray_processes_of(temp_dir):  # the test failed: do not leave the head to the machine
            from merlin.controlplane import ControlPlane

            ControlPlane(shared / "state").stop_cluster("default", grace=2.0, force=True)
