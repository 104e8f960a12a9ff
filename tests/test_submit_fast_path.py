"""Issue 15, client CPU of a submit: `ray jobs submit` reads its command line without Typer.

The fast path (merlin.cli.fast_submit) reads the table generated from the Typer
command (merlin.cli.submit_options) and calls the same body (merlin.cli.jobs_submit)
the Typer command calls. These tests keep the three in step: the table is what
the command declares now, both parsers give the body the same arguments for the
same line (and the same record), every line the fast path is not sure of goes to
Typer, and a submit on the fast path imports neither Typer nor click.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cli_runner import run_cli
from conftest import REPO
from merlin.cli import fast_submit, jobs_submit, submit_options


def test_the_table_is_generated_from_the_typer_command_as_it_is_now() -> None:
    current = Path(submit_options.__file__).read_text()
    assert current == fast_submit.render(), "regenerate: python -m merlin.cli.fast_submit --write"
    assert submit_options.FAST, "the fast path would decline every submit: see fast_submit.table_rows"


def test_table_typer_command_and_body_name_the_same_parameters() -> None:
    from merlin.cli.jobs_cmd import jobs_submit as typer_submit

    command = fast_submit.typer_command()
    declared = [p.name for p in command.params]
    assert declared == [submit_options.ARGUMENT[0], *(row[0] for row in submit_options.OPTIONS)]
    assert [n for n in inspect.signature(typer_submit).parameters if n != "ctx"] == declared
    assert list(inspect.signature(jobs_submit.submit).parameters) == [*declared, "typed"]  # typed: the parameters given on the line
    flags = {f for p in command.params if p.param_type_name == "option" for f in (*p.opts, *p.secondary_opts)}
    assert flags == {f for row in submit_options.OPTIONS for f in (*row[1], *row[2])}


# Lines the fast path reads: each must give the body exactly what the Typer command gives it.
BASE = ["ray", "jobs", "submit", "--target", "t", "--workflow", "w"]
READ = [
    [*BASE, "--", "true"],
    [*BASE, "true", "--not-an-option", "--", "x"],  # the command starts at its first word: the rest is its own
    ["ray", "jobs", "submit", "--workflow=w", "--target=t", "--engine", "ray", "--", "echo", "a b"],
    [*BASE, "--num-cpus", "1.5", "--num-gpus=0", "--resource", "fpga=1", "--resource", "x=2", "--env", "A=1", "--env=B=2", "--", "true"],
    [*BASE, "--wait", "--json", "--cluster", "c1", "--lease", "pool:2", "--lease", "other", "--", "sh", "-c", "exit 0"],
    [*BASE, "--time", "2h", "--state-root", "/tmp/x", "--target-dir", "rel/dir", "--", "true"],
    [*BASE, "--time", "1-02:03:04", "--engine", "local", "--", "--", "true"],  # a second -- is the command's
    [*BASE, "--num-cpus", "inf", "--", "true"],  # float() takes it, as click's FLOAT does; the facade judges it
    [*BASE, "--with", "numpy==2.1", "--with=rich", "--python", "3.11", "--no-index", "--find-links", "wheels", "--requirements", "req.txt",
     "--secret-env", "TOKEN", "--working-dir", ".", "--", "python", "-c", "pass"],  # fmt: skip
]
# Lines it leaves to Typer (help, errors, anything it is not sure of): Typer words them, byte for byte as before.
DECLINED = [
    [*BASE, "--help"],
    [*BASE, "-h", "--", "true"],
    [*BASE, "--", *[]],  # no command: Typer's "Missing argument"
    ["ray", "jobs", "submit", "--target", "t", "--", "true"],  # missing --workflow
    [*BASE, "--num-cpus", "abc", "--", "true"],
    [*BASE, "--time", "90", "--", "true"],  # 90 what? (Typer's usage error)
    [*BASE, "--bogus", "--", "true"],
    [*BASE, "--targe", "x", "--", "true"],  # click has no abbreviations: Typer suggests --target
    [*BASE, "--wait=yes", "--", "true"],
    [*BASE, "--engine", "--", "true"],  # a value that looks like an option
    [*BASE, "--engine"],
    [*BASE, "--target", "again", "--", "true"],  # given twice
    [*BASE, "-x", "--", "true"],
    [*BASE, "-", "true"],
    ["ray", "jobs", "status", "x"],
    ["ray", "jobs"],
    ["--version"],
]


def typer_kwargs(args: list[str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What the Typer command hands the body for ``args`` (the body is replaced by a recorder)."""
    from merlin.cli.app import app

    seen: dict[str, Any] = {}
    monkeypatch.setattr(jobs_submit, "submit", lambda **kw: seen.update(kw))
    app(args=args, prog_name="merlin", standalone_mode=False)
    monkeypatch.undo()
    return seen


@pytest.mark.parametrize("args", READ, ids=lambda a: " ".join(a[3:])[:60])
def test_fast_path_gives_the_body_what_typer_gives_it(args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    fast = fast_submit.parse(args)
    assert fast is not None, "the fast path should read this line"
    fast = fast_submit._configured(fast)  # the options not on the line, from the environment and config files as Typer's callbacks take them
    assert fast == typer_kwargs(args, monkeypatch)
    assert {type(v) for v in fast.values()} <= {str, int, float, bool, list, frozenset, type(None), type(Path())}


@pytest.mark.parametrize("args", DECLINED, ids=lambda a: " ".join(a)[:60])
def test_fast_path_leaves_help_errors_and_other_commands_to_typer(args: list[str]) -> None:
    assert fast_submit.parse(args) is None


def test_config_defaults_reach_the_body_as_through_typer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A project's merlin.toml gives engine, cluster, state root and output to the options not on the line."""
    from merlin.cli import config

    (tmp_path / "merlin.toml").write_text('engine = "ray"\ncluster = "lab"\nstate_root = "st"\noutput = "json"\n')
    monkeypatch.chdir(tmp_path)
    config.forget()
    try:
        for args in ([*BASE, "--", "true"], [*BASE, "--cluster", "other", "--engine", "local", "--", "true"]):
            fast = fast_submit.parse(args)
            assert fast is not None
            fast = fast_submit._configured(fast)
            assert fast == typer_kwargs(args, monkeypatch), args
    finally:
        config.forget()


def test_shell_completion_goes_to_typer(monkeypatch: pytest.MonkeyPatch) -> None:
    assert fast_submit.parse([*BASE, "--", "true"]) is not None
    monkeypatch.setenv("_MERLIN_COMPLETE", "bash_complete")
    assert fast_submit.parse([*BASE, "--", "true"]) is None


def test_an_unreadable_existing_path_goes_to_typer(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o000)
    assert fast_submit.parse([*BASE, "--target-dir", str(locked), "--", "true"]) is None
    assert fast_submit.parse([*BASE, "--target-dir", str(tmp_path), "--", "true"]) is not None


#: what differs between two submissions of one line: the run id, times, processes
VARIES = ("run_id", "pid", "pgid", "start_ticks", "usage")  # usage: the command's own CPU and memory
VARIES_ENDING = ("_at", "_time", "_pid", "_start")


def _same(value: Any, run_id: str) -> Any:
    """A record with what differs between two submissions (ids, times, processes) taken out."""
    if isinstance(value, dict):
        return {k: _same(v, run_id) for k, v in value.items() if k not in VARIES and not k.endswith(VARIES_ENDING)}
    if isinstance(value, list):
        return [_same(v, run_id) for v in value]
    return value.replace(run_id, "RUN") if isinstance(value, str) else value


@pytest.mark.parametrize("engine", ["ray", "local"])
def test_both_parsers_record_the_same_run_for_the_same_line(engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ray: no cluster, so the run is recorded blocked (exit 3); local: the command runs to its end (--wait)."""
    root = tmp_path / "state"
    args = [*BASE, "--engine", engine, "--env", "A=1", "--state-root", str(root), "--json", *(["--wait"] if engine == "local" else []), "--", "true"]
    assert fast_submit.parse(args) is not None
    fast = run_cli(*args)
    monkeypatch.setattr(fast_submit, "fast_call", lambda _args: None)  # every line to Typer
    typer = run_cli(*args)
    assert fast.exit_code == typer.exit_code == (3 if engine == "ray" else 0), (fast, typer)
    records = []
    for res in (fast, typer):
        doc = json.loads(res.stdout)
        run_id = doc["run_id"]
        stored = json.loads((root / "runs" / run_id / "run_record.json").read_text())
        request = json.loads((root / "runs" / run_id / "run_request.json").read_text())
        records.append((_same(doc, run_id), _same(stored, run_id), _same(request, run_id)))
    assert records[0] == records[1]
    assert fast.stderr.replace(json.loads(fast.stdout)["run_id"], "RUN") == typer.stderr.replace(json.loads(typer.stdout)["run_id"], "RUN")


PROBE = r"""
import json, sys
from merlin.cli.entry import main
code = 0
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code or 0
cli = sorted({m for m in sys.modules if m.split('.')[0] in ('typer', 'click', 'rich', 'pydantic', 'ray')})
sys.stderr.write('\nPROBE:' + json.dumps({'exit': code, 'imported': cli, 'modules': sorted(sys.modules)}) + '\n')
"""


def probe(*args: str, root: Path) -> tuple[int, list[str], list[str], str]:
    """(exit code, Typer/click/Rich/pydantic/Ray modules imported, every module, stderr) of ``merlin ARGS`` in a fresh interpreter."""
    env = {**os.environ, "MERLIN_STATE_ROOT": str(root), "NO_COLOR": "1", "COLUMNS": "200"}
    res = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    line = [x for x in res.stderr.splitlines() if x.startswith("PROBE:")]
    assert line, res.stderr
    data = json.loads(line[-1][len("PROBE:") :])
    return data["exit"], data["imported"], data["modules"], res.stderr


def test_a_submit_imports_neither_typer_nor_click(tmp_path: Path) -> None:
    root = tmp_path / "state"
    # the local engine: recorded and started; ray without a cluster: recorded blocked, exit 3, its next steps printed
    for engine, expected in (("local", 0), ("ray", 3)):
        code, imported, modules, err = probe(*BASE, "--engine", engine, "--", "true", root=root)
        assert code == expected, err
        assert imported == [], (engine, imported)
        assert "merlin.cli.jobs_submit" in modules and "merlin.cli.jobs_cmd" not in modules
    # a line the fast path declines goes to Typer, which words the error
    code, imported, _modules, err = probe(*BASE, "--num-cpus", "abc", "--", "true", root=root)
    assert code == 2 and "typer" in imported and "'abc' is not a valid float" in err, err


def _module_run(args: list[str], root: Path, prelude: str = "") -> subprocess.CompletedProcess[str]:
    """``merlin ARGS`` as the console script runs it (merlin.cli.entry.run), after ``prelude``."""
    code = prelude + "\nimport sys\nfrom merlin.cli.entry import run\nsys.argv[0] = 'merlin'\nrun()\n"
    env = {**os.environ, "MERLIN_STATE_ROOT": str(root), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)


def test_a_fast_submit_ends_without_teardown_but_with_everything_written_and_printed(tmp_path: Path) -> None:
    """run() ends a fast-path process with os._exit: the exit code, both streams and the records are whole."""
    root = tmp_path / "state"
    res = _module_run([*BASE, "--engine", "ray", "--", "true"], root)
    assert res.returncode == 3, res.stderr  # blocked: no cluster
    run_id = res.stdout.strip()
    assert res.stderr.startswith(f"run {run_id} is blocked: no active Ray cluster"), res.stderr
    record = json.loads((root / "runs" / run_id / "run_record.json").read_text())
    assert record["status"] == "blocked" and record["run_id"] == run_id
    res = _module_run([*BASE, "--engine", "ray", "--json", "--", "true"], root)
    assert res.returncode == 3 and json.loads(res.stdout)["status"] == "blocked", res.stderr


def test_an_exit_callback_still_runs_after_a_fast_submit(tmp_path: Path) -> None:
    """Where anything registered for the interpreter's exit, the process ends normally and it runs."""
    res = _module_run([*BASE, "--engine", "ray", "--", "true"], tmp_path / "state", prelude="import atexit\natexit.register(print, 'exit callback ran')")
    assert res.returncode == 3 and "exit callback ran" in res.stdout, (res.stdout, res.stderr)
