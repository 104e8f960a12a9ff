"""The runs table of ``jobs list`` and ``jobs watch``, in two renderers with one layout:
Rich for people (``runs_table``) and plain fixed-width text for long listings
(``runs_text``). The column set is chosen by the terminal width alone; ids stay whole.
"""

from __future__ import annotations

from typing import Any

from merlin.cli.common import STYLE, short_time, status_styled

_RUN_COLUMNS: list[tuple[str, Any, int]] = [  # (header, cell function, nominal width used to choose the column set)
    ("RUN ID", lambda d: d.get("run_id", "?"), 40),
    ("STATUS", lambda d: d.get("status", "?"), 9),
    ("OUTCOME", lambda d: d.get("outcome") or "-", 17),
    ("UPDATED", lambda d: short_time(d.get("updated_at")), 20),
    ("ENGINE", lambda d: d.get("engine", "?"), 6),
    ("TRIES", lambda d: str(len(d.get("attempts") or [])), 5),
    ("TARGET", lambda d: d.get("target", "?"), 16),
    ("WORKFLOW", lambda d: d.get("workflow", "?"), 16),
]


_ALWAYS = 3  # RUN ID, STATUS and OUTCOME at every width (a run waiting for an operator must not read only "succeeded")


_MESSAGE_FLOOR = 20


def _run_columns(width: int) -> list[tuple[str, Any, int]]:
    """The columns shown at ``width``: decided by the width alone (nominal widths), never by the
    data, so the same terminal always shows the same columns."""
    keep = list(_RUN_COLUMNS[:_ALWAYS])
    used = sum(w + 3 for _h, _f, w in keep) + _MESSAGE_FLOOR
    for col in _RUN_COLUMNS[_ALWAYS:]:
        if used + col[2] + 3 > width:
            break
        keep.append(col)
        used += col[2] + 3
    return keep


def _run_layout(rows: list[dict[str, Any]], width: int) -> tuple[list[tuple[str, Any, int]], dict[str, int], int, int]:
    """Columns fitted to ``width``: every shown column whole (ids are never cut), then the two
    text columns that give way: WAITING-ON (what a waiting run waits on; on terminals of at least
    _WAITING_FROM columns) and the message (at least a few characters; the line grows past the
    terminal before an id is cut). Returns (columns, widths, waiting-on width or 0, message width)."""
    from merlin.cli.output import neutralise

    keep = _run_columns(width)
    widths = {h: max([len(h), *(len(neutralise(str(fn(d)))) for d in rows)]) for h, fn, _w in keep}
    rest = width - sum(widths[h] + 3 for h, _f, _w in keep)
    waiting = 0
    if width >= _WAITING_FROM:
        longest = max([len(_WAITING), *(len(_waiting_on(d)) for d in rows)])
        waiting = min(longest, max(len(_WAITING), rest - _MESSAGE_FLOOR - 3))
        rest -= waiting + 3
    return keep, widths, waiting, max(rest, 12)


_WAITING = "WAITING-ON"


_WAITING_FROM = 100


def _waiting_on(d: dict[str, Any]) -> str:
    return (d.get("waiting_on") or "").replace("\n", " ") if d.get("status") == "waiting" else ""


def runs_table(rows: list[dict[str, Any]], width: int | None = None) -> Any:
    """The runs table for people (Rich), fitted to the terminal."""
    from rich.table import Table

    from merlin.cli.output import out

    keep, widths, waiting, message_width = _run_layout(rows, width or out().width)
    t = Table(show_edge=False, pad_edge=False)
    for h, _fn, _p in keep:
        t.add_column(h, no_wrap=True, overflow="ignore", width=widths[h])  # whole: as wide as the longest value
    if waiting:
        t.add_column(_WAITING, no_wrap=True, overflow="ellipsis", width=waiting)  # gives way: cut
    t.add_column("MESSAGE", no_wrap=True, overflow="ellipsis", width=message_width)  # gives way: cut
    for d in rows:
        cells = [status_styled(fn(d)) if h == "STATUS" else fn(d) for h, fn, _p in keep]
        if waiting:
            cells.append(_waiting_on(d))
        t.add_row(*cells, (d.get("message") or "").replace("\n", " "))
    return t


def runs_text(rows: list[dict[str, Any]], width: int, colour: bool) -> str:
    """The same columns as plain fixed-width text: Rich needs ~0.5 ms a row, which
    makes a 1,000-run listing slower than Ray's own; this takes ~5 us a row."""
    keep, widths, waiting, message_width = _run_layout(rows, width)
    ansi = {"green": "32", "red": "31", "yellow": "33", "cyan": "36", "blue": "34", "magenta": "35", "dim": "2"}

    from merlin.cli.output import neutralise

    def fit(text: str, w: int) -> str:
        text = neutralise(text)  # outside text (messages, targets) never reaches the terminal raw
        return text.ljust(w) if len(text) <= w else text[: max(w - 1, 0)] + "\u2026"

    head = [*(fit(h, widths[h]) for h, _f, _p in keep)] + ([fit(_WAITING, waiting)] if waiting else [])
    lines = ["   ".join([*head, "MESSAGE"])]
    for d in rows:
        cells = []
        for h, fn, _p in keep:
            cell = fit(str(fn(d)), widths[h])
            code = ansi.get(STYLE.get(cell.strip(), "")) if colour and h == "STATUS" else None
            cells.append(f"\x1b[{code}m{cell}\x1b[0m" if code else cell)
        if waiting:
            cells.append(fit(_waiting_on(d), waiting))
        cells.append(fit((d.get("message") or "").replace("\n", " "), message_width).rstrip())
        lines.append("   ".join(cells))
    return "\n".join(lines) + "\n"

