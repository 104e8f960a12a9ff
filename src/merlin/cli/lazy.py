"""A command group whose subgroups are imported only when one is used (or its own help is asked for).

The root (``merlin``) and ``merlin ray`` list their groups by name and stored help;
``merlin ray jobs submit`` then imports ``jobs_cmd`` and nothing of ``cluster``,
``resources`` or ``artifacts``. ``tests/test_cli_lazy.py`` keeps each stored help
in step with the group's own.
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

import typer
from typer.core import TyperGroup


def plain_help(sub: typer.Typer) -> None:
    """Click's plain help for a Typer and its sub-Typers: Rich's help formatter costs ~0.1 s of imports."""
    sub.rich_markup_mode = None
    for group in sub.registered_groups:
        if group.typer_instance is not None:
            plain_help(group.typer_instance)


class LazyGroup(TyperGroup):
    """Lists ``LAZY`` (name -> (module, help)) by name and help; imports a module's ``app`` only when it is used."""

    LAZY: ClassVar[dict[str, tuple[str, str]]] = {}
    LAZY_FIRST: ClassVar[bool] = True  # listed before the group's own commands (else after)

    def list_commands(self, ctx: Any) -> list[str]:
        own = [n for n in super().list_commands(ctx) if n not in self.LAZY]
        return [*self.LAZY, *own] if self.LAZY_FIRST else [*own, *self.LAZY]

    def get_command(self, ctx: Any, name: str) -> Any:
        if name in self.LAZY and name not in self.commands:
            sub: typer.Typer = importlib.import_module(self.LAZY[name][0]).app
            plain_help(sub)
            sub._add_completion = False  # as when it was added to its parent with add_typer
            group = typer.main.get_command(sub)
            group.name = name
            self.add_command(group, name)
        cmd = super().get_command(ctx, name)
        if cmd is not None:
            from merlin.cli.helpdoc import polish

            polish(cmd, f"{getattr(self, 'merlin_path', None) or _path(ctx)} {name}".strip())  # its own path: a caller may pass any context
        return cmd

    def format_help(self, ctx: Any, formatter: Any) -> None:
        from merlin.cli.helpdoc import polish

        polish(self, _path(ctx))
        super().format_help(ctx, formatter)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """As click's, but a group not loaded yet is listed by its stored help."""
        from typer._click.utils import make_default_short_help

        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = []
        for name in names:
            if name in self.LAZY and name not in self.commands:
                rows.append((name, make_default_short_help(self.LAZY[name][1], limit)))
            else:
                cmd = super().get_command(ctx, name)
                if cmd is not None and not cmd.hidden:
                    rows.append((name, cmd.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _path(ctx: Any) -> str:
    """A command's words after ``merlin`` (``ray jobs``), as :data:`merlin.cli.helpdoc.EXAMPLES` keys them."""
    return " ".join(ctx.command_path.split()[1:]) if ctx is not None else ""  # (click allows a caller no context)
