"""The whole pytest run shares ONE Ray head, however xdist schedules the Ray tests.

Runs a small inner suite with ``-n 2`` (two workers, Ray tests in two files)
and checks that exactly one session head was started, that both workers used
it, and that the controller stopped it at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.ray]  # ray: takes its turn with the other Ray tests (one head starting at a time)

INNER_CONFTEST = '''
import os
import pytest

pytest_plugins = ["tests.ray_fixtures"]


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path, monkeypatch):
    monkeypatch.setenv("MERLIN_STATE_ROOT", str(tmp_path / "state"))
'''

INNER_TEST = '''
import json
import os
import pytest

pytestmark = pytest.mark.ray


@pytest.mark.parametrize("i", range(4))
def test_uses_the_shared_cluster(ray_cluster, i):
    seen = ray_cluster.state_root.parent / "users.jsonl"
    with seen.open("a") as f:
        f.write(json.dumps({"worker": os.environ.get("PYTEST_XDIST_WORKER"), "address": ray_cluster.address}) + "\\n")
    assert ray_cluster.address
'''


@pytest.mark.ray_own_head  # starts a head of its own
def test_two_workers_share_one_session_ray_head(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(INNER_CONFTEST)
    for name in ("test_first.py", "test_second.py"):
        (suite / name).write_text(INNER_TEST)
    basetemp = tmp_path / "inner-basetemp"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "PYTEST_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "2", "-p", "no:cacheprovider", f"--basetemp={basetemp}", "-o", "addopts=", str(suite)],
        capture_output=True, text=True, env=env, cwd=suite, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    shared = basetemp / "ray-shared"
    heads = [json.loads(line) for line in (shared / "heads.jsonl").read_text().splitlines()]
    assert len(heads) == 1, f"want one session Ray head per run, got {heads}"
    users = [json.loads(line) for line in (shared / "users.jsonl").read_text().splitlines()]
    assert len(users) == 8
    assert {u["address"] for u in users} == {heads[0]["address"]}
    assert {u["worker"] for u in users} == {"gw0", "gw1"}, "both workers should have run Ray tests against the one head"
    assert not (shared / "cluster.json").exists(), "the controller forgets the cluster once it stopped it"

    from merlin.controlplane import ControlPlane

    rec = ControlPlane(shared / "state").ledger.read_cluster("default")
    assert rec is not None and rec.status == "stopped"
