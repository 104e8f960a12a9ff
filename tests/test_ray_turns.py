"""Ray tests take turns through a reader-writer lock across processes (tests/ray_fixtures.py):
tests that only submit to the shared head run side by side, ``ray_own_head`` ones beside them but
one at a time, ``ray_exclusive`` ones alone, and a test that starts a head without saying so fails
instead of racing the others."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO
from ray_fixtures import TURNS

HOLDER = """
import sys, time
from pathlib import Path
from tests.ray_fixtures import TURNS
shared, mode, me = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
(shared / f"{me}.asking").touch()
with TURNS.hold(shared, exclusive=(mode == "exclusive"), own_head=(mode == "own_head")):
    (shared / f"{me}.holding").touch()
    while not (shared / f"{me}.release").exists():
        time.sleep(0.02)
    (shared / f"{me}.holding").unlink()
"""


@pytest.mark.ray
def test_a_ray_test_holds_a_shared_turn() -> None:
    assert TURNS.mode == "shared"


@pytest.mark.ray_own_head
def test_a_ray_own_head_test_holds_the_own_head_slot() -> None:
    assert TURNS.mode == "own_head"


@pytest.mark.ray_exclusive
def test_a_ray_exclusive_test_holds_the_exclusive_turn() -> None:
    assert TURNS.mode == "exclusive"


class Holders:
    """Processes holding turns in ``tmp_path`` (the run's shared dir), each until released."""

    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, me: str, mode: str) -> None:
        """Start a holder and return once it is asking for its turn (a loaded machine starts Python slowly)."""
        self.procs[me] = subprocess.Popen([sys.executable, "-c", HOLDER, str(self.dir), mode, me], env=self.env, cwd=REPO)
        deadline = time.monotonic() + 120
        while not (self.dir / f"{me}.asking").exists():
            assert self.procs[me].poll() is None and time.monotonic() < deadline, f"{me} never asked for its turn"
            time.sleep(0.02)

    def holding(self, *names: str, within: float) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if all((self.dir / f"{n}.holding").exists() for n in names):
                return True
            for n in names:
                assert self.procs[n].poll() is None, f"{n} exited {self.procs[n].returncode}"
            time.sleep(0.02)
        return False

    def held(self, name: str) -> bool:
        return (self.dir / f"{name}.holding").exists()

    def release(self, *names: str) -> None:
        for n in names:
            (self.dir / f"{n}.release").touch()
            self.procs[n].wait(timeout=30)

    def end(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.fixture
def holders(tmp_path: Path) -> Iterator[Holders]:
    h = Holders(tmp_path)
    try:
        yield h
    finally:
        h.end()


@pytest.mark.slow  # several seconds: left out of --quick
def test_readers_share_a_writer_waits_alone_and_is_not_starved(holders: Holders) -> None:
    holders.start("reader1", "shared")
    holders.start("reader2", "shared")
    assert holders.holding("reader1", "reader2", within=60), "two shared turns are held at once"
    holders.start("writer", "exclusive")
    assert not holders.holding("writer", within=1.5), "the exclusive turn waits for the readers"
    holders.start("late-reader", "shared")
    assert not holders.holding("late-reader", within=1.5), "a reader arriving after a waiting writer waits behind it"
    holders.release("reader1", "reader2")
    assert holders.holding("writer", within=30) and not holders.held("late-reader"), "the writer runs alone"
    holders.release("writer")
    assert holders.holding("late-reader", within=30)
    holders.release("late-reader")


@pytest.mark.slow  # several seconds: left out of --quick
def test_own_head_turns_run_beside_readers_one_at_a_time_and_a_writer_waits_for_them(holders: Holders) -> None:
    holders.start("head1", "own_head")
    holders.start("reader", "shared")
    assert holders.holding("head1", "reader", within=60), "an own-head turn is held beside a shared one"
    holders.start("head2", "own_head")
    assert not holders.holding("head2", within=1.5), "one own-head turn at a time"
    holders.start("writer", "exclusive")
    assert not holders.holding("writer", within=1.5), "the exclusive turn waits for the own-head one too"
    holders.release("head1")
    assert not holders.holding("head2", within=1.5), "the next own-head turn waits behind the waiting writer"
    holders.release("reader")
    assert holders.holding("writer", within=30) and not holders.held("head2"), "the writer runs alone"
    holders.release("writer")
    assert holders.holding("head2", within=30)
    holders.release("head2")


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


@pytest.mark.slow  # several seconds: left out of --quick
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
    assert "start_cluster('default') starts a Ray head of its own: mark the test @pytest.mark.ray_own_head" in out, out
    assert "a test using cluster_root starts a Ray head of its own: mark the test @pytest.mark.ray_own_head" in out, out
    assert "uses the shared Ray head: mark it @pytest.mark.ray" in out, out
    assert "started a Ray head of its own" in out and "mine.json" in out, out
    assert re.search(r"\b1 failed, 1 passed, (\d+ warnings, )?3 errors", out) and not (tmp_path / "bt" / "ray-shared" / "heads.jsonl").exists(), "no head was started"
