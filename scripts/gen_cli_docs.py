#!/usr/bin/env python3
"""Write docs/cli.md from the Typer app (tests/test_cli_docs.py checks it is in sync).

Typer's own ``typer ... utils docs`` cuts each command's summary at 45 characters with
``...`` and, in Rich markup mode, writes HTML entities (``&#x27;``, ``&lt;name&gt;``) into
Markdown. This uses the same page layout with whole first sentences and plain text.
"""

from __future__ import annotations

import argparse
import html
import sys
from pathlib import Path
from typing import Any


def render() -> str:
    import os

    os.environ.pop("MERLIN_INVOKED_AS", None)  # examples spelled `merlin`, however the generator was started
    import typer
    from typer.cli import get_docs_for_click

    try:  # typer 0.27 carries its own copy of click
        from typer import _click as click  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - typer on the real click
        import click

    from merlin.cli.app import app

    original = click.Command.get_short_help_str

    def whole_summary(self: Any, limit: int = 45) -> str:
        return original(self, limit=10_000)  # the first sentence, never cut

    click.Command.get_short_help_str = whole_summary  # type: ignore[method-assign]
    try:
        command = typer.main.get_command(app)
        with click.Context(command, info_name="merlin") as ctx:  # no markup mode: no HTML in Markdown
            docs = get_docs_for_click(obj=command, ctx=ctx, name="merlin", title="merlin CLI reference")
    finally:
        click.Command.get_short_help_str = original  # type: ignore[method-assign]
    return _examples_as_markdown(html.unescape(docs.strip())) + "\n"


def _examples_as_markdown(text: str) -> str:
    """Each help's Examples block (click's ``\\b`` paragraph) as a Markdown console block."""
    import re

    def block(m: re.Match[str]) -> str:
        lines = [line[2:] for line in m.group(1).splitlines()]
        return "**Examples**:\n\n```console\n" + "\n".join(lines) + "\n```\n"

    return re.sub(r"\x08\nExamples:\n((?:  .*\n)+)", block, text + "\n").rstrip("\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, help="write here instead of stdout")
    args = parser.parse_args()
    text = render()
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
