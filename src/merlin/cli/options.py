"""Options every command group shares, declared once: ``--state-root``, ``--json``,
``--cluster``, ``--engine``, and the type of every duration flag (one grammar: merlin.durations).

A shared option not given on the command line takes its value from the config files
(cli/config.py: environment, then the project's merlin.toml, then the user's file).
Imports Typer only; the command modules use these as parameter defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer
from typer._click.core import ParameterSource  # typer >= 0.24 vendors click
from typer._click.types import ParamType

STATE_ROOT_HELP = "Ledger directory (default: $MERLIN_STATE_ROOT, the config's state_root, or build/generated/ray)."
CLUSTER_HELP = "Ray cluster name for --engine ray (default: $MERLIN_CLUSTER, the config's cluster, or default)."

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


def from_config(key: str, convert: Callable[[Any], Any] = lambda v: v) -> Callable[..., Any]:
    """A callback giving an option not set on the command line its value from the config files."""

    def callback(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
        if ctx.resilient_parsing or ctx.get_parameter_source(param.name or "") in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
            return value
        from merlin.cli.config import value as configured

        found = configured(key)
        return value if found is None else convert(found)

    callback.config = (key, convert)  # type: ignore[attr-defined]  # what the submit fast path reads (cli/fast_submit.py)
    return callback


def typed(ctx: typer.Context, name: str) -> bool:
    """Whether the option ``name`` was given on this command line (not by the environment or a config file)."""
    return ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE


def _path(v: Any) -> Any:
    from pathlib import Path

    return Path(v)


StateRootOpt: Any = typer.Option(None, "--state-root", help=STATE_ROOT_HELP, show_default=False, metavar="DIR", callback=from_config("state_root", _path))
JsonOpt: Any = typer.Option(False, "--json", help="Print machine-readable JSON on stdout (default: the config's output = \"json\").", callback=from_config("output", lambda v: v == "json"))


def cluster_option(help: str = CLUSTER_HELP, configured: bool = True) -> Any:
    """``--cluster NAME``: the Ray cluster a run goes to (None: the config's, else the engine's default;
    ``configured=False``: no config default, as for a retry, which keeps the run's own)."""
    return typer.Option(None, "--cluster", help=help, metavar="NAME", callback=from_config("cluster") if configured else None)


def engine_names() -> list[str]:
    from merlin.engines.registry import names

    return list(names())


def engine_option(help: str) -> Any:
    """``--engine local|ray``: the choices shown and checked; not given: the config's engine, else the default engine."""
    from merlin.engines.registry import DEFAULT_ENGINE

    # the choices as the metavar; checked by the engine registry (engines can be registered at run time)
    return typer.Option(DEFAULT_ENGINE, "--engine", help=help, metavar="|".join(engine_names()), callback=from_config("engine"))


def choice_option(default: Any, *decls: str, choices: list[str], help: str, **kwargs: Any) -> Any:
    """An option taking one of ``choices``, shown as ``a|b|c`` and checked by click."""
    from typer._types import TyperChoice

    return typer.Option(default, *decls, help=help, click_type=TyperChoice(choices), metavar="|".join(choices), **kwargs)


def hidden_alias(old: str, help: str = "") -> Any:
    """The old name of a renamed option, still accepted (scripts keep working) but not shown in help."""
    return typer.Option(None, old, hidden=True, help=help or f"Old name, kept for scripts: {old}.")


def merged(new: Any, old: Any, new_flag: str, old_flag: str) -> Any:
    """The value of a renamed option given by its new name or its old one (both, differing: a one-line error)."""
    if new is not None and old is not None and new != old:
        from merlin.errors import BadInput

        raise BadInput(f"{new_flag} {new} and {old_flag} {old} disagree: {old_flag} is the old name of {new_flag}; give only {new_flag}")
    return new if new is not None else old


class Duration(ParamType):
    """A duration flag: the text as merlin.durations reads it, to seconds (a float).

    A value the grammar refuses is a usage error naming the flag, as click words it:
    ``Invalid value for '--time': 90 what? 90s or 90m ...``.
    """

    name = "duration"

    def get_metavar(self, param: Any, ctx: Any = None) -> str:
        return "DURATION"

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
    return typer.Option(default, *decls, click_type=DURATION, help=help, metavar="DURATION")


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
