"""Real Ray for the test run: ONE local cluster per pytest run, started through
merlin's own ControlPlane on free ports in a temp state root.

pytest-xdist's ``--dist loadgroup`` no longer keeps the Ray tests on one worker
under pytest 9.2 (pytest-xdist#1386: the ``@group`` node-id suffix is dropped),
so the cluster no longer relies on scheduling. The first worker that needs it
starts it under a file lock in the run's shared temp dir (the controller's
basetemp, parent of every worker's) and writes its record there; the other
workers attach to it, and tests marked ``ray`` take turns (a second lock), as
they did on one worker. The controller (or the single process under ``-n 0``)
stops it at session finish, after every worker is done, and fails the run if
more than one session head was started (``heads.jsonl``).

Tests get their own ledger (``ray_cp``): a fresh state root whose
``cluster/bootstrap.json`` is a copy of the shared cluster's record, so runs of
different tests never mix while the cluster is shared.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

OBJECT_STORE = 100 * 1024 * 1024


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the Ray tests in xdist group "ray" (helps where loadgroup still works; not relied on)."""
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


def shared_dir(config: pytest.Config) -> Path:
    """The run's directory shared by the controller and every xdist worker."""
    base = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    if hasattr(config, "workerinput"):  # an xdist worker: basetemp is <controller basetemp>/gwN
        base = base.parent
    path = base / "ray-shared"
    path.mkdir(parents=True, exist_ok=True)
    return path


def heads_started(shared: Path) -> list[dict]:
    """Every session head started in this run (one JSON line each)."""
    log = shared / "heads.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []


@pytest.fixture(scope="session")
def ray_cluster(request: pytest.FixtureRequest) -> Iterator[RayCluster]:
    """The run's one shared cluster: started by whichever process asks first, stopped by the controller."""
    pytest.importorskip("ray")
    from filelock import FileLock

    shared = shared_dir(request.config)
    record = shared / "cluster.json"
    with FileLock(str(shared / "cluster.lock")):
        if record.exists():
            data = json.loads(record.read_text())
            cluster = RayCluster(**{k: Path(v) if k in ("state_root", "record_path") else v for k, v in data.items()})
        else:
            root = shared / "state"
            cp, rec = start_cluster(root)
            cluster = RayCluster(state_root=root, name=rec.name, address=rec.address, record_path=cp.layout.cluster_record(rec.name))
            worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
            with (shared / "heads.jsonl").open("a") as log:
                log.write(json.dumps({"worker": worker, "pid": os.getpid(), "address": rec.address}) + "\n")
            record.write_text(json.dumps({k: str(v) for k, v in asdict(cluster).items()}))
    yield cluster


@pytest.fixture(autouse=True)
def _one_ray_test_at_a_time(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tests marked ``ray`` run one at a time across workers, as they did when
    loadgroup kept them on one worker: the shared head has 2 CPUs, and some tests
    start clusters of their own."""
    if request.node.get_closest_marker("ray") is None:
        yield
        return
    from filelock import FileLock

    with FileLock(str(shared_dir(request.config) / "ray-tests.lock")):
        yield


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In the controller: stop the shared cluster, and fail the run if two session heads started."""
    config = session.config
    if hasattr(config, "workerinput") or not hasattr(config, "_tmp_path_factory"):
        return
    try:
        shared = shared_dir(config)
    except Exception:  # no basetemp was ever made: no cluster either
        return
    record = shared / "cluster.json"
    if record.exists():
        from merlin.controlplane import ControlPlane

        data = json.loads(record.read_text())
        ControlPlane(Path(data["state_root"])).stop_cluster(data["name"], grace=3.0)
        record.unlink()
    heads = heads_started(shared)
    if len(heads) > 1:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        line = f"ray_fixtures: {len(heads)} session Ray heads started in one run (want 1): {heads}"
        if reporter is not None:
            reporter.write_line(line, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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
            cp.stop_cluster(name, grace=2.0, force=True)


def ray_processes_of(temp_dir: str) -> list[int]:
    """Pids whose command line names ``temp_dir`` (a cluster's private Ray temp dir)."""
    from merlin.clusters import procs

    return [p.pid for p in procs.all_procs() if temp_dir in procs.cmdline(p.pid) and p.state not in ("Z", "X")]


def env_without_ray_vars() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
