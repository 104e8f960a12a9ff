"""Real Ray for the test run: ONE local cluster per pytest run, started through
merlin's own ControlPlane on free ports in a temp state root.

pytest-xdist's ``--dist loadgroup`` does not keep the Ray tests on one worker
(pytest-xdist#1386), and need not: the first worker that needs the cluster
starts it under a file lock in the run's shared temp dir (the controller's
basetemp, parent of every worker's) and writes its record there; the other
workers attach to it. The controller (or the single process under ``-n 0``)
stops it at session finish, after every worker is done, also when the run is
interrupted (Ctrl-C, or SIGTERM/SIGHUP, which the controller turns into an
interrupt), and fails the run if more than one session head was started
(``heads.jsonl``). A run killed outright (SIGKILL) cannot stop anything itself:
``tests/ray_reaper.py``, a detached watchdog started with the first head,
stops the run's recorded clusters once the controller is gone.

Turns. Tests marked ``ray`` take turns through a reader-writer lock across
workers (``flock`` on ``ray-tests.lock`` in the shared dir, with a turnstile so
a waiting writer is not starved): by default a Ray test only submits to the
shared head, and runs *shared*, beside the other Ray tests. A test that starts,
kills or stops heads of its own, and touches nothing of the shared head's or of
another test's, is marked ``ray_own_head``: it runs beside the shared tests but
holds the one own-head slot (``ray-heads.lock``), so one such head starts at a
time in the run. A test that would disturb the shared head or the tests beside
it is marked ``ray_exclusive`` and runs alone. The default cannot silently hide
a head start: ``start_cluster`` and the ``cluster_root`` fixture fail a test
that holds neither the own-head slot nor the exclusive turn, and a shared test
that leaves a record of a head of its own in its temp dirs fails at teardown.
Fixtures of a wider scope that start or stop a head take a turn for just that
(``ray_turn(config, own_head=True)``, or ``exclusive=True`` for the shared head).

Tests get their own ledger (``ray_cp``): a fresh state root whose
``cluster/bootstrap.json`` is a copy of the shared cluster's record, so runs of
different tests never mix while the cluster is shared.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest

try:
    from tests import ray_reaper
except ImportError:  # tests/ itself is on sys.path, not the repo
    import ray_reaper  # type: ignore[no-redef]

# imported both as ``tests.ray_fixtures`` (the plugin) and ``ray_fixtures`` (tests/ on sys.path):
# one module either way, so the turn this process holds is one state
sys.modules.setdefault("ray_fixtures", sys.modules[__name__])
sys.modules.setdefault("tests.ray_fixtures", sys.modules[__name__])

OBJECT_STORE = 100 * 1024 * 1024
#: logical CPUs of the shared head: two workers' tests side by side, each with up to two runs
SHARED_HEAD_CPUS = 4
REAPER = Path(__file__).with_name("ray_reaper.py")


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):
        _interrupt_on_termination(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    for signum, previous in config.stash.get(_SAVED_HANDLERS, {}).items():
        signal.signal(signum, previous)


_SAVED_HANDLERS = pytest.StashKey[dict[int, Any]]()


def _interrupt_on_termination(config: pytest.Config) -> None:
    """In the controller: SIGTERM (``timeout``, a CI runner) and SIGHUP end the run as Ctrl-C does,
    so session finish still runs and stops the shared head."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    saved = {}
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) in (signal.SIG_DFL, None):
            saved[signum] = signal.signal(signum, interrupt)
    config.stash[_SAVED_HANDLERS] = saved


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A ``ray_exclusive`` or ``ray_own_head`` test is a Ray test."""
    for item in items:
        if (item.get_closest_marker("ray_exclusive") or item.get_closest_marker("ray_own_head")) and item.get_closest_marker("ray") is None:
            item.add_marker(pytest.mark.ray)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before any fixture (the session head included): a test using the shared head must say so."""
    if "ray_cluster" in getattr(item, "fixturenames", ()) and item.get_closest_marker("ray") is None:
        pytest.fail(f"{item.nodeid} uses the shared Ray head: mark it @pytest.mark.ray", pytrace=False)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist, in the controller: tell each worker who the controller is (the watchdog watches it)."""
    node.workerinput["merlin_controller"] = [os.getpid(), ray_reaper.start_ticks(os.getpid())]


def _controller(config: pytest.Config) -> tuple[int, int | None]:
    given = getattr(config, "workerinput", {}).get("merlin_controller")
    if given:
        return int(given[0]), given[1]
    pid = os.getppid() if hasattr(config, "workerinput") else os.getpid()
    return pid, ray_reaper.start_ticks(pid)


# ------------------------------------------------------------------ turns


class _Turns:
    """This process's turn at the Ray tests: a reader-writer lock over ``flock``, reentrant in the process.

    Modes: ``shared`` (a read turn), ``own_head`` (a read turn and the one own-head slot), ``exclusive``
    (the write turn: alone)."""

    def __init__(self) -> None:
        self.mode: str | None = None
        self.depth = 0
        self.config: pytest.Config | None = None  # the run whose turn this is (for will_start_heads)

    @contextmanager
    def hold(self, shared: Path, exclusive: bool, own_head: bool = False) -> Iterator[None]:
        want = "exclusive" if exclusive else "own_head" if own_head else "shared"
        if self.depth:
            if _STRENGTH[want] > _STRENGTH[self.mode or "shared"]:
                raise RuntimeError(f"this process holds a {self.mode} Ray turn and asked for the {want} one (flock cannot upgrade safely)")
            self.depth += 1
            try:
                yield
            finally:
                self.depth -= 1
            return
        # the slot first: a test waiting for it holds no read turn, so delays no writer
        slot = os.open(shared / "ray-heads.lock", os.O_RDWR | os.O_CREAT, 0o600) if want == "own_head" else None
        gate = lock = None
        try:
            if slot is not None:
                fcntl.flock(slot, fcntl.LOCK_EX)
            gate = os.open(shared / "ray-tests.gate", os.O_RDWR | os.O_CREAT, 0o600)
            lock = os.open(shared / "ray-tests.lock", os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(gate, fcntl.LOCK_EX)  # the turnstile: a writer waiting here holds new readers back
            try:
                fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            finally:
                fcntl.flock(gate, fcntl.LOCK_UN)
            self.mode, self.depth = want, 1
            yield
        finally:
            self.mode, self.depth = None, 0
            for fd in (lock, gate, slot):  # closing a descriptor releases its flock
                if fd is not None:
                    os.close(fd)


_STRENGTH = {"shared": 0, "own_head": 1, "exclusive": 2}
TURNS = _Turns()


@contextmanager
def ray_turn(config: pytest.Config, exclusive: bool = False, own_head: bool = False) -> Iterator[None]:
    """Hold a turn at the Ray tests (shared: beside other submitters; own_head: beside them, one such at a time; exclusive: alone)."""
    with TURNS.hold(shared_dir(config), exclusive, own_head):
        TURNS.config = config
        yield


def require_head_turn(what: str) -> None:
    """Fail the calling test unless it may start or stop a head (the own-head slot or the exclusive turn)."""
    if TURNS.mode not in ("own_head", "exclusive"):
        pytest.fail(f"{what} starts a Ray head of its own: mark the test @pytest.mark.ray_own_head "
                    "(or take ray_turn(config, own_head=True) in a wider fixture)", pytrace=False)


@pytest.fixture(autouse=True)
def _ray_turn(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tests marked ``ray`` share the head; ``ray_own_head`` ones also hold the own-head slot; ``ray_exclusive`` ones run alone."""
    if request.node.get_closest_marker("ray") is None:
        yield
        return
    exclusive = request.node.get_closest_marker("ray_exclusive") is not None
    own_head = not exclusive and request.node.get_closest_marker("ray_own_head") is not None
    tmp_path = None if exclusive or own_head else request.getfixturevalue("tmp_path")  # set up first: still there at our teardown
    with ray_turn(request.config, exclusive, own_head):
        yield
        if tmp_path is not None:
            _no_head_of_its_own(request, tmp_path)


def _no_head_of_its_own(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """A shared test must not have started a head: look for records of one in its temp dirs."""
    shared = shared_dir(request.config)
    session = json.loads((shared / "cluster.json").read_text()) if (shared / "cluster.json").exists() else {}
    session_temp = json.loads(Path(session["record_path"]).read_text()).get("temp_dir") if session else None
    places = [tmp_path, Path(os.environ["MERLIN_STATE_ROOT"]) if os.environ.get("MERLIN_STATE_ROOT") else None]
    for place in filter(None, places):
        for record in place.rglob("cluster/*.json") if place.is_dir() else []:
            try:
                data = json.loads(record.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and data.get("temp_dir") and data.get("temp_dir") != session_temp and data.get("processes"):
                pytest.fail(f"{request.node.nodeid} started a Ray head of its own ({record}) without the own-head slot: "
                            "mark it @pytest.mark.ray_own_head", pytrace=False)


# ------------------------------------------------------------------ the shared head


@dataclass
class RayCluster:
    state_root: Path
    name: str
    address: str
    record_path: Path


def start_cluster(state_root: Path, name: str = "default", **kwargs):
    """Start a real local cluster on free ports (shared by fixtures and tests; needs the own-head slot or the exclusive turn)."""
    from merlin.clusters.net import free_ports
    from merlin.controlplane import ControlPlane

    require_head_turn(f"start_cluster({name!r})")
    assert TURNS.config is not None
    will_start_heads(TURNS.config, Path(state_root))
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


def will_start_heads(config: pytest.Config, root: Path | None = None) -> None:
    """Before this process starts a head (in ``root``, else the shared state root): make sure the
    run's watchdog is up, and record this process and the root for it."""
    from filelock import FileLock

    shared = shared_dir(config)
    with FileLock(str(shared / "reaper.lock")):
        with (shared / "starters").open("a") as fh:
            fh.write(f"{os.getpid()} {ray_reaper.start_ticks(os.getpid())}\n")
        if root is not None:
            with (shared / "roots").open("a") as fh:
                fh.write(f"{root}\n")
        if not (shared / "reaper.started").exists():
            pid, ticks = _controller(config)
            env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "RAY_"))}
            subprocess.run([sys.executable, str(REAPER), str(shared), str(pid), str(ticks)], env=env, check=True, timeout=60,
                           stdin=subprocess.DEVNULL)  # it forks and returns at once
            (shared / "reaper.started").write_text(f"{pid}\n")


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
            will_start_heads(request.config)
            with ray_turn(request.config, exclusive=True):
                cp, rec = start_cluster(root, num_cpus=SHARED_HEAD_CPUS)
            cluster = RayCluster(state_root=root, name=rec.name, address=rec.address, record_path=cp.layout.cluster_record(rec.name))
            worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
            with (shared / "heads.jsonl").open("a") as log:
                log.write(json.dumps({"worker": worker, "pid": os.getpid(), "address": rec.address}) + "\n")
            record.write_text(json.dumps({k: str(v) for k, v in asdict(cluster).items()}))
    yield cluster


def _stop_run_clusters(shared: Path) -> None:
    """Stop every cluster of this run still live: the shared head, and any a test's own root still has."""
    ray_reaper.stop_live_clusters(shared, lambda text: None)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In the controller: stop the run's clusters (also when interrupted), and fail the run if two session heads started."""
    config = session.config
    if hasattr(config, "workerinput") or not hasattr(config, "_tmp_path_factory"):
        return
    try:
        shared = shared_dir(config)
    except Exception:  # no basetemp was ever made: no cluster either
        return
    if (shared / "reaper.started").exists() or (shared / "cluster.json").exists():
        _stop_run_clusters(shared)
    (shared / "cluster.json").unlink(missing_ok=True)
    from tests.leaks import end_leftovers

    reporter = config.pluginmanager.get_plugin("terminalreporter")
    end_leftovers(config._tmp_path_factory.getbasetemp(), lambda line: reporter.write_line(line, red=True) if reporter is not None else None)
    heads = heads_started(shared)
    if len(heads) > 1:
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
def cluster_root(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A state root for tests that start their own clusters (``ray_own_head`` ones); every cluster
    recorded there is stopped at teardown, even when the test failed, and by the run's watchdog
    if the run is killed first."""
    require_head_turn("a test using cluster_root")
    root = tmp_path / "state"
    will_start_heads(request.config, root)
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
