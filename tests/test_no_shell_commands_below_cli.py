"""Nothing below cli/ and gateway/ spells a merlin command or a merlin flag: next steps
are data (``{action, args}``) and an error names its argument as data
(``MerlinError.argument``); only the front ends spell them (docs/architecture.md).

A flag (``--word``) is allowed below the front ends only where it is not merlin's:
in an argv or a script built as a list for another program (``["ray", "start",
"--head"]``, ``sbatch`` lines), in an argument parser of a module's own command line
(``add_argument("--state-dir")``), where argv is read (``a == "--json"``,
``a.startswith("--run-id=")``), and in the few literals of :data:`ALLOWED`, each
with its reason."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[1] / "src" / "merlin"
FRONT_ENDS = ("cli", "gateway")
#: a backticked merlin command anywhere, or a string that starts with one
COMMAND = re.compile(r"`(\./)?merlin |^\s*(\./)?merlin (ray|targetgen|serve|mcp|doctor)\b")
#: a flag: ``--word`` (also ``--{name}`` of an f-string), not part of a longer word
FLAG = re.compile(r"(?<![\w-])--([a-z]|\{\})")
#: the module of a literal -> the literals allowed there, each with why it is not merlin's flag
ALLOWED: dict[str, dict[str, str]] = {
    "merlin/targetgen/probes.py": {
        lit: "a probe of an external tool's version, run as its own command line"
        for lit in ("nvcc --version", "iree-compile --version", "iree-run-module --list_drivers", "riscv64-unknown-linux-gnu-gcc --version", "vulkaninfo --summary")
    },
    "merlin/clusters/slurm.py": {
        lit: "an sbatch directive of the batch script: Slurm's option, not merlin's"
        for lit in ("--cpus-per-task", "--gpus-per-node", "--mem", "--time", "--partition", "--account", "--qos")
    },
    "merlin/spec/shape.py": {
        lit: "the generator's own command line (a developer tool run as python -m), not merlin's"
        for lit in ("python -m merlin.spec.shape --write",)
    },
}
#: calls whose string arguments read or declare another command line's argv
ARGV_CALLS = {"add_argument", "startswith", "index"}
#: calls that add to an argv (``argv.append("--head")``) when the list's name says it is one
ARGV_ADDS = {"append", "extend", "insert"}
ARGV_NAMES = re.compile(r"argv|cmd")


def command_paths() -> list[tuple[str, ...]]:
    """Every command of the CLI as its words (``("ray", "jobs", "submit")``), groups loaded."""
    import typer
    import typer._click as click

    from merlin.cli.app import app

    paths: list[tuple[str, ...]] = []

    def walk(cmd: Any, path: tuple[str, ...]) -> None:
        if hasattr(cmd, "list_commands"):
            ctx = click.Context(cmd, info_name=path[-1] if path else "merlin")
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), (*path, name))
        else:
            paths.append(path)

    walk(typer.main.get_command(app), ())
    assert len(paths) > 30, "the CLI's commands were found"
    return paths


@functools.cache
def command_line() -> re.Pattern[str]:
    """A command line of the CLI: a command's last two words or more (``jobs retry``,
    ``ray resources release``, ``targetgen execute``) at the start of a string or after a backtick."""
    tails = {" ".join(p[i:]) for p in command_paths() for i in range(len(p) - 1)}
    words = "|".join(sorted((re.escape(t) for t in tails), key=len, reverse=True))
    return re.compile(rf"(^\s*|`)(\./)?(merlin )?({words})\b")


def docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (module, class, function)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                out.add(id(body[0].value))
    return out


def argv_literals(tree: ast.AST) -> set[int]:
    """ids of the string nodes that are argv of another program, or read argv: elements of a
    list display (also inside a conditional or a starred list), arguments of :data:`ARGV_CALLS`
    and of an ``argv.append``, operands of a comparison (``a in ("--overlay", "-o")``)."""
    out: set[int] = set()

    def mark(node: ast.AST, tuples: bool = False) -> None:
        if isinstance(node, (ast.Constant, ast.JoinedStr)):
            out.add(id(node))
        elif isinstance(node, ast.IfExp):
            mark(node.body, tuples), mark(node.orelse, tuples)
        elif isinstance(node, ast.Starred):
            mark(node.value, tuples)
        elif isinstance(node, ast.List) or (tuples and isinstance(node, (ast.Tuple, ast.Set))):
            for e in node.elts:
                mark(e, tuples)

    for node in ast.walk(tree):
        if isinstance(node, ast.List):
            for e in node.elts:
                mark(e)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            receiver = node.func.value
            if node.func.attr in ARGV_CALLS or (
                node.func.attr in ARGV_ADDS and isinstance(receiver, ast.Name) and ARGV_NAMES.search(receiver.id.lower())
            ):
                for a in node.args:
                    mark(a)
        elif isinstance(node, ast.Compare):
            for c in (node.left, *node.comparators):
                mark(c, tuples=True)
    return out


def built_flags(tree: ast.AST) -> set[int]:
    """ids of ``"--"`` literals that start a flag built by concatenation (``"--" + name``)."""
    return {
        id(n.left)
        for n in ast.walk(tree)
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Add) and isinstance(n.left, ast.Constant) and n.left.value == "--"
    }


def offenders(path: Path, root: Path = SRC.parent, *, flags: bool = True) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skip = docstrings(tree) | {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    argv = argv_literals(tree)
    built = built_flags(tree)
    allowed = ALLOWED.get(path.relative_to(root).as_posix(), {})
    found = []
    for node in sorted((n for n in ast.walk(tree) if hasattr(n, "lineno")), key=lambda n: (n.lineno, n.col_offset)):
        if isinstance(node, ast.JoinedStr):  # an f-string: its literal parts, the first one leading
            text = "".join(v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else "{}" for v in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            text = node.value
        else:
            continue
        command = COMMAND.search(text) or command_line().search(text)
        flag = flags and id(node) not in argv and text not in allowed and (FLAG.search(text) or id(node) in built)
        if command or flag:
            found.append(f"{path.relative_to(root)}:{node.lineno}: {text[:90]!r}")
    return found


def below_front_ends() -> list[Path]:
    files = [p for p in SRC.rglob("*.py") if p.relative_to(SRC).parts[0] not in FRONT_ENDS]
    assert len(files) > 50, "the source tree was found"
    return sorted(files)


def test_no_string_literal_below_the_front_ends_spells_a_merlin_command() -> None:
    found = [line for p in below_front_ends() for line in offenders(p, flags=False)]
    assert not found, "merlin commands spelled below cli/ and gateway/ (carry next_steps instead):\n" + "\n".join(found)


def test_no_string_literal_below_the_front_ends_spells_a_flag() -> None:
    """Errors name their argument (``BadInput(..., argument="reason")``); the CLI spells it ``--reason``,
    the gateway ``reason``."""
    found = [line for p in below_front_ends() for line in offenders(p) if line not in offenders(p, flags=False)]
    assert not found, "flags spelled below cli/ and gateway/ (name the argument: MerlinError(argument=...)):\n" + "\n".join(found)


def test_every_allowed_literal_is_still_there() -> None:
    """An allow-list entry whose literal is gone is dropped, not kept as a hole."""
    for rel, literals in ALLOWED.items():
        tree = ast.parse((SRC.parent / rel).read_text(encoding="utf-8"))
        texts = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        for lit in literals:
            assert lit in texts, f"{rel}: {lit!r} is allowed but no longer there"


def test_the_check_catches_what_it_is_for(tmp_path: Path) -> None:
    """It flags a backticked command, an f-string one and a leading one, never a docstring."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""Docstring: `merlin ray jobs why` is fine here."""\n'
        'a = "run `merlin ray resources list`"\n'
        'b = f"then `merlin ray jobs retry {1}`"\n'
        'c = "merlin ray cluster stop --name x"\n'
        'd = "merlin keeps the ledger"\n'
        "def f():\n    'a docstring: merlin ray jobs list'\n    return 1\n",
        encoding="utf-8",
    )
    assert [line.split(":")[1] for line in offenders(sample, tmp_path)] == ["2", "3", "4"]


def test_the_flag_check_catches_flags_and_command_lines_but_not_argv(tmp_path: Path) -> None:
    """Flags in messages (plain, f-string, built with ``"--" +``) and command lines are caught;
    argv lists for other programs, argument parsers and argv reads are not."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        'a = "release --force needs --reason WHY"\n'
        'b = f"--env {1}=...: invalid environment variable name"\n'
        'c = "no command given: e.g. `ray jobs submit ... -- python run.py`"\n'
        "d = ', '.join('--' + k for k in ('x',))\n"
        'e = "resources release L1 to free it"\n'
        'f = ["ray", "start", "--head", f"--port={1}"]\n'
        'g = ap.add_argument("--state-dir")\n'
        'h = "--run-id" in argv or argv[0].startswith("--run-id=")\n'
        'i = "`reason` is needed with `force`; a run is --- not a flag"\n'
        'j = "ray is not importable"\n',
        encoding="utf-8",
    )
    assert [line.split(":")[1] for line in offenders(sample, tmp_path)] == ["1", "2", "3", "4", "5"]
