"""``merlin ray jobs submit`` without Typer: the command line read from a table generated from the Typer command.

Importing Typer and building its command costs a submit more CPU than the rest
of it (issue 15: client CPU of 50 CLI submits <= 3x Ray's SDK). The table
(:mod:`merlin.cli.submit_options`) is generated from the Typer command's own
declared parameters (``python -m merlin.cli.fast_submit --write``; a test fails
until it is current), so there is one declaration of the options, Typer's.

:func:`fast_call` reads a command line as click would, but only the lines it
is sure of: every option known to the table, each value converted exactly as
the Typer command converts it, the command after ``--`` (or the first word that
is not an option). Anything else (``-h``/``--help``, shell completion, an unknown or misspelt
option, a value that does not convert, a missing required option, an option
the table marks ``typer`` or given twice) returns None and the Typer command
reads the line, so its output and errors are Typer's, byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

#: the words that select the command
COMMAND = ("ray", "jobs", "submit")


def _convert(kind: str, name: str, value: str) -> Any:
    """``value`` as the Typer command converts it; ValueError where Typer would refuse it (or might)."""
    if kind == "str":
        return value
    if kind == "float":
        return float(value)
    if kind == "int":
        return int(value)
    if kind == "path":  # Typer's path type: any path, but one that exists must be readable
        import os
        from pathlib import Path

        if not value or (os.path.lexists(value) and not os.access(value, os.R_OK)):
            raise ValueError(value)
        return Path(value)
    if kind == "duration":
        from merlin.durations import BadDuration, parse_duration

        try:
            return parse_duration(value, name)
        except BadDuration:
            raise ValueError(value) from None
    raise ValueError(kind)  # "typer": a type the table leaves to Typer


def _completing() -> bool:
    """Shell completion asked for (click's ``_MERLIN_COMPLETE``, or any such variable): Typer answers it."""
    import os

    return any(k.startswith("_") and k.endswith("_COMPLETE") for k in os.environ)


def parse(args: Sequence[str]) -> dict[str, Any] | None:
    """The keyword arguments of :func:`merlin.cli.jobs_submit.submit` for ``args`` (the whole
    command line, ``ray jobs submit ...``), or None: Typer reads this line."""
    from merlin.cli import submit_options as table

    if tuple(args[: len(COMMAND)]) != COMMAND or not table.FAST or _completing():
        return None
    by_flag = {flag: opt for opt in table.OPTIONS for flag in opt[1]}
    off = {flag: opt for opt in table.OPTIONS for flag in opt[2]}
    values: dict[str, Any] = {}
    rest = list(args[len(COMMAND) :])
    i = 0
    while i < len(rest):
        word = rest[i]
        if word == "--":
            i += 1
            break
        if not word.startswith("-") or word == "-":
            if word == "-":
                return None
            break  # the command starts (no interspersed options: the rest is the command's)
        flag, eq, inline = word.partition("=")
        if not flag.startswith("--") or flag in table.HELP:
            return None
        if flag in off and not eq:
            name = off[flag][0]
            if name in values:
                return None
            values[name] = False
            i += 1
            continue
        opt = by_flag.get(flag)
        if opt is None:
            return None
        name, _flags, _off, kind, type_, _default, _config = opt
        if kind == "flag":
            if eq or name in values:
                return None
            values[name] = True
            i += 1
            continue
        if eq:
            value = inline
            i += 1
        else:
            if i + 1 >= len(rest) or rest[i + 1].startswith("-"):
                return None  # a missing value, or one that looks like an option: Typer says which
            value = rest[i + 1]
            i += 2
        try:
            converted = _convert(type_, name, value)
        except ValueError:
            return None
        if kind == "multiple":
            values.setdefault(name, []).append(converted)
        elif name in values:
            return None
        else:
            values[name] = converted
    command = list(rest[i:])
    if not command and table.ARGUMENT[1]:
        return None
    kwargs: dict[str, Any] = {table.ARGUMENT[0]: command or None}
    for name, _flags, _off, _kind, _type, default, _config in table.OPTIONS:
        if name in values:
            kwargs[name] = values[name]
        elif default is table.REQUIRED:
            return None
        else:
            kwargs[name] = default
    kwargs["typed"] = frozenset([*values, *([table.ARGUMENT[0]] if command else [])])
    return kwargs


def _configured(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The options not given on the command line, from the config files where their callback would
    take them (options.from_config; a bad file raises its one-line error, as in Typer's path)."""
    from merlin.cli import submit_options as table

    for name, _flags, _off, _kind, _type, _default, config in table.OPTIONS:
        if config is None or name in kwargs["typed"]:
            continue
        from merlin.cli.config import value

        found = value(config[0])
        if found is not None:
            kwargs[name] = {"same": lambda v: v, "path": _as_path, "json": lambda v: v == "json"}[config[1]](found)
    return kwargs


def _as_path(value: Any) -> Any:
    from pathlib import Path

    return Path(value)


def fast_call(args: Sequence[str]) -> Callable[[], Any] | None:
    """The submit ``args`` asks for, ready to run, or None (not a submit, or one for Typer to read)."""
    kwargs = parse(args)
    if kwargs is None:
        return None

    def call() -> Any:
        from merlin.cli.jobs_submit import submit

        return submit(**_configured(kwargs))

    return call


# ---------------------------------------------------------------- the generator (imports Typer)

#: click's parameter types the fast path converts as the Typer command does (by class name)
_TYPES = {"StringParamType": "str", "FloatParamType": "float", "IntParamType": "int", "Duration": "duration"}


#: the settings of a path parameter the fast path converts as Typer does (Typer's defaults: any path, read if it exists)
_PATH = {"exists": False, "file_okay": True, "dir_okay": True, "readable": True, "writable": False, "resolve_path": False, "allow_dash": False, "type": None}


def _type_of(click_type: Any) -> str:
    """The table's name for a click parameter type, ``typer`` for one the fast path leaves to Typer."""
    kind = type(click_type).__name__
    if kind in ("Path", "TyperPath"):
        return "path" if all(getattr(click_type, k, None) == v for k, v in _PATH.items()) else "typer"
    return _TYPES.get(kind, "typer")


def _config_of(callback: Any) -> tuple[str, str] | None:
    """(config key, converter) of an option whose default the config files give (options.from_config),
    the converter by name: ``same``, ``path`` or ``json`` (the ones this module applies); None otherwise."""
    key, convert = getattr(callback, "config", (None, None))
    if key is None or convert is None:
        return None
    name = getattr(convert, "__name__", "")
    if name == "<lambda>":  # from_config's identity, or the output = "json" test
        probe = convert("json")
        name = "json" if probe is True else "same" if probe == "json" else ""
    elif name == "_path":
        name = "path"
    return (key, name) if name in ("same", "path", "json") else None


def typer_command() -> Any:
    """The click command Typer builds for ``ray jobs submit``."""
    import typer

    from merlin.cli.jobs_cmd import app

    return typer.main.get_command(app).commands[COMMAND[-1]]  # type: ignore[attr-defined]


def table_rows(command: Any) -> tuple[bool, tuple[str, bool], list[tuple[Any, ...]], tuple[str, ...]]:
    """(fast, argument, options, help flags) of a click command, as :mod:`merlin.cli.submit_options` holds them.

    ``fast`` is False when the command has something this module cannot read as
    Typer would (a second argument, an environment variable, a callback, a
    prompt, an interspersed command): then every submit goes to Typer."""
    fast = command.context_settings.get("allow_interspersed_args") is False and command.callback is not None
    argument: tuple[str, bool] = ("", False)
    options: list[tuple[Any, ...]] = []
    for p in command.params:
        config = _config_of(p.callback)
        if getattr(p, "envvar", None) or getattr(p, "prompt", None) or (p.callback is not None and config is None) or p.is_eager:
            fast = False
        if p.param_type_name == "argument":
            if argument[0] or p.nargs != -1:
                fast = False
            argument = (p.name, bool(p.required))
            continue
        if p.param_type_name != "option" or p.nargs != 1 or getattr(p, "count", False):
            fast = False
            continue
        if p.is_flag:
            kind, type_ = "flag", "bool"
            if not p.is_bool_flag or p.default not in (False, None):
                fast = False
        else:
            kind = "multiple" if p.multiple else "value"
            type_ = _type_of(p.type)
        default: Any = "REQUIRED" if p.required else (False if p.is_flag else p.default)
        if default != "REQUIRED" and not (default is None or isinstance(default, (bool, int, float, str))):
            fast = False
        if type_ == "typer" and default is not None:
            fast = False
        options.append((p.name, tuple(p.opts), tuple(p.secondary_opts), kind, type_, default, config))
    ctx_help = command.context_settings.get("help_option_names") or ["-h", "--help"]
    return fast, argument, options, tuple(ctx_help)


def render(command: Any = None) -> str:
    """The text of :mod:`merlin.cli.submit_options` for the Typer command (the current one by default)."""
    from merlin.cli.app import app

    fast, argument, options, _help = table_rows(command if command is not None else typer_command())
    helps = tuple((app.info.context_settings or {}).get("help_option_names") or ("--help",))  # the root's, which every command inherits
    lines = [
        '"""The options of ``merlin ray jobs submit``, as its Typer command declares them (generated: do not edit).',
        "",
        "Regenerate with ``python -m merlin.cli.fast_submit --write`` after changing the command;",
        "``tests/test_submit_fast_path.py`` fails until this file is current. Read by",
        ":mod:`merlin.cli.fast_submit`: rows are (parameter, flags, off flags, kind, type, default, (config key, converter)).",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "from typing import Any",
        "",
        'REQUIRED = "REQUIRED"',
        f"FAST = {fast!r}",
        f"HELP: tuple[str, ...] = {helps!r}",
        f"ARGUMENT: tuple[str, bool] = {argument!r}",
        "OPTIONS: tuple[tuple[Any, ...], ...] = (",
    ]
    for row in options:
        name, flags, off, kind, type_, default = row[:6]
        shown = "REQUIRED" if default == "REQUIRED" else repr(default)
        lines.append(f"    ({name!r}, {flags!r}, {off!r}, {kind!r}, {type_!r}, {shown}, {row[6]!r}),")
    lines.append(")")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover - the generator's command line
    import sys
    from pathlib import Path

    target = Path(__file__).with_name("submit_options.py")
    text = render()
    if sys.argv[1:] == ["--write"]:
        target.write_text(text)
        print(f"wrote {target}")
    else:
        sys.stdout.write(text)
