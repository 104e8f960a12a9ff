"""Tables whose identifiers stay whole: ids are never cut or split, the text columns give way.

Rich shrinks every column evenly when a table is too wide for the terminal, which cuts run
ids, artifact names and task ids (the very strings a user pastes into the next command).
Here widths are decided before Rich sees the table: an identifier column is as wide as its
longest value, a text column takes what is left (down to a floor), and when even the
identifiers do not fit, the line is printed longer than the terminal rather than cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

WHOLE = "whole"  # an identifier or a short word: always its full width, one line
GIVE = "give"  # free text: takes the room left, wraps (fold) or is cut (ellipsis)

GAP = 3  # " │ " between columns (show_edge=False, pad_edge=False)


@dataclass(frozen=True)
class Column:
    header: str
    kind: str = WHOLE
    overflow: Literal["fold", "ellipsis"] = "fold"  # for GIVE columns: "fold" wraps, "ellipsis" cuts
    floor: int = 12  # narrowest a GIVE column gets
    words_whole: bool = False  # a GIVE column that never splits a word (it holds ids among its words)
    style: str | None = None


def plain(cell: Any) -> str:
    """The text a cell shows: control characters as the visible escapes output.py prints."""
    from merlin.cli.output import neutralise

    return neutralise(cell.plain if hasattr(cell, "plain") else cell)


def widths(columns: Sequence[Column], rows: Sequence[Sequence[Any]], width: int) -> list[int]:
    """Column widths for ``width`` terminal columns: WHOLE columns are as wide as their
    longest line; GIVE columns share the rest in proportion to their natural width."""
    natural = []
    for i, col in enumerate(columns):
        lines = [col.header, *(line for row in rows for line in plain(row[i]).splitlines() or [""])]
        natural.append(max(len(x) for x in lines))
    out = list(natural)
    give = [i for i, c in enumerate(columns) if c.kind == GIVE]
    if give:
        fixed = sum(natural[i] for i in range(len(columns)) if i not in give)
        room = width - fixed - GAP * (len(columns) - 1)
        wanted = sum(natural[i] for i in give) or 1
        for i in give:
            share = room * natural[i] // wanted if room > 0 else 0
            least = max(len(w) for row in rows for w in plain(row[i]).split() or [""]) if columns[i].words_whole and rows else 0
            out[i] = max(min(natural[i], share), min(columns[i].floor, natural[i]), len(columns[i].header), least, 1)
    return out


def build(columns: Sequence[Column], rows: Sequence[Sequence[Any]], width: int, **table_kw: Any) -> Any:
    """A Rich table with the widths above (``show_edge=False, pad_edge=False`` unless given)."""
    from rich.table import Table

    table_kw.setdefault("show_edge", False)
    table_kw.setdefault("pad_edge", False)
    t = Table(**table_kw)
    for col, w in zip(columns, widths(columns, rows, width), strict=True):
        whole = col.kind == WHOLE
        t.add_column(col.header, width=w, no_wrap=whole or col.overflow == "ellipsis", overflow="ignore" if whole else col.overflow, style=col.style)
    for row in rows:
        t.add_row(*row)
    return t


def show(table: Any, console: Any = None) -> None:
    """Print ``table`` whole: if its fixed columns need more than the terminal, the lines are
    longer than the terminal (it wraps them) rather than cut by Rich."""
    from rich.measure import Measurement

    from merlin.cli.output import out

    console = console or out()
    need = Measurement.get(console, console.options.update_width(10_000), table).maximum
    if need <= console.width:
        console.print(table)
        return
    from merlin.cli.output import _console_class

    wide = _console_class()(  # the same safe console (no markup, control characters shown), only wider
        file=console.file, markup=False, emoji=False, width=need, color_system=console.color_system, force_terminal=console.is_terminal,
        no_color=console.no_color, highlight=False, soft_wrap=False,
    )
    wide.print(table)


def pairs(rows: Sequence[tuple[str, Any]], console: Any = None) -> None:
    """``key  value`` lines (bold keys), each value on one line however long: a run id or a
    command to paste is never wrapped or cut by Rich (the terminal may wrap the line)."""
    from rich.text import Text

    from merlin.cli.output import out, styled

    console = console or out()
    width = max((len(k) for k, _v in rows), default=0)
    for key, value in rows:
        line = Text(key.ljust(width) + "  ", style="bold")
        line.append(value if isinstance(value, Text) else styled(value))
        console.print(line, no_wrap=True, crop=False, overflow="ignore", soft_wrap=True)


def resource_text(resources: dict[str, Any]) -> str:
    """Ray's resources as ``CPU=2, memory=15.3 GiB, object_store_memory=7.7 GiB``."""
    from merlin.units import amount

    return ", ".join(f"{key}={amount(key, value)}" for key, value in sorted((resources or {}).items())) or "-"
