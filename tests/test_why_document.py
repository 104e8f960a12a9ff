"""`jobs why` as the docs promise (issue 19): `--json` is the gateway's runs_why document, a held
slot says since when and until when, and a finished run (even one whose lease ended) is held by
nothing, on the CLI and on the gateway alike."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cli_runner import run_cli


def _items() -> list[dict]:
    return [{"id": "board0", "pool": "board"}]


def test_jobs_why_json_is_runs_why_and_a_finished_run_holds_nothing(tmp_path: Path) -> None:
    pytest_gateway = __import__("pytest").importorskip("merlin.gateway.ops")
    from merlin.controlplane import ControlPlane

    root = tmp_path / "state"
    cp = ControlPlane(root)
    cp.leases.define(_items())
    holder = cp.leases.reserve(["board:1"], run_id="first-run")
    run = cp.submit([sys.executable, "-c", "pass"], target="demo", workflow="why", engine="local", leases=["board:1"])
    assert run.status.value == "waiting", run.message

    cli = json.loads(run_cli("ray", "jobs", "why", run.run_id, "--json", "--state-root", str(root)).stdout)
    gw = pytest_gateway.Gateway(root).call("runs_why", {"run_id": run.run_id})
    assert set(cli) == set(gw) == {"run_id", "status", "message", "held", "conditions", "next_steps"}
    assert {k: cli[k] for k in ("run_id", "status", "held")} == {k: gw[k] for k in ("run_id", "status", "held")}
    assert cli["message"] and gw["message"]  # the run's own (its waiter may reword it between the two calls)
    assert cli["held"] is True and cli["status"] == "waiting"

    def without_steps(conds: list[dict]) -> list[dict]:
        return [{k: v for k, v in c.items() if k not in ("next_steps", "observed_at")} for c in conds]

    assert without_steps(cli["conditions"]) == without_steps(gw["conditions"])  # the same conditions, word for word
    # the same steps, as actions on the CLI and as tool calls on the gateway
    # (the gateway leaves out what it does not offer by default: a forced release)
    from merlin.gateway.steps import map_steps

    assert gw["next_steps"] == [s for s in map_steps(cli["next_steps"]) if s in gw["next_steps"]] and len(gw["next_steps"]) >= 2
    assert {"action": "status", "args": {"run_id": run.run_id}} in cli["next_steps"]
    assert {"tool": "runs_status", "args": {"run_id": run.run_id}} in gw["next_steps"]

    # a held slot says since when, and until when (README: "who holds the slot, since when")
    text = run_cli("ray", "jobs", "why", run.run_id, "--state-root", str(root)).stdout
    assert f"since {holder['granted_at']} until {holder['expires_at']}" in text, text

    # the run ends (cancelled) with its lease: nothing holds a finished run back, whatever its lease became
    cp.cancel(run.run_id)
    cp.leases.release(holder["lease_id"])
    done = json.loads(run_cli("ray", "jobs", "why", run.run_id, "--json", "--state-root", str(root)).stdout)
    assert done["held"] is False and done["conditions"] == [] and done["status"] == "cancelled", done
    assert pytest_gateway.Gateway(root).call("runs_why", {"run_id": run.run_id})["held"] is False
    said = run_cli("ray", "jobs", "why", run.run_id, "--state-root", str(root))
    assert said.returncode == 0 and "nothing holds it back" in said.stderr and "reserve" not in said.stdout + said.stderr


def test_wait_exit_codes_are_one_table_and_the_readme_shows_it() -> None:
    """Every command that waits maps the same outcome to the same code (cli/common.py WAIT_EXITS),
    and README's table is that table."""
    from types import SimpleNamespace

    from merlin.cli.common import WAIT_EXITS, wait_exit_code
    from merlin.ledger.status import RunStatus

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("### Exit codes of `--wait`") :]
    for meaning, code in WAIT_EXITS:
        assert f"| {code} | {meaning} |" in section, (code, meaning)

    def rec(status: str, outcome: str | None = None) -> SimpleNamespace:
        return SimpleNamespace(status=RunStatus(status), outcome=outcome)

    assert wait_exit_code(rec("succeeded")) == 0 and wait_exit_code(rec("succeeded", "completed")) == 0
    assert wait_exit_code(rec("succeeded", "awaiting_operator")) == 10 == wait_exit_code(rec("succeeded", "awaiting_response"))
    assert wait_exit_code(rec("succeeded", "blocked")) == 3 == wait_exit_code(rec("blocked"))
    assert wait_exit_code(rec("failed")) == 1 == wait_exit_code(rec("cancelled")) == wait_exit_code(rec("lost"))
