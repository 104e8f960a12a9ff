"""The config files (issue 19, docs/config.md): the user's $XDG_CONFIG_HOME/merlin/config.toml and a
project's merlin.toml give defaults; flags, then environment variables, then the project file,
then the user file; `merlin config show` says where each value came from; a bad file is one line
naming the file and the key, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_runner import run_cli


@pytest.fixture()
def homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(the user's config file, a project directory with its merlin.toml), neither written yet; no MERLIN_STATE_ROOT."""
    monkeypatch.delenv("MERLIN_STATE_ROOT")
    xdg = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    (xdg / "merlin").mkdir(parents=True)
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    return xdg / "merlin" / "config.toml", project


def _show(cwd: Path, env: dict[str, str] | None = None) -> dict[str, tuple[object, str]]:
    res = run_cli("config", "show", "--json", cwd=cwd, env=env)
    assert res.returncode == 0, res.stderr
    return {s["key"]: (s["value"], s["origin"]) for s in json.loads(res.stdout)["settings"]}


def test_show_says_where_each_value_came_from_in_precedence_order(homes: tuple[Path, Path]) -> None:
    user, project = homes
    user.write_text('cluster = "from-user"\nengine = "ray"\noutput = "wide"\n[retention]\nolder_than = "60d"\n')
    (project / "merlin.toml").write_text('cluster = "from-project"\nstate_root = "ledger"\n')
    got = _show(project / "sub")  # found from a subdirectory, as git finds .git
    assert got["cluster"] == ("from-project", str(project / "merlin.toml"))
    assert got["engine"] == ("ray", str(user)) and got["output"] == ("wide", str(user))
    assert got["retention.older_than"] == ("60d", str(user))
    assert got["state_root"] == (str(project / "ledger"), str(project / "merlin.toml"))  # relative to its file
    assert got["retention.status"] == (None, "default")
    env = _show(project, {"MERLIN_CLUSTER": "from-env"})
    assert env["cluster"] == ("from-env", "env:MERLIN_CLUSTER")
    text = run_cli("config", "show", cwd=project).stdout
    assert any(line.split() == [str(project / "merlin.toml"), "cluster=from-project"] for line in text.splitlines()), text
    assert any(line.split() == ["default", "retention.status=-"] for line in text.splitlines()), text


def test_the_values_reach_the_commands_flags_first(homes: tuple[Path, Path], tmp_path: Path) -> None:
    """A ray run submitted with no --cluster goes to the configured cluster (recorded blocked: no such cluster here)."""
    user, project = homes
    user.write_text('engine = "ray"\ncluster = "c-user"\n')
    (project / "merlin.toml").write_text('cluster = "c-project"\nstate_root = "ledger"\n')

    def submit(*extra: str, env: dict[str, str] | None = None) -> dict:
        res = run_cli("ray", "jobs", "submit", "--target", "t", "--workflow", "w", "--json", *extra, "--", "true", cwd=project, env=env)
        assert res.stdout, res.stderr
        return json.loads(res.stdout)

    rec = submit()
    assert rec["engine"] == "ray" and rec["cluster"]["name"] == "c-project" and rec["status"] == "blocked"
    assert (project / "ledger" / "runs" / rec["run_id"]).is_dir()  # the project's state root
    assert submit(env={"MERLIN_CLUSTER": "c-env"})["cluster"]["name"] == "c-env"
    assert submit("--cluster", "c-flag", env={"MERLIN_CLUSTER": "c-env"})["cluster"]["name"] == "c-flag"
    assert submit("--engine", "local")["engine"] == "local"
    other = tmp_path / "other-root"
    assert (other / "runs" / submit("--state-root", str(other))["run_id"]).is_dir()
    # the user file alone, from a directory without a project file
    alone = tmp_path / "elsewhere"
    alone.mkdir()
    res = run_cli("ray", "jobs", "submit", "--target", "t", "--workflow", "w", "--json", "--state-root", str(other), "--", "true", cwd=alone)
    assert json.loads(res.stdout)["cluster"]["name"] == "c-user"
    # output = "json" makes --json the default
    (project / "merlin.toml").write_text('output = "json"\nstate_root = "ledger"\n')
    assert isinstance(json.loads(run_cli("ray", "jobs", "list", cwd=project).stdout), list)


@pytest.mark.parametrize(
    "text,expected",
    [
        ('clustr = "c1"\n', "unknown key 'clustr'"),
        ('engine = "rai"\n', "key 'engine' = 'rai': expected one of local, ray"),
        ("engine = \n", "not valid TOML"),
        ('[retention]\nolder_than = "90"\n', "key 'retention.older_than' = '90': expected a duration"),
        ('[retention]\nstatus = ["running"]\n', "key 'retention.status'"),
        ('output = "yaml"\n', "key 'output' = 'yaml': expected one of table, wide, json, name"),
    ],
)
def test_a_bad_file_is_one_line_naming_the_file_and_key(homes: tuple[Path, Path], text: str, expected: str) -> None:
    _user, project = homes
    (project / "merlin.toml").write_text(text)
    for args in (["config", "show"], ["ray", "jobs", "list"]):
        res = run_cli(*args, cwd=project)
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 2 and len(lines) == 1, res.stderr
        assert lines[0].startswith(f"{project / 'merlin.toml'}: ") and expected in lines[0], lines[0]


def test_a_bad_environment_value_is_one_line(homes: tuple[Path, Path]) -> None:
    _user, project = homes
    res = run_cli("config", "show", cwd=project, env={"MERLIN_ENGINE": "warp"})
    assert res.returncode == 2 and res.stderr.strip() == "$MERLIN_ENGINE='warp': expected one of local, ray (unset it or fix it)"


def test_xdg_config_home_is_respected(homes: tuple[Path, Path], tmp_path: Path) -> None:
    user, project = homes
    user.write_text('cluster = "xdg"\n')
    assert _show(project)["cluster"] == ("xdg", str(user))
    assert _show(project, {"XDG_CONFIG_HOME": str(tmp_path / "empty")})["cluster"] == ("default", "default")
