"""``merlin config ...``: the settings the config files give (cli/config.py, docs/config.md)."""

from __future__ import annotations

import typer

from merlin.cli.options import JsonOpt

app = typer.Typer(help="Settings from merlin.toml and ~/.config/merlin/config.toml, and where each came from.", no_args_is_help=True)


@app.callback()
def _group() -> None:  # a group, not its one command (Typer collapses a one-command app)
    pass


@app.command("show")
def config_show(json: bool = JsonOpt) -> None:
    """Every setting with its value and where it came from (env:VAR, a file, or default), as git config --show-origin does."""
    import sys

    from merlin.cli import config

    settings = config.load()
    if json:
        from merlin.cli.output import emit_json

        emit_json({
            "files": {"project": str(config.project_file() or ""), "user": str(config.user_file())},
            "settings": [{"key": s.key, "value": s.value, "origin": s.origin} for s in settings.values()],
        })
        return
    width = max(len(s.origin) for s in settings.values())
    for s in settings.values():
        shown = "-" if s.value is None else (",".join(s.value) if isinstance(s.value, list) else str(s.value).lower() if isinstance(s.value, bool) else str(s.value))
        sys.stdout.write(f"{s.origin:<{width}}  {s.key}={shown}\n")
