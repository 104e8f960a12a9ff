"""One writer of state files (merlin.atomic), one owner of paths (Layout, TargetLayout): the
modules issue 15 found going around them stay on the one way (an AST check)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "merlin"

#: modules that write state only through merlin.atomic
ATOMIC_ONLY = [
    "ledger/artifacts.py",
    "clusters/slurm_node.py",
    "leases/book.py",
    "leases/store.py",
    "leases/passes.py",
    "leases/reads.py",
    "leases/common.py",
    "targetgen/bundle.py",
]
#: calls that write, rename or remove a file by themselves
WRITERS = {"replace", "rename", "unlink", "write", "write_text", "write_bytes", "copyfile", "copy", "copy2", "copyfileobj"}


def _calls(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        text_replace = name == "replace" and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
        if name in WRITERS and not text_replace:  # str.replace("\n", " ") is no file operation; os.replace(a, b) names paths
            found.append((node.lineno, name))
        if name in ("open", "fdopen") and len(node.args) > 1 and isinstance(node.args[1], ast.Constant) and set(str(node.args[1].value)) & set("wax+"):
            found.append((node.lineno, f"open(..., {node.args[1].value!r})"))
        if name in ("open", "fdopen") and any(k.arg == "mode" for k in node.keywords):
            found.append((node.lineno, "open(..., mode=...)"))
    return found


def test_these_modules_write_only_through_merlin_atomic() -> None:
    offenders = []
    for rel in ATOMIC_ONLY:
        tree = ast.parse((SRC / rel).read_text(encoding="utf-8"))
        offenders += [f"{rel}:{line}: {name}" for line, name in _calls(tree)]
    assert offenders == [], "writes outside merlin.atomic:\n" + "\n".join(offenders)


#: names that only a target directory has (``prompts``, ``logs``, ``events.jsonl`` are other trees' names too)
TARGET_NAMES = {"execution_bundle.json", "execution_state.json", "task_states", "operator_requests", "answers.jsonl", "scratch", "proposals"}


def test_targetgen_joins_a_target_directory_s_names_only_in_target_layout() -> None:
    layout = SRC / "targetgen" / "layout.py"
    text = layout.read_text(encoding="utf-8")
    assert all(f'"{name}"' in text for name in TARGET_NAMES), "TargetLayout names them all"
    offenders = []
    for path in sorted((SRC / "targetgen").glob("*.py")):
        if path == layout:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and isinstance(node.right, ast.Constant) and node.right.value in TARGET_NAMES:
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}: / {node.right.value!r}")
    assert offenders == [], "paths built by hand (use TargetLayout):\n" + "\n".join(offenders)


def test_the_lease_book_names_its_files_through_layout() -> None:
    """Layout names the book's files (lease, lease_events, book, inventory, book_lock, book_flushed):
    no code in the book's modules spells one (docstrings may)."""
    spelled = []
    for rel in ATOMIC_ONLY:
        if not rel.startswith("leases/"):
            continue
        tree = ast.parse((SRC / rel).read_text(encoding="utf-8"))
        docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                if any(name in node.value for name in (".json", ".jsonl", ".flushed", ".book.lock")):
                    spelled.append(f"{rel}:{node.lineno}: {node.value!r}")
    assert spelled == [], "paths built by hand (use Layout):\n" + "\n".join(spelled)


def test_copy_file_refused_by_its_check_leaves_the_destination_and_no_temporary(tmp_path: Path) -> None:
    from merlin.atomic import copy_file

    src, dest = tmp_path / "src.bin", tmp_path / "out" / "dest.bin"
    src.write_bytes(b"new bytes")
    dest.parent.mkdir()
    dest.write_bytes(b"old bytes")
    seen = []
    assert copy_file(src, dest, check=lambda tmp: seen.append(tmp.read_bytes()) or False) is False
    assert seen == [b"new bytes"], "the check reads the copy, before it is renamed in"
    assert dest.read_bytes() == b"old bytes" and sorted(p.name for p in dest.parent.iterdir()) == ["dest.bin"]
    assert copy_file(src, dest, check=lambda tmp: True, clone=True, nofollow=True) is True
    assert dest.read_bytes() == b"new bytes" and sorted(p.name for p in dest.parent.iterdir()) == ["dest.bin"]
    link = tmp_path / "link"
    link.symlink_to(src)
    try:
        copy_file(link, tmp_path / "x", nofollow=True)
    except OSError:
        pass
    else:
        raise AssertionError("nofollow copied through a symlink")


def test_replace_file_swaps_the_record_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    import os

    from merlin.atomic import replace_file

    path = tmp_path / "rec.json"
    replace_file(str(path), b"one", mode=0o600, fsync=False)
    first = os.stat(path).st_ino
    replace_file(str(path), b"two", mode=0o600, fsync=True)
    assert path.read_bytes() == b"two" and os.stat(path).st_ino != first, "a new file, never the old one rewritten in place"
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o600)
    assert [p.name for p in tmp_path.iterdir()] == ["rec.json"]


#: the owners of paths: the state root's (Layout), the env cache's (EnvCache), a target directory's (TargetLayout)
PATH_OWNERS = ("ledger/paths.py", "envs/cache.py", "targetgen/layout.py")
#: a name an owner spells, joined elsewhere for another tree: where, and why it is not the owner's
NOT_THE_OWNERS = {
    ("engines/ray_engine.py", "logs"): "Ray's own session directory (<temp dir>/<session>/logs), not merlin's",
    ("targetgen/prompts.py", "prompts"): "the prompt library's folders (in the package, beside a capability), not a target directory's",
    ("targetgen/prompts.py", "target"): "the prompt library's target layer (prompts/target/), not a run's target directory",
}


def _owned_names() -> tuple[set[str], set[str]]:
    """(names the owners join onto a path, the fixed starts of the names they build in f-strings)."""
    names: set[str] = set()
    starts: set[str] = set()
    for rel in PATH_OWNERS:
        for node in ast.walk(ast.parse((SRC / rel).read_text(encoding="utf-8"))):
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
                if isinstance(node.right, ast.Constant) and isinstance(node.right.value, str):
                    names.add(node.right.value)
                if isinstance(node.right, ast.JoinedStr) and node.right.values and isinstance(node.right.values[0], ast.Constant):
                    starts.add(str(node.right.values[0].value))
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                if any(isinstance(t, ast.Name) and t.id.isupper() and t.id.endswith(("_NAME", "_FILE")) for t in node.targets):
                    names.add(node.value.value)  # Layout.RECORD_NAME, REQUEST_NAME, DEFAULT_CLUSTER_FILE
    return names, {s for s in starts if len(s) >= 3}


def test_state_file_names_are_spelled_only_by_their_owners() -> None:
    """Layout (state root), EnvCache (env cache) and TargetLayout (target directory) own their file and
    directory names: no other module joins one onto a path (``/ "sweep.json"``, ``os.path.join(.., ".pruned-...")``,
    a glob naming a record), nor spells the state root's variable or default."""
    names, starts = _owned_names()
    assert {"sweep.json", "run_record.json", "state", "tmp", "index", "token", ".book.lockdir"} <= names and {".pruned-", "removing-"} <= starts
    files = {n for n in names if "." in n.strip(".")}  # names with an extension: spelled nowhere else, not even in a glob
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        rel = str(path.relative_to(SRC))
        if rel in PATH_OWNERS:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
        for node in ast.walk(tree):
            joined: list[ast.expr] = []
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
                joined = [node.right]
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("join", "glob", "rglob", "with_name"):
                joined = list(node.args)
            for arg in joined:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    hit = arg.value if arg.value in names else next((f for f in files if arg.value.endswith("/" + f)), None)
                    if hit and (rel, hit) not in NOT_THE_OWNERS:
                        offenders.append(f"{rel}:{node.lineno}: {arg.value!r}")
                elif isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
                    if any(str(arg.values[0].value).startswith(s) for s in starts):
                        offenders.append(f"{rel}:{node.lineno}: f{arg.values[0].value!r}...")
            if isinstance(node, ast.Constant) and id(node) not in docstrings and node.value in ("MERLIN_STATE_ROOT", "build/generated/ray", *files):
                offenders.append(f"{rel}:{node.lineno}: {node.value!r}")
    assert offenders == [], "names their owner spells (use Layout, EnvCache or TargetLayout):\n" + "\n".join(offenders)
