"""`start-local --port-range LO-HI`: every port Ray opens is inside the range, or the start is refused first."""

from __future__ import annotations

import random
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli
from merlin.clusters.net import port_free
from merlin.clusters.port_plan import PORTS_NEEDED
from merlin.controlplane import ControlPlane
from ray_fixtures import OBJECT_STORE


def _free_range(size: int) -> tuple[int, int]:
    for _ in range(200):
        lo = random.randrange(30000, 60000 - size)
        if all(port_free(p) for p in range(lo, lo + size)):
            return lo, lo + size - 1
    raise AssertionError(f"no free run of {size} ports")


def _start(root: Path, name: str, port_range: str, *extra: str):
    return run_cli("ray", "cluster", "start-local", "--name", name, "--port-range", port_range, "--num-cpus", "1",
                   "--object-store-memory", str(OBJECT_STORE), "--state-root", str(root), *extra, timeout=240)  # fmt: skip


def test_a_range_too_small_is_refused_before_anything_starts_saying_how_many_ports_it_needs(tmp_path: Path) -> None:
    result = _start(tmp_path / "state", "small", "40000-40009")
    assert result.returncode == 2, result.stderr
    assert f"needs at least {PORTS_NEEDED}" in result.stderr and "--port-range 40000-40009 has 10 ports" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "state" / "cluster" / "small.json").exists()
    bad = _start(tmp_path / "state", "bad", "40000:40100")
    assert bad.returncode == 2 and "expected LO-HI" in bad.stderr


def test_a_busy_range_and_a_port_outside_it_are_refused(tmp_path: Path) -> None:
    lo, hi = _free_range(PORTS_NEEDED)
    with socket.socket() as held:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        held.bind(("127.0.0.1", lo + 15))
        held.listen()
        result = _start(tmp_path / "state", "busy", f"{lo}-{hi}")
    assert result.returncode == 2, result.stderr
    assert "1 of its ports are in use" in result.stderr and f"needs {PORTS_NEEDED} free ones" in result.stderr
    outside = _start(tmp_path / "state", "out", f"{lo}-{hi}", "--port", str(hi + 1))
    assert outside.returncode == 2 and f"--gcs-port {hi + 1} is outside --port-range {lo}-{hi}" in outside.stderr


def _listening(pids: set[int]) -> list[tuple[int, int, str]]:
    """(port, pid, process) of every TCP socket `ss -ltnp` shows listening for one of ``pids``."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, timeout=30, check=True).stdout
    found = []
    for line in out.splitlines():
        local = line.split()[3]
        port = int(local.rsplit(":", 1)[1])
        for name, pid in re.findall(r'\("([^"]+)",pid=(\d+),', line):
            if int(pid) in pids:
                found.append((port, int(pid), name))
    return found


@pytest.mark.ray_own_head  # starts a head of its own
def test_a_cluster_started_with_a_port_range_listens_only_inside_it(cluster_root: Path) -> None:
    lo, hi = _free_range(40)
    result = _start(cluster_root, "ranged", f"{lo}-{hi}")
    assert result.returncode == 0, result.stderr
    cp = ControlPlane(cluster_root)
    rec = cp.ledger.read_cluster("ranged")
    assert lo <= rec.ports.min_worker <= rec.ports.max_worker <= hi
    # a job makes Ray start its job supervisor and a driver (each takes a worker port) while we look
    run = cp.submit([sys.executable, "-c", "import ray, time; ray.init(); time.sleep(30)"], target="demo", workflow="w",
                    engine="ray", cluster="ranged")  # fmt: skip
    backend = cp.cluster_backend("local")
    import time

    deadline = time.monotonic() + 120
    while cp.status(run.run_id).status.value != "running":
        assert time.monotonic() < deadline, cp.get(run.run_id).message
        time.sleep(0.5)
    time.sleep(5)  # the driver connects and opens its port
    sockets = _listening(backend._members(rec))
    try:
        assert len({p for p, _pid, _n in sockets}) >= 11, sockets
        outside = [s for s in sockets if not lo <= s[0] <= hi]
        assert not outside, f"listening outside {lo}-{hi}: {outside}"
        status = run_cli("ray", "cluster", "status", "--name", "ranged", "--state-root", str(cluster_root))
        assert f"{lo}-{hi} (workers {rec.ports.min_worker}-{rec.ports.max_worker})" in status.stdout, status.stdout
    finally:
        cp.cancel(run.run_id)
