"""The CLI's rooms: one module per command group, shared options declared once, no module over 600 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import typer

from conftest import REPO

CLI = REPO / "src" / "merlin" / "cli"
SHARED = ("--state-root", "--json", "--cluster")


def _option_flags(path: Path) -> list[tuple[int, str]]:
    """(line, flag) of every typer.Option(...) call in a module that declares a shared flag."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "Option":
            for arg in node.args:
                if isinstance(arg, ast.Constant) and arg.value in SHARED:
                    found.append((node.lineno, arg.value))
    return found


def test_no_cli_module_is_over_600_lines() -> None:
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in CLI.glob("*.py")}
    assert {n: s for n, s in sizes.items() if s > 600} == {}


def test_shared_options_are_declared_once() -> None:
    where = {f"{p.name}:{line}": flag for p in sorted(CLI.glob("*.py")) if p.name != "options.py" for line, flag in _option_flags(p)}
    assert where == {}, "use merlin.cli.options (StateRootOpt, JsonOpt, cluster_option)"
    assert sorted(flag for _line, flag in _option_flags(CLI / "options.py")) == sorted(SHARED)


def test_each_ray_group_lives_in_its_own_module() -> None:
    """`merlin ray <group> <command>`'s callback is defined in <group>'s module, the help as before."""
    import importlib

    from merlin.cli.ray_cmd import RAY_GROUPS, app

    rooms = {"cluster": "merlin.cli.clusters_cmd", "jobs": "merlin.cli.jobs_cmd", "artifacts": "merlin.cli.artifacts_cmd", "resources": "merlin.cli.resources_cmd"}
    assert {name: module for name, (module, _help) in RAY_GROUPS.items()} == rooms
    for name, module in rooms.items():
        sub = importlib.import_module(module).app
        assert sub.info.help == RAY_GROUPS[name][1], f"update RAY_GROUPS[{name!r}] in cli/ray_cmd.py"
        assert sub.registered_commands, name
        for cmd in sub.registered_commands:  # a group's second module is named after it (jobs_history_cmd: events, prune)
            assert cmd.callback is not None and cmd.callback.__module__ in (rooms[name], rooms[name].replace("_cmd", "_history_cmd")), (name, cmd.name, cmd.callback.__module__)
    group = typer.main.get_command(app)
    assert group.list_commands(None) == ["doctor", "cluster", "jobs", "artifacts", "resources"]  # the order `merlin ray --help` lists
    for name in rooms:  # loaded on first use
        assert group.get_command(None, name) is not None, name
    assert list(group.commands["jobs"].commands) == ["why", "submit", "list", "status", "logs", "cancel", "retry", "watch", "events", "prune"]
    assert list(group.commands["cluster"].commands) == ["start", "start-local", "status", "stop", "list", "env"]
