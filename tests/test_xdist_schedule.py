"""The run's schedule over two xdist workers (tests/xdist_schedule.py): each group on one worker,
the exclusive Ray tests first and one after another, the tests of the shared head last."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

INNER_TEST = '''
import os
import time

import pytest


def log(name):
    with open(os.environ["SCHEDULE_LOG"], "a") as fh:
        fh.write(f"{os.environ['PYTEST_XDIST_WORKER']} {name}\\n")


@pytest.mark.ray
@pytest.mark.parametrize("i", range(3))
def test_shared(i):
    log(f"shared{i}")


@pytest.mark.parametrize("i", range(6))
def test_plain(i):
    log(f"plain{i}")
    time.sleep(0.2)


@pytest.mark.ray_exclusive
@pytest.mark.parametrize("i", range(4))
def test_exclusive(i):
    log(f"exclusive{i}")
    time.sleep(0.2)


@pytest.mark.xdist_group("slurm")
@pytest.mark.parametrize("i", range(3))
def test_grouped(i):
    log(f"grouped{i}")
    time.sleep(0.2)


@pytest.mark.slow
def test_slow_plain():
    log("slowplain")
'''


@pytest.mark.slow  # several seconds: left out of --quick
def test_groups_stay_on_one_worker_exclusive_tests_start_first_and_the_shared_head_comes_last(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text('pytest_plugins = ["tests.ray_fixtures", "tests.xdist_schedule"]\n')
    (suite / "test_inner.py").write_text(INNER_TEST)
    log = tmp_path / "order.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "PYTEST_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["SCHEDULE_LOG"] = str(log)
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider", "-p", "no:randomly",
                          f"--basetemp={tmp_path / 'bt'}", "-o", "addopts=", str(suite)],
                         capture_output=True, text=True, env=env, cwd=suite, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    ran = [line.split() for line in log.read_text().splitlines()]
    assert len(ran) == 17, ran
    by_worker: dict[str, list[str]] = {}
    for worker, name in ran:
        by_worker.setdefault(worker, []).append(name)
    exclusive = next(w for w, names in by_worker.items() if "exclusive0" in names)
    # the exclusive tests: one worker, the first four it ran, in order
    assert by_worker[exclusive][:4] == [f"exclusive{i}" for i in range(4)], by_worker
    # the Slurm group: one worker, the first it ran (the other worker's)
    grouped = {w for w, names in by_worker.items() if any(n.startswith("grouped") for n in names)}
    assert len(grouped) == 1 and grouped != {exclusive}, by_worker
    assert by_worker[grouped.pop()][:3] == [f"grouped{i}" for i in range(3)], by_worker
    # each worker runs the shared head's tests after all its others, and a slow test before the quick ones
    for names in by_worker.values():
        shared = [i for i, n in enumerate(names) if n.startswith("shared")]
        assert shared == list(range(len(names) - len(shared), len(names))), by_worker
        if "slowplain" in names:
            assert all(names.index("slowplain") < i for i, n in enumerate(names) if n.startswith("plain")), by_worker
    assert sum(n.startswith("shared") for n in sum(by_worker.values(), [])) == 3 and len(by_worker) == 2, by_worker
