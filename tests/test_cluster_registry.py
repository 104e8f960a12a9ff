"""Cluster kinds come from merlin.clusters.registry; records keep reading after 'running' became 'active'."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from merlin.clusters import registry
from merlin.clusters.base import ClusterState, ClusterStatus
from merlin.controlplane import ControlPlane
from merlin.errors import BadInput
from merlin.ledger.models import ClusterPorts, ClusterRecord


def _record(name: str, kind: str = "local", status: str = "active") -> ClusterRecord:
    return ClusterRecord(
        name=name, kind=kind, status=status, host="127.0.0.1", address="http://127.0.0.1:1",
        dashboard_url="http://127.0.0.1:1", temp_dir="/nonexistent", ports=ClusterPorts(gcs=1, dashboard=2),
    )


def test_local_kind_is_registered_lazily() -> None:
    assert "local" in registry.kinds()
    cls = registry.backend_class("local")
    assert cls.__name__ == "LocalBackend" and cls.kind == "local"
    with pytest.raises(BadInput, match="unknown cluster kind 'nosuch'"):
        registry.backend_class("nosuch")


def test_legacy_running_reads_as_active(tmp_path: Path) -> None:
    cp = ControlPlane(tmp_path)
    path = cp.layout.cluster_record("old")
    path.parent.mkdir(parents=True)
    data = _record("old").model_dump(mode="json")
    data["status"] = "running"  # what merlin 0.1 wrote
    path.write_text(json.dumps(data))
    rec = cp.ledger.read_cluster("old")
    assert rec is not None and rec.status is ClusterStatus.ACTIVE


class _ToyBackend:
    """A cluster kind defined only here: start records it, stop marks it stopped."""

    kind = "toy"

    def __init__(self, ledger) -> None:
        self.ledger = ledger

    def start(self, name, *, wait=True, progress=None, **options):
        rec = _record(name, kind="toy", status="starting")
        rec.status = ClusterStatus.ACTIVE
        with self.ledger.cluster_lock(name):
            self.ledger.write_cluster(rec)
        return rec, True

    def observe(self, record):
        return record

    def stop(self, record, *, grace=5.0, progress=None):
        record.status = ClusterStatus.STOPPED
        with self.ledger.cluster_lock(record.name):
            self.ledger.write_cluster(record)
        return record


def test_control_plane_reaches_a_new_kind_through_the_registry(tmp_path: Path) -> None:
    registry.register("toy", _ToyBackend)
    try:
        cp = ControlPlane(tmp_path)
        rec, started = cp.start_cluster("toy", "t1")
        assert started and rec.kind == "toy"
        st = cp.cluster_status("t1")
        assert isinstance(st, ClusterState) and st.state == "active"
        assert [s.name for s in cp.list_clusters()] == ["t1"]
        stopped = cp.stop_cluster("t1")
        assert stopped.status is ClusterStatus.STOPPED
        assert cp.cluster_status("t1").state == "stopped"
    finally:
        registry.unregister("toy")


def test_absent_cluster_state(tmp_path: Path) -> None:
    st = ControlPlane(tmp_path).cluster_status("nosuch")
    assert st.state == "absent" and st.record is None


def test_unregister_takes_back_a_lazy_registration() -> None:
    """A "module:Class" registration is listed without an import, and unregister removes its name."""
    import sys

    registry.register("lazytoy", "merlin.clusters.toy_lazy_nosuch:Backend")
    try:
        assert "lazytoy" in registry.kinds() and "merlin.clusters.toy_lazy_nosuch" not in sys.modules
        with pytest.raises(BadInput, match="cluster kind 'lazytoy' is not available"):
            registry.backend_class("lazytoy")  # imported only when asked for
    finally:
        registry.unregister("lazytoy")
    assert "lazytoy" not in registry.kinds()
    with pytest.raises(BadInput, match="unknown cluster kind 'lazytoy'"):
        registry.backend_class("lazytoy")


def test_a_shadowed_builtin_kind_comes_back_on_unregister() -> None:
    from merlin.clusters.local import LocalBackend
    from merlin.clusters.ssh import SshBackend

    before = registry.kinds()
    registry.register("local", "merlin.clusters.ssh:SshBackend")  # a string shadowing a built-in
    try:
        assert registry.backend_class("local") is SshBackend and registry.kinds() == before
        registry.register("local", _ToyBackend)
        registry.unregister("local")
        assert registry.backend_class("local") is SshBackend
    finally:
        registry.unregister("local")
    assert registry.backend_class("local") is LocalBackend and registry.kinds() == before == ["local", "pbs", "slurm", "ssh"]
