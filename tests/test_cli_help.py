"""Help like gh's (issue 19): every command has examples that parse, metavars say what to
type, enum options show their choices, one name per concept (old names hidden but
accepted), did-you-mean for mistyped commands, and shell completion."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from cli_runner import run_cli
from conftest import REPO


def _tree() -> Iterator[tuple[list[str], Any, Any]]:
    """(words after merlin, command, its context) for every visible command, groups included, loading every lazy group."""
    import typer
    from typer._click import Context

    from merlin.cli.app import app

    root = typer.main.get_command(app)

    def walk(cmd: Any, path: list[str], ctx: Any) -> Iterator[tuple[list[str], Any, Any]]:
        yield path, cmd, ctx
        if hasattr(cmd, "list_commands"):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                if sub is not None and not sub.hidden:
                    yield from walk(sub, [*path, name], Context(sub, info_name=name, parent=ctx))

    yield from walk(root, [], Context(root, info_name="merlin"))


TREE = [(" ".join(p), p) for p, _c, _x in _tree()]


def test_the_tree_is_whole() -> None:
    names = {name for name, _ in TREE}
    assert len(names) >= 50
    assert {"ray jobs events", "ray jobs prune", "config show", "completion", "ray jobs list"} <= names


@pytest.mark.parametrize("name,path", TREE, ids=[n or "merlin" for n, _ in TREE])
def test_every_help_has_examples_and_no_type_names(name: str, path: list[str]) -> None:
    res = run_cli(*path, "--help")
    assert res.returncode == 0, res.stderr
    text = res.stdout
    assert "\nExamples:\n" in text.replace("  Examples:", "Examples:"), f"merlin {name} --help has no Examples section"
    examples = re.findall(r"^\s+\$ (.+)$", text, re.M)
    assert examples and all(e.startswith("merlin") or "$(merlin" in e for e in examples)
    assert not re.search(r"<(str|int|float|path|duration|text|integer)>", text), text
    assert not re.search(r"\{[a-z_]+\}", text.split("Options:")[0]), text  # no {run_id} in usage or arguments


def _parse(argv: list[str]) -> None:
    """Parse ``argv`` (words after merlin) as click would run it, without running it."""
    import typer
    from typer._click import Context

    from merlin.cli.app import app

    cmd: Any = typer.main.get_command(app)
    ctx = Context(cmd, info_name="merlin")
    words = list(argv)
    while hasattr(cmd, "get_command") and words and not words[0].startswith("-"):
        name = words.pop(0)
        sub = cmd.get_command(ctx, name)
        assert sub is not None, f"no command {name!r} in {argv}"
        cmd, ctx = sub, Context(sub, info_name=name, parent=ctx)
    cmd.make_context(ctx.info_name, words, parent=ctx.parent, resilient_parsing=False)


def test_every_example_parses() -> None:
    """Each example is a real command line: its command exists and click accepts its options."""
    from merlin.cli.helpdoc import EXAMPLES

    visible = {name for name, _ in TREE}
    assert set(EXAMPLES) == visible, f"examples without a command: {set(EXAMPLES) - visible}; commands without: {visible - set(EXAMPLES)}"
    for rows in EXAMPLES.values():
        for cmd, _what in rows:
            line = cmd.split(" > ")[0]
            if line.startswith("eval "):
                line = re.search(r"\$\((merlin [^)]*)\)", line).group(1)  # type: ignore[union-attr]
            words = shlex.split(line)
            assert words[0] == "merlin"
            if "--help" in words or not words[1:]:
                continue
            _parse(words[1:])


def test_examples_are_spelled_as_invoked() -> None:
    res = run_cli("ray", "jobs", "list", "--help", env={"MERLIN_INVOKED_AS": "./merlin"})
    assert "$ ./merlin ray jobs list --status failed" in res.stdout


def test_enum_options_show_their_choices_everywhere() -> None:
    for path in (["ray", "jobs", "submit"], ["ray", "jobs", "list"], ["targetgen", "execute"]):
        assert "--engine local|ray" in run_cli(*path, "--help").stdout, path
    assert "--kind local|slurm|pbs|ssh" in run_cli("ray", "cluster", "start", "--help").stdout
    assert "--auth token|none" in run_cli("ray", "cluster", "start-local", "--help").stdout
    assert "--status blocked|waiting|pending|running|succeeded|failed|cancelled|lost" in run_cli("ray", "jobs", "list", "--help").stdout
    assert "Usage: merlin ray jobs status [OPTIONS] RUN_ID" in run_cli("ray", "jobs", "status", "--help").stdout
    assert "[RUN_ID...]" in run_cli("ray", "jobs", "watch", "--help").stdout


def test_the_shown_choices_are_the_real_ones() -> None:
    from merlin.cli.jobs_cmd import SORT_CHOICES, STATUS_CHOICES
    from merlin.control.find import SORT_FIELDS
    from merlin.ledger.status import RunStatus

    assert STATUS_CHOICES.split("|") == [s.value for s in RunStatus] and SORT_CHOICES.split("|") == list(SORT_FIELDS)


def test_one_name_per_concept_old_names_hidden_but_accepted(tmp_path: Any) -> None:
    execute = run_cli("targetgen", "execute", "--help").stdout
    assert "--target-dir DIR" in execute and "--from-dir" not in execute
    local = run_cli("ray", "cluster", "start-local", "--help").stdout
    assert "--gcs-port PORT" in local and not re.search(r"(?<![-\w])--port(?![-\w])", local)  # --port-range is another option
    start = run_cli("ray", "cluster", "start", "--help").stdout
    assert "--ssh-port PORT" in start and "--port " not in start
    # the old names still parse (scripts keep working), and agree or say which to keep
    missing = str(tmp_path / "nope")
    for flag in ("--target-dir", "--from-dir"):
        res = run_cli("targetgen", "execute", flag, missing)
        assert res.returncode == 2 and "no such target directory" in res.stderr, res.stderr
    both = run_cli("ray", "cluster", "start-local", "--gcs-port", "7001", "--port", "7002")
    assert both.returncode == 2 and "--port is the old name of --gcs-port" in both.stderr
    bad = run_cli("ray", "cluster", "start-local", "--port", "abc")
    assert bad.returncode == 2 and "Invalid value for '--port'" in bad.stderr


def test_did_you_mean_for_mistyped_commands() -> None:
    res = run_cli("targetgn")
    assert res.returncode == 2
    assert res.stderr.strip() == "merlin: No such command 'targetgn'; did you mean 'targetgen'? (see merlin --help)"
    res = run_cli("ray", "jbos", "list")
    assert "did you mean 'jobs'?" in res.stderr and res.returncode == 2
    assert "did you mean" not in run_cli("zzzzzz").stderr


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completion_script_registers_and_completes() -> None:
    merlin = shlex.quote(str(REPO / "merlin"))
    res = subprocess.run(["bash", "-c", f"source <({merlin} completion bash); complete -p merlin"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "complete -o default -F _merlin_completion merlin"
    # the script's function asks merlin itself: completions come from the command tree
    env = {"COMP_WORDS": "merlin ray jobs list --sin", "COMP_CWORD": "4", "_MERLIN_COMPLETE": "complete_bash"}
    got = subprocess.run([sys.executable, "-m", "merlin"], capture_output=True, text=True, env={**__import__("os").environ, **env}, timeout=60)
    assert got.stdout.split() == ["--since"], got
    env = {"COMP_WORDS": "merlin ray jo", "COMP_CWORD": "2", "_MERLIN_COMPLETE": "complete_bash"}
    got = subprocess.run([sys.executable, "-m", "merlin"], capture_output=True, text=True, env={**__import__("os").environ, **env}, timeout=60)
    assert got.stdout.split() == ["jobs"]


def test_zsh_and_fish_scripts_and_a_bad_shell() -> None:
    assert "compdef _merlin_completion merlin" in run_cli("completion", "zsh").stdout
    assert "complete --command merlin" in run_cli("completion", "fish").stdout
    bad = run_cli("completion", "tcsh")
    assert bad.returncode == 2 and "expected one of bash, zsh, fish" in bad.stderr
