"""Rendering helpers: data on stdout, messages on stderr, NO_COLOR respected.

Rich honours ``NO_COLOR`` by itself; consoles are created on first use so that
importing the CLI costs nothing.
"""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from typing import Any


def _plain() -> dict[str, Any]:
    """With NO_COLOR set, no escape codes at all: Rich alone drops colours but keeps bold and dim."""
    import os

    return {"color_system": None} if os.environ.get("NO_COLOR") else {}


@lru_cache(maxsize=None)
def out() -> Any:
    """Console for data (stdout)."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False, **_plain())


@lru_cache(maxsize=None)
def err() -> Any:
    """Console for progress and messages (stderr)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True, **_plain())


_EMITTED: list[bool] = []  # per process: did this command already print its JSON document?


def emit_json(data: Any) -> None:
    """Machine output: one JSON document on stdout, sorted keys, no colour."""
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
