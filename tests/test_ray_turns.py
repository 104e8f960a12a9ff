"""Ray tests take turns through a reader-writer lock across processes (tests/ray_fixtures.py):
tests that only submit to the shared head run side by side, ``ray_exclusive`` ones alone, and a
test that starts a head without saying so fails instead of racing the others."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO
from ray_fixtures import TURNS

HOLDER = """
import sys, time
from pathlib import Path
from tests.ray_fixtures import TURNS
shared, mode, me = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
with TURNS.hold(shared, exclusive=(mode == "exclusive")):
    (shared / f"{me}.holding").touch()
    while not (shared / f"{me}.release").exists():
        time.sleep(0.02)
    (shared / f"{me}.holding").unlink()
"""


@pytest.mark.ray
def test_a_ray_test_holds_a_shared_turn() -> None:
    assert TURNS.mode == "shared"


@pytest.mark.ray_exclusive
def test_a_ray_exclusive_test_holds_the_exclusive_turn() -> None:
    assert TURNS.mode == "exclusive"


def test_readers_share_a_writer_waits_alone_and_is_not_starved(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    procs: dict[str, subprocess.Popen] = {}

    def start(me: str, mode: str) -> None:
        procs[me] = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path), mode, me], env=env, cwd=REPO)

    def holding(*names: str, within: float) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if all((tmp_path / f"{n}.holding").exists() for n in names):
                return True
            for n in names:
                assert procs[n].poll() is None, f"{n} exited {procs[n].returncode}"
            time.sleep(0.02)
        return False

    def release(*names: str) -> None:
        for n in names:
            (tmp_path / f"{n}.release").touch()
            procs[n].wait(timeout=30)

    try:
        start("reader1", "shared")
        start("reader2", "shared")
        assert holding("reader1", "reader2", within=60), "two shared turns are held at once"
        start("writer", "exclusive")
        assert not holding("writer", within=1.5), "the exclusive turn waits for the readers"
        start("late-reader", "shared")
        assert not holding("late-reader", within=1.5), "a reader arriving after a waiting writer waits behind it"
        release("reader1", "reader2")
        assert holding("writer", within=30) and not (tmp_path / "late-reader.holding").exists(), "the writer runs alone"
        release("writer")
        assert holding("late-reader", within=30)
        release("late-reader")
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()


INNER_TEST = '''
import pytest


@pytest.mark.ray
def test_starts_a_head_in_a_shared_turn(cluster_root):
    pass


@pytest.mark.ray
def test_uses_start_cluster_in_a_shared_turn(tmp_path):
    from tests.ray_fixtures import start_cluster

    start_cluster(tmp_path / "state")


def test_uses_the_shared_head_without_the_ray_mark(ray_cluster):
    pass


@pytest.mark.ray
def test_leaves_the_record_of_a_head_of_its_own(tmp_path):
    import json

    (tmp_path / "s" / "cluster").mkdir(parents=True)
    (tmp_path / "s" / "cluster" / "mine.json").write_text(json.dumps({"temp_dir": "/tmp/merlin-ray-x", "processes": [{"pid": 1}]}))
'''


def test_a_head_started_without_the_exclusive_mark_fails_the_test(tmp_path: Path) -> None:
    """The safe default: nothing is started; the test fails and says which mark it needs."""
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text('pytest_plugins = ["tests.ray_fixtures"]\n')
    (suite / "test_inner.py").write_text(INNER_TEST)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "PYTEST_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", "-p", "no:randomly", "-rfE",
                          f"--basetemp={tmp_path / 'bt'}", "-o", "addopts=", str(suite)],
                         capture_output=True, text=True, env=env, cwd=suite, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    # Each message is asserted by what it names, not counted: pytest prints the short summary whole
    # under CI (the CI variable) and cut to the terminal's width elsewhere.
    assert "start_cluster('default') starts a Ray head of its own: mark the test @pytest.mark.ray_exclusive" in out, out
    assert "a test using cluster_root starts a Ray head of its own: mark the test @pytest.mark.ray_exclusive" in out, out
    assert "uses the shared Ray head: mark it @pytest.mark.ray" in out, out
    assert "started a Ray head of its own" in out and "mine.json" in out, out
    assert re.search(r"\b1 failed, 1 passed, (\d+ warnings, )?3 errors", out) and not (tmp_path / "bt" / "ray-shared" / "heads.jsonl").exists(), "no head was started"
