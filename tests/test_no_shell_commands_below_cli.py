"""Nothing below cli/ and gateway/ spells a merlin command: next steps are data
(``{action, args}``) that only the front ends render (docs/architecture.md)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "merlin"
FRONT_ENDS = ("cli", "gateway")
#: a backticked merlin command anywhere, or a string that starts with one
COMMAND = re.compile(r"`(\./)?merlin |^\s*(\./)?merlin (ray|targetgen|serve|mcp|doctor)\b")


def docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (module, class, function)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                out.add(id(body[0].value))
    return out


def offenders(path: Path, root: Path = SRC.parent) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skip = docstrings(tree) | {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):  # an f-string: its literal parts, the first one leading
            text = "".join(v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else "{}" for v in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            text = node.value
        else:
            continue
        if COMMAND.search(text):
            found.append(f"{path.relative_to(root)}:{node.lineno}: {text[:90]!r}")
    return found


def test_no_string_literal_below_the_front_ends_spells_a_merlin_command() -> None:
    files = [p for p in SRC.rglob("*.py") if p.relative_to(SRC).parts[0] not in FRONT_ENDS]
    assert len(files) > 50, "the source tree was found"
    found = [line for p in sorted(files) for line in offenders(p)]
    assert not found, "merlin commands spelled below cli/ and gateway/ (carry next_steps instead):\n" + "\n".join(found)


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
