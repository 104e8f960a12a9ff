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
    drop: int = 0  # 0: always shown; otherwise dropped when the line would not fit, the highest number first


def plain(cell: Any) -> str:
    """The text a cell shows: control characters as the visible escapes output.py prints."""
    from merlin.cli.output import neutralise

    return neutralise(cell.plain if hasattr(cell, "plain") else cell)


def _natural(columns: Sequence[Column], rows: Sequence[Sequence[Any]]) -> list[int]:
    out = []
    for i, col in enumerate(columns):
        lines = [col.header, *(line for row in rows for line in plain(row[i]).splitlines() or [""])]
        out.append(max(len(x) for x in lines))
    return out


def _least(col: Column, i: int, rows: Sequence[Sequence[Any]], natural: int) -> int:
    """The narrowest a column may be: WHOLE its longest value; GIVE its floor (and its longest word if words_whole)."""
    if col.kind == WHOLE:
        return natural
    word = max((len(w) for row in rows for w in plain(row[i]).split()), default=0) if col.words_whole else 0
    return min(natural, max(col.floor, len(col.header), word))


def fit(columns: Sequence[Column], rows: Sequence[Sequence[Any]], width: int) -> tuple[list[int], list[int]]:
    """The columns shown at ``width`` (indices, in order) and their widths.

    Every column is at least as wide as :func:`_least` (identifiers whole); while the line is
    wider than ``width``, the droppable column with the highest ``drop`` goes. What is left over
    goes to the GIVE columns, in proportion to their natural width. When only columns that are
    never dropped are left and they still do not fit, the line is longer than the terminal (an
    identifier is never cut)."""
    natural = _natural(columns, rows)
    least = [_least(c, i, rows, natural[i]) for i, c in enumerate(columns)]
    kept = list(range(len(columns)))

    def need(ks: list[int]) -> int:
        return sum(least[i] for i in ks) + GAP * (len(ks) - 1)

    while need(kept) > width:
        droppable = [i for i in kept if columns[i].drop > 0]
        if not droppable:
            break
        kept.remove(max(droppable, key=lambda i: columns[i].drop))
    out = {i: least[i] for i in kept}
    give = [i for i in kept if columns[i].kind == GIVE]
    room = width - need(kept)
    wanted = sum(natural[i] - least[i] for i in give)
    for i in give:
        if room > 0 and wanted > 0:
            out[i] += min(natural[i] - least[i], room * (natural[i] - least[i]) // wanted)
    return kept, [out[i] for i in kept]


def widths(columns: Sequence[Column], rows: Sequence[Sequence[Any]], width: int) -> list[int]:
    """Column widths for ``width`` terminal columns (every column kept; see :func:`fit`)."""
    natural = _natural(columns, rows)
    kept, ws = fit([Column(c.header, c.kind, c.overflow, c.floor, c.words_whole, c.style) for c in columns], rows, width)
    return ws if len(kept) == len(columns) else natural


def build(columns: Sequence[Column], rows: Sequence[Sequence[Any]], width: int, **table_kw: Any) -> Any:
    """A Rich table of the columns that fit in ``width`` (see :func:`fit`), ``show_edge=False, pad_edge=False`` unless given."""
    from rich.table import Table

    table_kw.setdefault("show_edge", False)
    table_kw.setdefault("pad_edge", False)
    t = Table(**table_kw)
    kept, ws = fit(columns, rows, width)
    for i, w in zip(kept, ws, strict=True):
        col = columns[i]
        whole = col.kind == WHOLE
        t.add_column(col.header, width=w, no_wrap=whole or col.overflow == "ellipsis", overflow="ignore" if whole else col.overflow, style=col.style)
    for row in rows:
        t.add_row(*(row[i] for i in kept))
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


def pairs(rows: Sequence[tuple[str, Any]], console: Any = None, fold: Sequence[str] = ()) -> None:
    """``key  value`` lines (bold keys), each value on one line however long: a run id or a
    command to paste is never wrapped or cut by Rich (the terminal may wrap the line). The
    values of the keys in ``fold`` are prose: they wrap between words within the terminal, under
    their key's column."""
    from rich.table import Table
    from rich.text import Text

    from merlin.cli.output import out, styled

    console = console or out()
    width = max((len(k) for k, _v in rows), default=0)
    for key, value in rows:
        text = value if isinstance(value, Text) else styled(value)
        if key in fold and width + 2 + len(text) > console.width:
            grid = Table.grid(padding=(0, 2))
            grid.add_column(no_wrap=True, width=width, style="bold")
            grid.add_column(overflow="fold", width=max(console.width - width - 2, 12))
            grid.add_row(key, text)
            console.print(grid)
            continue
        line = Text(key.ljust(width) + "  ", style="bold")
        line.append(text)
        console.print(line, no_wrap=True, crop=False, overflow="ignore", soft_wrap=True)


def resource_text(resources: dict[str, Any]) -> str:
    """Ray's resources as ``CPU=2, memory=15.3 GiB, object_store_memory=7.7 GiB``."""
    from merlin.units import amount

    return ", ".join(f"{key}={amount(key, value)}" for key, value in sorted((resources or {}).items())) or "-"
