"""Engine name -> engine class, imported only when a run of that engine is touched.

Adding an engine is one module implementing :class:`merlin.engines.base.Engine`
plus one line in :data:`ENGINES` (or :func:`register` at run time, as a test or
plugin does). The CLI's ``--engine`` choices come from :func:`names`; the
control plane never compares an engine's name. Imports nothing heavy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from merlin.errors import BadInput

if TYPE_CHECKING:  # pragma: no cover
    from merlin.engines.base import Engine
    from merlin.ledger.store import Ledger

#: name -> "module:Class" (strings: listing engines imports none of them)
ENGINES: dict[str, str] = {
    "local": "merlin.engines.local:LocalEngine",
    "ray": "merlin.engines.ray_engine:RayEngine",
}

#: The engine of work merlin runs in its own process (``targetgen execute`` without
#: another engine) and of runs submitted without ``--engine``.
DEFAULT_ENGINE = "local"

_REGISTERED: dict[str, type] = {}



def _load(module: str) -> Any:
    """Import ``module`` through the import statement's machinery (``-X importtime`` sees it)."""
    return __import__(module, fromlist=["_"])


def register(name: str, engine: type | str) -> None:
    """Add (or replace) an engine: a class, or a lazy ``"module:Class"`` string."""
    if isinstance(engine, str):
        _REGISTERED.pop(name, None)
        ENGINES[name] = engine
    else:
        _REGISTERED[name] = engine


def unregister(name: str) -> None:
    _REGISTERED.pop(name, None)


def names() -> list[str]:
    """Every engine, without importing any (built-in order first)."""
    return [*ENGINES, *sorted(n for n in _REGISTERED if n not in ENGINES)]


def check_name(name: str, flag: str = "--engine") -> str:
    if name not in ENGINES and name not in _REGISTERED:
        raise BadInput(f"{flag} {name!r}: expected one of {', '.join(names())}")
    return name


def engine_class(name: str) -> type:
    check_name(name)
    if name in _REGISTERED:
        return _REGISTERED[name]
    module, _, attr = ENGINES[name].partition(":")
    return getattr(_load(module), attr)


def create(name: str, ledger: Ledger) -> Engine:
    """A new engine object over ``ledger`` (no module-level state)."""
    cls: Any = engine_class(name)
    return cls(ledger)
