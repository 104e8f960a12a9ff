"""Cluster kind -> backend class, imported only when a cluster of that kind is used.

Adding a kind (Slurm, PBS, SSH) is one module implementing
:class:`merlin.clusters.base.ClusterBackend` plus one line here (or a call to
:func:`register` at run time, e.g. from a test or a plugin). The control plane
reaches clusters only through :func:`backend`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from merlin.errors import BadInput

if TYPE_CHECKING:  # pragma: no cover
    from merlin.clusters.base import ClusterBackend
    from merlin.ledger.store import Ledger

#: kind -> "module:Class" (strings, so listing kinds imports nothing)
BACKENDS: dict[str, str] = {
    "local": "merlin.clusters.local:LocalBackend",
    "slurm": "merlin.clusters.slurm:SlurmBackend",
    "pbs": "merlin.clusters.pbs:PbsBackend",
    "ssh": "merlin.clusters.ssh:SshBackend",
}

#: kind -> a class registered at run time (tests, plugins); wins over BACKENDS
_REGISTERED: dict[str, type] = {}



def _load(module: str) -> Any:
    """Import ``module`` through the import statement's machinery (``-X importtime`` sees it)."""
    return __import__(module, fromlist=["_"])


def register(kind: str, backend: type | str) -> None:
    """Add (or replace) a cluster kind: a class, or a lazy ``"module:Class"`` string."""
    if isinstance(backend, str):
        _REGISTERED.pop(kind, None)
        BACKENDS[kind] = backend
    else:
        _REGISTERED[kind] = backend


def unregister(kind: str) -> None:
    _REGISTERED.pop(kind, None)


def kinds() -> list[str]:
    """Every known kind, without importing any backend."""
    return sorted({*BACKENDS, *_REGISTERED})


def backend_class(kind: str) -> type:
    if kind in _REGISTERED:
        return _REGISTERED[kind]
    target = BACKENDS.get(kind)
    if target is None:
        raise BadInput(f"unknown cluster kind {kind!r}: expected one of {', '.join(kinds())}")
    module, _, name = target.partition(":")
    try:
        return getattr(_load(module), name)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        raise BadInput(f"cluster kind {kind!r} is not available in this merlin ({module} is missing)") from None


def backend(kind: str, ledger: Ledger) -> ClusterBackend:
    """A backend of ``kind`` over ``ledger`` (a new object: no module-level state)."""
    cls: Any = backend_class(kind)
    return cls(ledger)
