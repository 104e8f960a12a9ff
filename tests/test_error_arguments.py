"""Errors carry the argument, front ends spell it: a ``MerlinError`` names the argument
at fault as data (``argument``, ``related``); the CLI says ``--reason``, the gateway
``reason`` (docs/architecture.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import run_cli
from merlin.errors import BadInput, MerlinError

SUBMIT = ("ray", "jobs", "submit", "--target", "t", "--workflow", "w", "--engine", "local")


def test_an_error_names_its_argument_and_each_front_end_spells_it() -> None:
    err = BadInput("`force` needs a `reason` saying why; `other` stays", argument="reason", related="force")
    assert (err.argument, err.related) == ("reason", ["force"])
    assert err.render(lambda n: "--" + n) == ["--force needs a --reason saying why; `other` stays"]
    doc = err.to_json()
    assert doc["argument"] == "reason" and doc["related"] == ["force"] and doc["error"] == err.message
    assert BadInput("plain").to_json()["argument"] is None


def test_the_cli_spells_arguments_as_its_flags() -> None:
    from merlin.cli.flags import flag, speller

    assert [flag(n) for n in ("reason", "target_dir", "resources", "leases", "num_cpus")] == ["--reason", "--target-dir", "--resource", "--lease", "--num-cpus"]
    assert speller(["targetgen", "execute", "--target-dir", "x"])("target_dir") == "--target-dir"  # one name everywhere (--from-dir: a hidden alias)
    assert speller(["ray", "cluster", "start-local", "--gcs-port", "1"])("port") == "--gcs-port" and speller(["ray", "cluster", "start"])("port") == "--ssh-port"
    assert speller(["ray", "jobs", "status", "x"])("run_id") == "RUN_ID" and speller(["ray", "resources", "reserve"])("run_id") == "--run-id"
    assert speller(["ray", "jobs", "submit"])("target_dir") == "--target-dir"


def test_cli_release_force_without_reason_says_the_flags_and_json_has_the_argument(tmp_path: Path) -> None:
    root = str(tmp_path / "state")
    res = run_cli("ray", "resources", "release", "lease-1", "--force", "--state-root", root)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip() == "--force needs a --reason saying why (it is recorded with your name)"
    res = run_cli("ray", "resources", "release", "lease-1", "--force", "--state-root", root, "--json")
    doc = json.loads(res.stdout)
    assert res.returncode == 2 and doc["argument"] == "reason" and doc["related"] == ["force"] and doc["code"] == "bad_input"
    assert doc["error"] == "--force needs a --reason saying why (it is recorded with your name)"


def test_cli_bad_env_says_the_flag_and_json_has_the_argument(tmp_path: Path) -> None:
    res = run_cli(*SUBMIT, "--env", "1BAD=x", "--state-root", str(tmp_path / "s"), "--json", "--", "true")
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip() == "--env 1BAD=...: invalid environment variable name"
    doc = json.loads(res.stdout)
    assert doc["argument"] == "env" and doc["errors"] == ["--env 1BAD=...: invalid environment variable name"]


def test_cli_bad_status_says_the_flag(tmp_path: Path) -> None:
    res = run_cli("ray", "jobs", "list", "--status", "bogus", "--state-root", str(tmp_path / "s"))
    assert res.returncode == 2 and res.stderr.startswith("--status 'bogus': expected one of "), res.stderr


def test_the_gateway_in_process_names_parameters_not_flags(tmp_path: Path) -> None:
    from merlin.gateway.mcp_server import error_document
    from merlin.gateway.ops import Gateway

    gw = Gateway(tmp_path / "state")
    with pytest.raises(MerlinError) as err:
        gw.call("leases_release", {"lease_id": "lease-1", "force": True})
    doc = error_document(err.value)
    assert doc["argument"] == "reason" and doc["related"] == ["force"]
    assert doc["error"] == "`force` needs a `reason` saying why (it is recorded with your name)" and "--" not in doc["error"]
    with pytest.raises(MerlinError) as err:
        gw.call("runs_list", {"status": ["bogus"]})
    # refused by the input schema now (the statuses are an enum): still the parameter's name, never the flag
    assert "--status" not in err.value.message and "status" in err.value.message and err.value.argument == "status"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    pytest.importorskip("httpx2")
    from test_gateway_support import start_server

    srv = start_server(tmp_path_factory.mktemp("gw-args"), "--rate-limit", "0")
    yield srv
    srv.stop()


def _post(server: object, name: str, body: dict) -> tuple[int, dict]:
    import httpx2

    r = httpx2.post(f"{server.url}/api/{name}", json=body, headers=server.headers(), timeout=60)  # type: ignore[attr-defined]
    return r.status_code, r.json()


def test_http_release_force_without_reason_says_reason_not_the_flag(server: object) -> None:
    status, doc = _post(server, "leases_release", {"lease_id": "lease-1", "force": True})
    assert status == 400 and doc["code"] == "bad_input" and doc["argument"] == "reason" and doc["related"] == ["force"]
    assert "`reason`" in doc["error"] and "`force`" in doc["error"]
    assert "--" not in json.dumps(doc), doc


def test_http_bad_env_says_env_not_the_flag(server: object, tmp_path: Path) -> None:
    status, doc = _post(server, "runs_submit", {"command": ["true"], "target": "t", "workflow": "w", "env": {"1BAD": "x"}, "target_dir": str(tmp_path / "t")})
    assert status == 400 and doc["argument"] == "env", doc
    assert doc["error"] == "`env` 1BAD=...: invalid environment variable name"
    assert "--" not in json.dumps(doc), doc
