"""Options every command group shares, declared once: ``--state-root``, ``--json``,
``--cluster``, and the type of every duration flag (one grammar: merlin.durations).

Imports Typer only; the command modules use these as parameter defaults.
"""

from __future__ import annotations

from typing import Any

import typer
from typer._click.types import ParamType  # typer >= 0.24 vendors click

STATE_ROOT_HELP = "Ledger directory (default: $MERLIN_STATE_ROOT or build/generated/ray)."
CLUSTER_HELP = "Ray cluster name for --engine ray (default: default)."

StateRootOpt: Any = typer.Option(None, "--state-root", help=STATE_ROOT_HELP, show_default=False)
JsonOpt: Any = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")
RecordFormatOpt: Any = typer.Option(
    "merlin", "--format", metavar="merlin|upstream", show_default=False,
    help="JSON shape: merlin (default) or upstream (upstream Merlin's record fields, docs/records/upstream.md; implies --json).",
)


def upstream_format(fmt: str) -> bool:
    """True for ``--format upstream``; anything but merlin or upstream is a usage error naming the flag."""
    if fmt not in ("merlin", "upstream"):
        from merlin.errors import BadInput

        raise BadInput(f"--format {fmt!r}: expected merlin or upstream")
    return fmt == "upstream"


def cluster_option(help: str = CLUSTER_HELP) -> Any:
    """``--cluster NAME``: the Ray cluster a run goes to (None: the engine's default, or the run's own on retry)."""
    return typer.Option(None, "--cluster", help=help)


class Duration(ParamType):
    """A duration flag: the text as merlin.durations reads it, to seconds (a float).

    A value the grammar refuses is a usage error naming the flag, as click words it:
    ``Invalid value for '--time': 90 what? 90s or 90m ...``.
    """

    name = "duration"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if value is None or isinstance(value, float):
            return value
        from merlin.durations import BadDuration, parse_duration

        try:
            return parse_duration(value, getattr(param, "name", None) or "duration")
        except BadDuration as exc:
            self.fail(exc.reason, param, ctx)


DURATION = Duration()


def duration_option(default: str | None, *decls: str, help: str) -> Any:
    """An option that takes a duration (``30s``, ``15m``, ``2h``, ``1d``, ``[D-]HH:MM:SS``); the command gets seconds."""
    return typer.Option(default, *decls, click_type=DURATION, help=help)


OUTPUT_MODES = ("table", "wide", "json", "name")


def output_option() -> Any:
    """``-o/--output table|wide|json|name`` (kubectl's): a fitted table (default), every column with
    absolute times, JSON (as --json), or one identifier a line."""
    return typer.Option(None, "--output", "-o", help="table (fitted, default), wide (every column, absolute times), json (as --json), name (one id a line).",
                        metavar="|".join(OUTPUT_MODES), show_default=False)


def output_mode(output: str | None, json: bool) -> str:
    """The mode asked for: ``--json`` is ``-o json``; an unknown mode is a one-line error naming the choices."""
    from merlin.errors import BadInput

    if output is None:
        return "json" if json else "table"
    if output not in OUTPUT_MODES:
        raise BadInput(f"-o {output!r}: expected one of {', '.join(OUTPUT_MODES)}", argument="output")
    if json and output != "json":
        raise BadInput(f"--json and -o {output} disagree: give one of them", argument="output", related=["json"])
    return output
