"""The ``merlin`` command: top-level Typer app and the error boundary.

``main()`` is the console-script entry point. It turns every ``MerlinError``
into its lines on stderr and its exit code; an unexpected exception is a bug
and prints one line (``MERLIN_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import os
import sys

import typer

from merlin import __version__
from merlin.cli import ray_cmd, targetgen_cmd

app = typer.Typer(
    name="merlin",
    help="Control plane for hardware-target enablement: plan targets with TargetGen, run them locally or on Ray.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(targetgen_cmd.app, name="targetgen")
app.add_typer(ray_cmd.app, name="ray")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"merlin {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
) -> None:
    """merlin: plan, execute and track hardware-target enablement."""


def main(argv: list[str] | None = None) -> None:
    from merlin.errors import MerlinError

    try:
        app(args=argv, prog_name="merlin")
    except MerlinError as exc:
        for line in exc.lines:
            sys.stderr.write(line.rstrip() + "\n")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except Exception as exc:  # a bug: say so in one line unless debugging
        if os.environ.get("MERLIN_DEBUG"):
            raise
        sys.stderr.write(f"merlin: internal error: {type(exc).__name__}: {exc} (set MERLIN_DEBUG=1 for a traceback)\n")
        sys.exit(70)
