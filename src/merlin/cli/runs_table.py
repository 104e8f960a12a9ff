"""The runs table of ``jobs list`` and ``jobs watch``, in two renderers with one layout:
Rich for people (``runs_table``) and plain fixed-width text for long listings
(``runs_text``).

The layout (docs/views.md): columns in :data:`COLUMNS` order; when a line would be wider
than the terminal, columns drop in :data:`DROP_ORDER` (the first named drops first); the run
id and the status never drop and are never cut; the message and WAITING-ON are ellipsized.
When OUTCOME has dropped, a run that succeeded at a TargetGen gate shows the gate as its
status (:data:`GATE`: a run waiting for an operator never reads only "succeeded"). Times are relative
("4m ago"); ``-o wide`` shows every column with absolute UTC times and whole messages.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from merlin.cli.common import STYLE, age, short_time, status_styled
from merlin.cli.tables import GAP, GIVE, WHOLE, Column, fit

#: the columns that drop, the first named first (RUN ID and STATUS never drop)
DROP_ORDER = ("WORKFLOW", "TARGET", "TRIES", "ENGINE", "WAITING-ON", "AGE", "MESSAGE", "OUTCOME")

_WAITING = "WAITING-ON"

#: STATUS of a run that succeeded at a TargetGen gate, when OUTCOME has dropped (no wider than "succeeded")
GATE = {"awaiting_operator": "operator?", "awaiting_response": "response?", "blocked": "blocked"}


def _waiting_on(d: dict[str, Any]) -> str:
    return (d.get("waiting_on") or "").replace("\n", " ") if d.get("status") == "waiting" else ""


def _status(d: dict[str, Any]) -> str:
    stale = d.get("_stale")
    return d.get("status", "?") + (f" (stale {age(None, seconds=stale, suffix='')})" if stale is not None else "")


def _message(d: dict[str, Any]) -> str:
    return (d.get("message") or "").replace("\n", " ")


Cell = Callable[[dict[str, Any], float], str]

#: (header, cell, kind) in the order shown
COLUMNS: list[tuple[str, Cell, str]] = [
    ("RUN ID", lambda d, now: d.get("run_id", "?"), WHOLE),
    ("STATUS", lambda d, now: _status(d), WHOLE),
    ("OUTCOME", lambda d, now: d.get("outcome") or "-", WHOLE),
    ("AGE", lambda d, now: age(d.get("updated_at"), now=now), WHOLE),
    ("ENGINE", lambda d, now: d.get("engine", "?"), WHOLE),
    ("TRIES", lambda d, now: str(len(d.get("attempts") or [])), WHOLE),
    ("TARGET", lambda d, now: d.get("target", "?"), WHOLE),
    ("WORKFLOW", lambda d, now: d.get("workflow", "?"), WHOLE),
    (_WAITING, lambda d, now: _waiting_on(d), GIVE),
    ("MESSAGE", lambda d, now: _message(d), GIVE),
]

#: ``-o wide``: everything, absolute times, nothing cut
WIDE: list[tuple[str, Cell]] = [
    ("RUN ID", lambda d, now: d.get("run_id", "?")),
    ("STATUS", lambda d, now: _status(d)),
    ("OUTCOME", lambda d, now: d.get("outcome") or "-"),
    ("ENGINE", lambda d, now: d.get("engine", "?")),
    ("CLUSTER", lambda d, now: ((d.get("cluster") or {}).get("name") if isinstance(d.get("cluster"), dict) else d.get("cluster")) or "-"),
    ("TRIES", lambda d, now: str(len(d.get("attempts") or []))),
    ("TARGET", lambda d, now: d.get("target", "?")),
    ("WORKFLOW", lambda d, now: d.get("workflow", "?")),
    ("CREATED", lambda d, now: short_time(d.get("created_at"))),
    ("UPDATED", lambda d, now: short_time(d.get("updated_at"))),
    ("OBSERVED", lambda d, now: short_time(d.get("observed_at"))),
    (_WAITING, lambda d, now: _waiting_on(d) or "-"),
    ("MESSAGE", lambda d, now: _message(d)),
]


def layout(rows: list[dict[str, Any]], width: int, wide: bool = False, now: float | None = None) -> tuple[list[str], list[list[str]], list[int]]:
    """(headers, cells per row, widths) of the columns shown at ``width`` (``wide``: all, unfitted)."""
    from merlin.cli.output import neutralise

    now = time.time() if now is None else now
    if wide:
        heads = [h for h, _f in WIDE]
        cells = [[neutralise(fn(d, now)) for _h, fn in WIDE] for d in rows]
        ws = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(heads)]
        return heads, cells, ws
    shown = [c for c in COLUMNS if c[0] != _WAITING or any(d.get("status") == "waiting" for d in rows)]
    columns = [Column(h, kind, overflow="ellipsis", floor=12 if h == "MESSAGE" else len(h), drop=_drop(h)) for h, _f, kind in shown]
    cells = [[neutralise(fn(d, now)) for _h, fn, _k in shown] for d in rows]
    kept, ws = fit(columns, cells, width)
    if 2 not in kept:  # OUTCOME dropped: the outcome speaks for the status it qualifies, then fit again without it
        for d, row in zip(rows, cells, strict=True):
            if d.get("outcome") not in (None, "", "completed"):
                row[1] = GATE.get(d["outcome"], neutralise(d["outcome"]))
        rest = [i for i in range(len(shown)) if i != 2]
        kept, ws = fit([columns[i] for i in rest], [[row[i] for i in rest] for row in cells], width)
        kept = [rest[i] for i in kept]
    return [shown[i][0] for i in kept], [[row[i] for i in kept] for row in cells], ws


def _drop(header: str) -> int:
    return len(DROP_ORDER) - DROP_ORDER.index(header) if header in DROP_ORDER else 0


def runs_table(rows: list[dict[str, Any]], width: int | None = None, wide: bool = False) -> Any:
    """The runs table for people (Rich), fitted to the terminal (``wide``: every column)."""
    from rich.table import Table

    from merlin.cli.output import out, styled

    heads, cells, ws = layout(rows, width or out().width, wide)
    t = Table(show_edge=False, pad_edge=False)
    for h, w in zip(heads, ws, strict=True):
        t.add_column(h, no_wrap=True, overflow="ellipsis" if h in ("MESSAGE", _WAITING) and not wide else "ignore", width=w)
    for d, row in zip(rows, cells, strict=True):
        t.add_row(*(styled(c, STYLE.get(d.get("status", ""), "")) if h == "STATUS" else c for h, c in zip(heads, row, strict=True)))
    return t


def runs_text(rows: list[dict[str, Any]], width: int, colour: bool, wide: bool = False) -> str:
    """The same columns as plain fixed-width text: Rich needs ~0.5 ms a row, which
    makes a 1,000-run listing slower than Ray's own; this takes ~5 us a row."""
    heads, cells, ws = layout(rows, width, wide)
    ansi = {"green": "32", "red": "31", "yellow": "33", "cyan": "36", "blue": "34", "magenta": "35", "dim": "2"}
    sep = " " * GAP

    def cut(text: str, w: int) -> str:
        return text.ljust(w) if len(text) <= w else text[: max(w - 1, 0)] + "\u2026"

    lines = [sep.join(cut(h, w) for h, w in zip(heads, ws, strict=True)).rstrip()]
    for d, row in zip(rows, cells, strict=True):
        out = []
        for h, c, w in zip(heads, row, ws, strict=True):
            cell = cut(c, w) if not wide else c.ljust(w)
            code = ansi.get(STYLE.get(d.get("status", ""), "")) if colour and h == "STATUS" else None
            out.append(f"\x1b[{code}m{cell}\x1b[0m" if code else cell)
        lines.append(sep.join(out).rstrip())
    return "\n".join(lines) + "\n"


def runs_names(rows: list[dict[str, Any]]) -> str:
    """``-o name``: one run id a line (for xargs and shell loops)."""
    return "".join(f"{d.get('run_id', '?')}\n" for d in rows)


def attempt_row(d: dict[str, Any]) -> list[tuple[str, str]]:
    """``jobs status``'s attempt line for a run with retry budgets (docs/retries.md), or none."""
    from merlin.clock import utcnow
    from merlin.ledger.failures import attempt_line

    line = attempt_line(d, utcnow())
    return [("attempt", line)] if line else []


def print_replicas(att: dict[str, Any]) -> None:
    """A gang's latest attempt: one line per replica."""
    if not att.get("replicas"):
        return
    from merlin.cli.output import out
    from merlin.cli.tables import GIVE, Column, build, show

    columns = [Column(h) for h in ("replica", "status", "host", "pid", "exit")] + [Column("how it ended", GIVE)]
    rows = [
        [str(r["index"]), status_styled(r["status"]), r.get("host") or "-", str(r.get("pid") or r.get("submission_id") or "-"),
         "-" if r.get("exit_code") is None else str(r["exit_code"]), r.get("message") or "-"]
        for r in att["replicas"]
    ]  # fmt: skip
    show(build(columns, rows, out().width), out())
