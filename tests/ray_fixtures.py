"""Real Ray for the test run: one local cluster, started through merlin's own
ControlPlane on free ports in a temp state root, stopped at the end.

Every test marked ``ray`` is also put in xdist group "ray", so with
``pytest -n 2 --dist loadgroup`` all Ray tests share one worker and one
cluster. Under plain ``-n 2`` (load scheduling) each worker that receives Ray
tests starts its own cluster; that works too (free ports, private temp dirs),
it is only slower.

Tests get their own ledger (``ray_cp``): a fresh state root whose
``cluster/bootstrap.json`` is a copy of the shared cluster's record, so runs of
different tests never mix while the cluster is shared.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

OBJECT_STORE = 100 * 1024 * 1024


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("ray") is not None and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group("ray"))


@dataclass
class RayCluster:
    state_root: Path
    name: str
    address: str
    record_path: Path


def start_cluster(state_root: Path, name: str = "default", **kwargs):
    """Start a real local cluster on free ports (shared by fixtures and tests)."""
    from merlin.clusters.net import free_ports
    from merlin.controlplane import ControlPlane

    cp = ControlPlane(state_root)
    port, dash = free_ports(2)
    kwargs.setdefault("num_cpus", 2)
    kwargs.setdefault("object_store_memory", OBJECT_STORE)
    rec, started = cp.start_local_cluster(name, port=port, dashboard_port=dash, **kwargs)
    assert started and rec.status == "active"
    return cp, rec


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    pytest.importorskip("ray")
    root = tmp_path_factory.mktemp("ray-session") / "state"
    cp, rec = start_cluster(root)
    try:
        yield RayCluster(state_root=root, name=rec.name, address=rec.address, record_path=cp.layout.cluster_record(rec.name))
    finally:
        cp.stop_cluster(rec.name, grace=3.0)


@pytest.fixture
def ray_cp(ray_cluster: RayCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A ControlPlane with its own ledger, pointed at the shared cluster."""
    from merlin.controlplane import ControlPlane

    root = tmp_path / "ledger"
    (root / "cluster").mkdir(parents=True)
    shutil.copy(ray_cluster.record_path, root / "cluster" / "bootstrap.json")
    monkeypatch.setenv("MERLIN_STATE_ROOT", str(root))
    return ControlPlane(root)


@pytest.fixture
def cluster_root(tmp_path: Path) -> Iterator[Path]:
    """A state root for tests that start their own clusters; every cluster
    recorded there is stopped at teardown, even when the test failed."""
    root = tmp_path / "state"
    yield root
    from merlin.controlplane import ControlPlane

    cp = ControlPlane(root)
    for name in cp.ledger.cluster_names():
        rec = cp.ledger.read_cluster(name)
        if rec is not None and rec.status != "stopped":
            cp.stop_cluster(name, grace=2.0)


def ray_processes_of(temp_dir: str) -> list[int]:
    """Pids whose command line names ``temp_dir`` (a cluster's private Ray temp dir)."""
    from merlin.clusters import procs

    return [p.pid for p in procs.all_procs() if temp_dir in procs.cmdline(p.pid) and p.state not in ("Z", "X")]


def env_without_ray_vars() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
