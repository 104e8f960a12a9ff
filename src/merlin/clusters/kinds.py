"""Scheduler-backed cluster kinds (slurm, pbs, ssh) seen through the control plane.

Until every caller goes through :mod:`merlin.clusters.registry`, the control
plane hands records whose ``kind`` is not ``local`` to this module: it finds
the backend (registry first, this module's table otherwise) and turns its
record into the :class:`merlin.clusters.local.ClusterState` that ``cluster
status``/``list`` print.
"""

from __future__ import annotations

from typing import Any

from merlin.errors import BadInput

#: kind -> "module:Class" for the kinds of issue 11 (also registered in registry.py)
HPC_BACKENDS = {
    "slurm": "merlin.clusters.slurm:SlurmBackend",
    "pbs": "merlin.clusters.pbs:PbsBackend",
    "ssh": "merlin.clusters.ssh:SshBackend",
}


def backend_for(kind: str, ledger) -> Any:
    import importlib

    try:
        from merlin.clusters import registry  # type: ignore[attr-defined]

        return registry.backend(kind, ledger)
    except (ImportError, AttributeError):
        pass
    except BadInput:
        if kind not in HPC_BACKENDS:
            raise
    target = HPC_BACKENDS.get(kind)
    if target is None:
        raise BadInput(f"unknown cluster kind {kind!r}: expected one of local, {', '.join(sorted(HPC_BACKENDS))}")
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)(ledger)


def state_of(record) -> Any:
    """A :class:`ClusterState` for ``cluster status``: the record's own status word."""
    from merlin.clusters.local import ClusterState

    return ClusterState(record.name, str(record.status), record.message, record, len(record.processes))


def observe_state(ledger, record) -> Any:
    return state_of(backend_for(record.kind, ledger).observe(record))


def stop(ledger, record, grace: float = 5.0, progress=None) -> Any:
    return backend_for(record.kind, ledger).stop(record, grace=grace, progress=progress)
