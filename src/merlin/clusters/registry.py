"""Cluster kind -> backend class, imported only when a cluster of that kind is used.

Adding a kind (Slurm, PBS, SSH) is one module implementing
:class:`merlin.clusters.base.ClusterBackend` plus one line here (or a call to
:func:`register` at run time, e.g. from a test or a plugin). The control plane
reaches clusters only through :func:`backend`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from merlin.errors import BadInput
from merlin.registry import Registry, load_entry

if TYPE_CHECKING:  # pragma: no cover
    from merlin.clusters.base import ClusterBackend
    from merlin.ledger.store import Ledger

#: The built-ins, kind -> "module:Class" (strings, so listing kinds imports nothing), in the
#: order :func:`kinds` lists them. Never changed at run time: :func:`register` shadows an
#: entry, :func:`unregister` restores it.
BACKENDS: dict[str, str] = {
    "local": "merlin.clusters.local:LocalBackend",
    "pbs": "merlin.clusters.pbs:PbsBackend",
    "slurm": "merlin.clusters.slurm:SlurmBackend",
    "ssh": "merlin.clusters.ssh:SshBackend",
}

_REGISTRY = Registry(BACKENDS)

#: :func:`env_placement` of each built-in, without importing its backend on every Ray submit (the
#: local backend brings psutil, http.client and dataclasses); a test checks it against the classes
PLACEMENT: dict[str, tuple[bool, str | None]] = {
    "local": (True, None),
    "pbs": (True, None),
    "slurm": (True, None),
    "ssh": (False, "~/.cache/merlin/envs"),
}


def register(kind: str, backend: type | str) -> None:
    """Add a cluster kind, or shadow the one there until :func:`unregister`: a class, or a lazy ``"module:Class"`` string."""
    _REGISTRY.register(kind, backend)


def unregister(kind: str) -> None:
    """Take back the latest :func:`register` of ``kind`` (a shadowed built-in is in force again)."""
    _REGISTRY.unregister(kind)


def kinds() -> list[str]:
    """Every known kind, without importing any backend."""
    return _REGISTRY.names()


def backend_class(kind: str) -> type:
    if kind not in _REGISTRY:
        raise BadInput(f"unknown cluster kind {kind!r}: expected one of {', '.join(kinds())}")
    entry = _REGISTRY.entry(kind)
    try:
        cls: type = load_entry(entry)
    except ModuleNotFoundError as exc:
        module = entry.partition(":")[0] if isinstance(entry, str) else None
        if module is None or exc.name != module:
            raise
        raise BadInput(f"cluster kind {kind!r} is not available in this merlin ({module} is missing)") from None
    return cls


def backend(kind: str, ledger: Ledger) -> ClusterBackend:
    """A backend of ``kind`` over ``ledger`` (a new object: no module-level state)."""
    cls: Any = backend_class(kind)
    return cls(ledger)


def env_placement(kind: str) -> tuple[bool, str | None]:
    """Whether a cluster kind's nodes see this state root (run env specs are read there, else they
    ride on the command line), and the kind's default env cache as its nodes see it (None: the
    Layout's, beside the state root). docs/environments.md, "Where envs live"."""
    if kind in PLACEMENT and kind in _REGISTRY and _REGISTRY.entry(kind) == BACKENDS[kind]:
        return PLACEMENT[kind]  # a built-in, not shadowed by register()
    try:
        cls = backend_class(kind)
    except BadInput:  # a plugin kind gone: assume one filesystem
        return True, None
    return bool(getattr(cls, "nodes_see_state_root", True)), getattr(cls, "default_env_cache", None)
