"""The one state-machine helper behind the run, cluster, task and lease tables.

A :class:`Machine` is a ``str`` Enum of states, the table of legal moves
(``None``: no record yet -> the states a new record may start in), the terminal
states, and whether staying put counts as a move. It answers :meth:`Machine.can`,
raises :class:`IllegalTransition` from :meth:`Machine.check`, and renders the
table ``docs/`` shows (:meth:`Machine.table`, written by ``tools/gen_state_docs.py``).

The machines: ``merlin.ledger.status`` (runs, clusters), ``merlin.leases.states``
(leases), ``merlin.targetgen.vocab`` (tasks). Imports nothing heavy and nothing of
merlin but its errors (the bottom layer: TargetGen uses it below the ledger).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from enum import Enum
from typing import Any, Generic, TypeVar

from merlin.errors import Conflict

S = TypeVar("S", bound=Enum)


class IllegalTransition(Conflict):
    """A lost race (or a bug): something tried to move a record where its table does not go,
    usually because another process moved it first. Exit 3, code ``illegal_transition``."""

    code = "illegal_transition"

    def __init__(self, message: str, subject: str, old: Any, new: Any) -> None:
        super().__init__(message)
        self.subject = subject
        self.old = old
        self.new = new


#: What :meth:`Machine.check` raises: ``error(message, subject, old, new)``.
ErrorFactory = Callable[[str, str, Any, Any], Exception]


class Machine(Generic[S]):
    """One state machine: ``states`` (a ``str`` Enum), ``moves`` (old -> the states it may become;
    ``None`` is "no record yet") and the ``terminal`` states.

    ``noop_is_move``: whether ``can(s, s)`` holds for every state (runs and tasks: a
    writer may record the status a record already has) or only where the table says so
    (clusters and leases). ``noun``/``what``/``hint`` word the error ("lease L-1: illegal state
    change granted -> waiting"); ``error`` is its class (default :class:`IllegalTransition`)."""

    def __init__(
        self, states: type[S], moves: Mapping[S | None, Iterable[S]], *, terminal: Iterable[S], noop_is_move: bool,
        noun: str, what: str = "status", hint: str = "", error: ErrorFactory = IllegalTransition,
    ) -> None:  # fmt: skip
        self.states = states
        self.moves: dict[S | None, frozenset[S]] = {old: frozenset(new) for old, new in moves.items()}
        self.terminal: frozenset[S] = frozenset(terminal)
        self.noop_is_move = noop_is_move
        self.noun = noun
        self.what = what
        self.hint = hint
        self.error = error
        unknown = set(self.moves) - {None, *states}
        missing = set(states) - set(self.moves)
        if unknown or missing:
            raise ValueError(f"{states.__name__} table: states without a row {sorted(map(str, missing))}, rows of no state {sorted(map(str, unknown))}")

    def state(self, value: S | str | None) -> S | None:
        return None if value is None else self.states(value)

    def is_terminal(self, value: S | str) -> bool:
        return self.states(value) in self.terminal

    def can(self, old: S | str | None, new: S | str) -> bool:
        """Is ``old -> new`` a legal move (``old`` None: a new record starting at ``new``)?"""
        old_s, new_s = self.state(old), self.states(new)
        return (self.noop_is_move and old_s == new_s) or new_s in self.moves[old_s]

    def message(self, subject: str, old: S | str | None, new: S | str) -> str:
        return f"{self.noun} {subject}: illegal {self.what} change {self.state(old)} -> {self.states(new)}{self.hint}"

    def illegal(self, subject: str, old: S | str | None, new: S | str) -> Exception:
        """The error of a refused move (of class ``error``)."""
        return self.error(self.message(subject, old, new), subject, self.state(old), self.states(new))

    def check(self, subject: str, old: S | str | None, new: S | str) -> None:
        """Raise :meth:`illegal` unless ``old -> new`` is legal (:meth:`can`)."""
        if not self.can(old, new):
            raise self.illegal(subject, old, new)

    # ------------------------------------------------------------------ docs

    def table(self, title: str | None = None) -> str:
        """The Markdown table ``docs/`` shows: each state, the ``#:`` comment above its member, and what it can become."""
        docs = member_docs(self.states)
        rows = [f"| {title or self.what} | meaning | can become |", "| --- | --- | --- |"]
        if None in self.moves:
            rows.append(f"| (new) | no record yet | {_cell(self.moves[None])} |")
        for m in self.states:
            rows.append(f"| `{m.value}` | {docs.get(m.name, '')} | {_cell(self.moves.get(m, frozenset()))} |")
        return "\n".join(rows)


def member_docs(enum: type[Enum]) -> dict[str, str]:
    """The ``#:`` comment lines right above each member of ``enum``, joined (read from its source)."""
    import inspect

    out: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(enum).splitlines():
        text = line.strip()
        if text.startswith("#:"):
            pending.append(text[2:].strip())
            continue
        m = re.match(r"([A-Z_]+)\s*=", text)
        if m and pending:
            out[m.group(1)] = " ".join(pending)
        pending = []
    return out


def _cell(states: Iterable[Any]) -> str:
    names = sorted(s.value for s in states)
    return ", ".join(f"`{n}`" for n in names) if names else "— (final)"
