"""merlin's ledger: the durable record of runs, clusters and leases (see docs/ray.md).

Importing this package is cheap: its names load when first used (``merlin.ledger.paths``, which
every front end's defaults read, never pulls in the store), and the records (``models.py``, light,
no pydantic) when first used too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from merlin.ledger.paths import Layout, resolve_state_root
    from merlin.ledger.status import RunStatus
    from merlin.ledger.store import Ledger, set_status

__all__ = ["Layout", "Ledger", "RunStatus", "resolve_state_root", "set_status"]

_WHERE = {"Layout": "paths", "resolve_state_root": "paths", "RunStatus": "status", "Ledger": "store", "set_status": "store"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        from importlib import import_module

        return getattr(import_module(f"merlin.ledger.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'merlin.ledger' has no attribute {name!r}")
