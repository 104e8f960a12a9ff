"""Name -> class, imported only when used: the one registry class behind engines and cluster kinds.

A registry starts from its built-ins, each a lazy ``"module:Class"`` string, so
listing names imports none of them. :meth:`Registry.register` adds a name or
shadows the one there (a class, or another lazy string); :meth:`Registry.unregister`
takes back the latest registration of a name and so restores what it shadowed
(a built-in comes back; a name only ever registered is gone). :meth:`Registry.names`
lists what :meth:`Registry.load` resolves, always: built-ins in their order, then
the rest sorted.

Imports nothing of merlin: the bottom layer (``engines/registry.py`` and
``clusters/registry.py`` each keep one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Entry = type | str


def load_entry(entry: Entry) -> Any:
    """A registered class, or the ``Class`` of a lazy ``"module:Class"`` string, imported now
    (through the import statement's machinery, so ``-X importtime`` sees it).

    A missing module raises ``ModuleNotFoundError`` naming that module."""
    if not isinstance(entry, str):
        return entry
    module, _, attr = entry.partition(":")
    return getattr(__import__(module, fromlist=["_"]), attr)


class Registry:
    """Names -> classes (or lazy ``"module:Class"`` strings), with registrations stacked over built-ins."""

    def __init__(self, builtins: Mapping[str, str]) -> None:
        self._builtins: dict[str, str] = dict(builtins)
        # name -> registrations, oldest first; the last one is in force
        self._stack: dict[str, list[Entry]] = {}

    def register(self, name: str, entry: Entry) -> None:
        """Add ``name``, or shadow what it resolves to now until :meth:`unregister`."""
        self._stack.setdefault(name, []).append(entry)

    def unregister(self, name: str) -> None:
        """Take back the latest :meth:`register` of ``name``: what it shadowed is in force again.
        A built-in is never removed; a name without registrations is left alone."""
        stack = self._stack.get(name)
        if not stack:
            return
        stack.pop()
        if not stack:
            del self._stack[name]

    def __contains__(self, name: object) -> bool:
        return name in self._builtins or name in self._stack

    def names(self) -> list[str]:
        """Every name :meth:`load` resolves, without importing any: built-ins in order, then the rest sorted."""
        return [*self._builtins, *sorted(n for n in self._stack if n not in self._builtins)]

    def entry(self, name: str) -> Entry:
        """What ``name`` resolves to, not imported (``KeyError`` if it is unknown)."""
        stack = self._stack.get(name)
        if stack:
            return stack[-1]
        return self._builtins[name]

    def load(self, name: str) -> Any:
        """The class of ``name``, imported now (``KeyError`` if unknown; see :func:`load_entry`)."""
        return load_entry(self.entry(name))
