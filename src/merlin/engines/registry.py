"""Engine name -> engine class, imported only when a run of that engine is touched.

Adding an engine is one module implementing :class:`merlin.engines.base.Engine`
plus one line in :data:`ENGINES` (or :func:`register` at run time, as a test or
plugin does). The CLI's ``--engine`` choices come from :func:`names`; the
control plane never compares an engine's name. Imports nothing heavy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from merlin.errors import BadInput, named
from merlin.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    from merlin.engines.base import Engine
    from merlin.ledger.store import Ledger

#: The built-ins, name -> "module:Class" (strings: listing engines imports none of them).
#: Never changed at run time: :func:`register` shadows an entry, :func:`unregister` restores it.
ENGINES: dict[str, str] = {
    "local": "merlin.engines.local:LocalEngine",
    "ray": "merlin.engines.ray_engine:RayEngine",
}

#: The engine of work merlin runs in its own process (``targetgen execute`` without
#: another engine) and of runs submitted without ``--engine``.
DEFAULT_ENGINE = "local"

_REGISTRY = Registry(ENGINES)


def register(name: str, engine: type | str) -> None:
    """Add an engine, or shadow the one called ``name`` until :func:`unregister`: a class, or a lazy ``"module:Class"`` string."""
    _REGISTRY.register(name, engine)


def unregister(name: str) -> None:
    """Take back the latest :func:`register` of ``name`` (a shadowed built-in is in force again)."""
    _REGISTRY.unregister(name)


def names() -> list[str]:
    """Every engine, without importing any (built-in order first)."""
    return _REGISTRY.names()


def check_name(name: str, flag: str = "engine") -> str:
    """``name`` if it is an engine, else BadInput naming ``flag`` (see :func:`merlin.errors.named`)."""
    if name not in _REGISTRY:
        label, argument = named(flag)
        raise BadInput(f"{label} {name!r}: expected one of {', '.join(names())}", argument=argument)
    return name


def engine_class(name: str) -> type:
    check_name(name)
    cls: type = _REGISTRY.load(name)
    return cls


def create(name: str, ledger: Ledger) -> Engine:
    """A new engine object over ``ledger`` (no module-level state)."""
    cls: Any = engine_class(name)
    return cls(ledger)
