"""Rendering helpers: data on stdout, messages on stderr, NO_COLOR respected.

Rich honours ``NO_COLOR`` by itself; consoles are created on first use so that
importing the CLI costs nothing.

Everything merlin shows comes partly from outside: commands, validation output,
questions, engine messages. Two rules hold for every renderer (Rich or plain):

* no Rich markup is ever parsed in such text: ``[bold]hi[/bold] a[1]`` is shown
  as typed (styles come from ``Text`` objects and ``style=``, never from strings);
* control characters (ESC sequences, CR, BEL, backspace, other C0 and C1 codes,
  and bidi overrides) are shown as visible escapes such as ``\\x1b``, so text
  cannot move the cursor, clear the screen, retitle the terminal or hide itself.

Records keep the text as captured; only the view is neutralised. ``jobs logs``
is the exception: it writes the run's output bytes as they were captured (the
user's own program output, like ``cat`` of a log file).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable
from functools import cache
from typing import Any

#: C0 except tab and newline, DEL, C1, and the Unicode bidi controls (Trojan Source).
_UNSAFE = "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"  # compiled on first use (re's cache)


def _visible(m: re.Match[str]) -> str:
    ch = m.group(0)
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


def neutralise(text: Any) -> str:
    """``text`` with every control character shown as a visible escape (``\\x1b``, ``\\r``...)."""
    s = str(text) if text is not None else ""
    if "\r\n" in s:
        s = s.replace("\r\n", "\n")
    if s.isascii() and s.isprintable():  # nothing the pattern could match (it takes no printable ASCII)
        return s
    return re.sub(_UNSAFE, _visible, s)


def _plain() -> dict[str, Any]:
    """With NO_COLOR set, no escape codes at all: Rich alone drops colours but keeps bold and dim."""
    import os

    return {"color_system": None} if os.environ.get("NO_COLOR") else {}


def _console_class() -> Any:
    from rich.console import Console
    from rich.segment import Segment

    class SafeConsole(Console):
        """A Console that never parses markup in strings and neutralises control characters."""

        def render_str(self, text: str, **kwargs: Any) -> Any:  # every str renderable (print args, table cells, titles)
            kwargs["markup"] = False
            kwargs["emoji"] = False
            kwargs["highlight"] = False
            return super().render_str(neutralise(text), **kwargs)

        def _render_buffer(self, buffer: Any) -> str:  # safety net for Text objects built from outside text
            safe = [seg if seg.control or not re.search(_UNSAFE, seg.text) else Segment(neutralise(seg.text), seg.style) for seg in buffer]
            return super()._render_buffer(safe)

    return SafeConsole


@cache
def out() -> Any:
    """Console for data (stdout)."""
    return _console_class()(highlight=False, soft_wrap=False, markup=False, emoji=False, **_plain())


@cache
def err() -> Any:
    """Console for progress and messages (stderr)."""
    return _console_class()(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False, **_plain())


def styled(text: Any, style: str = "") -> Any:
    """A Rich ``Text`` of outside text with a style of ours (never markup)."""
    from rich.text import Text

    return Text(neutralise(text), style=style)


_EMITTED: list[bool] = []  # per process: did this command already print its JSON document?


def emit_json(data: Any) -> None:
    """Machine output: one JSON document on stdout, sorted keys, no colour (json escapes control characters)."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()
    _EMITTED.append(True)


def emitted() -> bool:
    return bool(_EMITTED)


def message(text: str, *, style: str | None = None) -> None:
    """A message for a person, on stderr (never mixed with --json data)."""
    err().print(text, style=style, markup=False)


def warn(text: str) -> None:
    message(f"warning: {text}", style="yellow")


def write_json_array(records: Iterable[bytes]) -> None:
    """Stream stored records (canonical JSON, redacted when written) to stdout as one
    JSON array, in ~1 MiB writes: no re-serialising, no 50 MiB string in memory."""
    sys.stdout.flush()
    write = sys.stdout.buffer.write
    buf = bytearray(b"[")
    sep = b"\n"
    for raw in records:
        buf += sep
        buf += raw.rstrip(b"\n")
        sep = b",\n"
        if len(buf) >= 1 << 20:
            write(buf)
            buf.clear()
    buf += b"\n]\n"  # "[\n]\n" when empty, as before
    write(buf)
    sys.stdout.buffer.flush()
