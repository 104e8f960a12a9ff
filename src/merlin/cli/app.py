"""The ``merlin`` command: the top-level Typer app.

The error boundary, ``main()``, is :mod:`merlin.cli.entry`'s (imported here too,
as ``merlin.cli.app.main``): it runs this app, or the fast path of
``ray jobs submit`` without importing Typer at all.
"""

from __future__ import annotations

import typer

from merlin import __version__
from merlin.cli.entry import main as main  # the entry point; re-exported for callers of merlin.cli.app.main
from merlin.cli.lazy import LazyGroup as BaseLazyGroup

# Command groups, loaded only when invoked (or when their own help is asked for),
# so `merlin --help` imports neither them nor what they import. The help text is
# the group's own (tests/test_cli_lazy.py keeps the two in step).
LAZY_GROUPS: dict[str, tuple[str, str]] = {
    "targetgen": ("merlin.cli.targetgen_cmd", "TargetGen: validate specs, plan a target and drive its execution."),
    "ray": ("merlin.cli.ray_cmd", "Ray control plane: clusters, runs (jobs) and artifacts."),
    "sweep": ("merlin.cli.sweep_cmd", "Sweeps: one command over many inputs, throttled, retried, summarised."),
    "envs": ("merlin.cli.envs_cmd", "Run environments: list, show, build and prune the env cache."),
    "config": ("merlin.cli.config_cmd", "Settings from merlin.toml and ~/.config/merlin/config.toml, and where each came from."),
}
SHELLS = ("bash", "zsh", "fish")


class LazyGroup(BaseLazyGroup):
    """The root group: lists LAZY_GROUPS by name and help, imports one only when it is used."""

    LAZY = LAZY_GROUPS


app = typer.Typer(
    name="merlin",
    cls=LazyGroup,
    help="Control plane for hardware-target enablement: plan targets with TargetGen, run them locally or on Ray.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
__import__("merlin.cli.gateway_cmd", fromlist=["register"]).register(app)  # merlin mcp, merlin serve (their imports are lazy)
__import__("merlin.cli.doctor_cmd", fromlist=["register"]).register(app)  # merlin doctor (its imports are lazy)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"merlin {__version__}")
        raise typer.Exit(0)


@app.command("completion")
def completion(shell: str = typer.Argument(..., help="The shell to complete in.", metavar="|".join(SHELLS))) -> None:
    """Print a tab-completion script for SHELL (bash, zsh or fish): source it, or save it where your shell loads completions."""
    from typer._click.shell_completion import get_completion_class
    from typer._completion_classes import completion_init

    if shell not in SHELLS:
        from merlin.errors import BadInput

        raise BadInput(f"completion: no shell {shell!r}: expected one of {', '.join(SHELLS)}")
    completion_init()  # Typer's completion classes (click's protocol, Typer's scripts)
    comp = get_completion_class(shell)
    assert comp is not None
    root_cmd = typer.main.get_command(app)
    typer.echo(comp(root_cmd, {}, "merlin", "_MERLIN_COMPLETE").source())


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
) -> None:
    """merlin: plan, execute and track hardware-target enablement."""
