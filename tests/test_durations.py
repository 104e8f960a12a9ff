"""One duration grammar (merlin.durations) behind every duration flag of the CLI.

The flag test walks the whole command tree (every lazy group loaded), so a new
duration flag is covered without being listed here; an option whose name or help
says it is a time and that does not take the grammar fails it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from cli_runner import run_cli
from merlin.durations import BadDuration, clock, describe, parse_duration, seconds
from merlin.errors import BadInput


@pytest.mark.parametrize(
    "text, expect",
    [
        ("30s", 30), ("15m", 900), ("2h", 7200), ("1d", 86400), ("0.5s", 0.5), ("1.5h", 5400),
        ("1h30m", 5400), ("1d12h", 129600), ("2m30s", 150), (" 2h ", 7200), ("0", 0),
        ("1:30", 90), ("01:30", 90), ("1:00:00", 3600), ("10:00:00", 36000), ("2-0", 172800),
        ("1-01:00", 90000), ("0-00:00:05", 5), ("1-12:00:00", 129600),
    ],
)  # fmt: skip
def test_each_form_of_the_grammar_parses(text: str, expect: float) -> None:
    assert seconds(text) == expect
    assert parse_duration(text, "time") == expect


@pytest.mark.parametrize("bare", ["90", "30", "1.5"])
def test_a_bare_number_is_refused_with_a_did_you_mean(bare: str) -> None:
    with pytest.raises(BadInput) as err:
        parse_duration(bare, "time")
    assert str(err.value).startswith(f"time: {bare} what? {bare}s or {bare}m")
    assert "--" not in str(err.value)  # the name is data; the front end spells the flag


@pytest.mark.parametrize("bad", ["soon", "2x", "h", "1h2h", "30m1h", "-5s", "nan", "inf", "1:2:3:4", "", "2 h"])
def test_what_is_not_a_duration_is_refused(bad: str) -> None:
    with pytest.raises(BadDuration, match="is not a duration"):
        parse_duration(bad, "ttl")


def test_numbers_from_code_are_seconds_and_bounds_apply() -> None:
    assert parse_duration(90) == 90 and parse_duration(0.25) == 0.25 and parse_duration(None) is None
    with pytest.raises(BadInput, match=r"ttl: '0s': must be more than 0"):
        parse_duration("0s", "ttl", above_zero=True)
    with pytest.raises(BadInput, match=r"ttl: '8d': must be at most 7d"):
        parse_duration("8d", "ttl", at_most=7 * 86400)
    with pytest.raises(BadInput, match=r"^ttl: 8d: must be at most 7d$"):
        parse_duration(8 * 86400.0, "ttl", at_most=7 * 86400)  # seconds from a front end that parsed '8d'
    with pytest.raises(BadInput, match=r"^ttl: 1e\+308s: must be at most 7d$"):
        parse_duration(1e308, "ttl", at_most=7 * 86400)  # one short line, not 300 digits of days
    for bad in (float("nan"), -1, True):
        with pytest.raises(BadInput):
            parse_duration(bad, "ttl")


def test_describe_and_clock_write_the_grammar_back() -> None:
    assert [describe(s) for s in (0, 0.5, 90, 5400, 86400, 93784)] == ["0s", "0.5s", "1m30s", "1h30m", "1d", "1d2h3m4s"]
    assert [clock(s) for s in (90, 7200, 93784)] == ["00:01:30", "02:00:00", "1-02:03:04"]
    assert clock(93784, days=False) == "26:03:04"  # PBS: hours past 24
    for s in (90, 7200, 93784):
        assert seconds(clock(s)) == s and seconds(describe(s)) == s


# ------------------------------------------------------------ the flags

_TIME_WORDS = {"time", "ttl", "timeout", "interval", "grace", "age", "walltime", "delay", "period"}


def _every_option() -> list[tuple[str, Any, Any]]:
    """(command path, option, click context) for every option of every command, lazy groups loaded."""
    import typer

    from merlin.cli.app import LAZY_GROUPS, app

    root = typer.main.get_command(app)
    found: list[tuple[str, Any, Any]] = []

    def walk(cmd: Any, path: str, parent: Any) -> None:
        ctx = type(parent)(cmd, info_name=path.rsplit(" ", 1)[-1], parent=parent) if parent is not None else None
        if ctx is None:
            from typer._click.core import Context

            ctx = Context(cmd, info_name="merlin")
        for p in cmd.params:
            if getattr(p, "opts", None) and any(o.startswith("--") for o in p.opts):
                found.append((path, p, ctx))
        if hasattr(cmd, "list_commands"):
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), f"{path} {name}", ctx)

    walk(root, "merlin", None)
    assert any(path.startswith("merlin ray jobs") for path, _p, _c in found), "the lazy groups were not walked"
    assert set(LAZY_GROUPS) <= {path.split()[1] for path, _p, _c in found if len(path.split()) > 1}
    return found


def _looks_like_a_duration(param: Any) -> bool:
    words = {w for o in param.opts for w in o.lstrip("-").split("-")}
    return bool(words & _TIME_WORDS) or bool(re.search(r"\bseconds\b|\bhow long\b|\bthis long\b", param.help or "", re.I))


def test_every_duration_flag_takes_the_grammar() -> None:
    """Every time-valued flag in the tree accepts 2h and refuses a bare number with the did-you-mean."""
    from typer._click.exceptions import BadParameter

    from merlin.cli.options import Duration

    flags = [(path, p, ctx) for path, p, ctx in _every_option() if isinstance(p.type, Duration) or _looks_like_a_duration(p)]
    names = {(path, p.opts[0]) for path, p, _c in flags}
    for must in [("merlin ray jobs submit", "--time"), ("merlin ray cluster start", "--time"), ("merlin ray cluster start", "--idle-timeout"),
                 ("merlin ray cluster start", "--walltime"), ("merlin ray resources reserve", "--ttl"), ("merlin ray resources renew", "--ttl"),
                 ("merlin ray resources run", "--ttl"), ("merlin ray jobs watch", "--timeout"), ("merlin ray cluster stop", "--grace")]:  # fmt: skip
        assert must in names, must
    for path, p, ctx in flags:
        where = f"{path} {p.opts[0]}"
        assert isinstance(p.type, Duration), f"{where} is a duration: declare it with merlin.cli.options.duration_option"
        assert p.type_cast_value(ctx, "2h") == 7200.0, where
        with pytest.raises(BadParameter, match=r"90 what\? 90s or 90m"):
            p.type_cast_value(ctx, "90")
        if p.default is not None:  # defaults are written in the grammar too
            assert p.type_cast_value(ctx, p.default) >= 0, where


def test_bare_number_on_the_command_line_names_the_flag(tmp_path: Path) -> None:
    res = run_cli("ray", "resources", "reserve", "board:1", "--ttl", "90", "--state-root", str(tmp_path / "s"))
    assert res.returncode == 2
    assert "Invalid value for '--ttl': 90 what? 90s or 90m" in res.stderr, res.stderr


def test_time_on_the_local_engine_is_accepted_and_ignored_with_a_warning(tmp_path: Path) -> None:
    """`jobs submit --time 2h` on an engine without walltime: the run is submitted, stderr says --time was ignored."""
    root = tmp_path / "s"
    res = run_cli("ray", "jobs", "submit", "--engine", "local", "--target", "t", "--workflow", "w", "--time", "2h",
                  "--state-root", str(root), "--", "true")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "warning: --time 2h is ignored: the local engine has no walltime" in res.stderr
    run_id = res.stdout.strip()
    assert run_id and (root / "runs" / run_id).is_dir()  # recorded and handed to the engine


@pytest.mark.parametrize(
    "args, key, expect",
    [
        (["--kind", "slurm", "--time", "2h"], "time", "02:00:00"),
        (["--kind", "slurm", "--time", "1d12h"], "time", "1-12:00:00"),
        (["--kind", "slurm", "--time", "1:30:00"], "time", "01:30:00"),
        (["--kind", "pbs", "--walltime", "30h"], "walltime", "30:00:00"),
        (["--kind", "slurm", "--idle-timeout", "1h30m"], "idle_timeout", 5400.0),
        (["--kind", "pbs", "--wait", "--wait-timeout", "3m"], "timeout", 180.0),
    ],
)
def test_cluster_start_hands_the_scheduler_its_own_form(args: list[str], key: str, expect: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`cluster start --time 2h` reaches sbatch as 02:00:00 (qsub's walltime as HH:MM:SS); the idle timeout as seconds."""
    from typer.testing import CliRunner

    from merlin.cli.ray_cmd import app
    from merlin.controlplane import ControlPlane

    seen: dict[str, Any] = {}

    def start_cluster(self: Any, kind: str, name: str, **options: Any) -> Any:
        seen.update(options, kind=kind)
        raise BadInput("stop here: the options are what this test checks")

    monkeypatch.setattr(ControlPlane, "start_cluster", start_cluster)
    res = CliRunner().invoke(app, ["cluster", "start", *args, "--state-root", str(tmp_path / "s")])
    assert isinstance(res.exception, BadInput) and "stop here" in str(res.exception), res.output
    assert seen[key] == expect, seen


def test_a_restart_command_for_an_older_record_speaks_the_grammar() -> None:
    """A cluster recorded with a bare Slurm time (minutes) or PBS walltime (seconds) is restarted with a command the CLI accepts."""
    from merlin.cli.nextsteps import command
    from merlin.nextsteps import Action, step

    slurm = command(step(Action.START_CLUSTER, name="lab", kind="slurm", options={"nodes": 1, "time": "90"}))
    pbs = command(step(Action.START_CLUSTER, name="p", kind="pbs", options={"select": "1:ncpus=1", "walltime": "600"}))
    assert "--time 90m" in slurm and "--walltime 600s" in pbs
    assert seconds("90m") == 5400 and seconds("600s") == 600
