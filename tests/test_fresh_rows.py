"""Fresh rows (issue 19): `jobs list` asks the engines about the active rows it shows within a
small budget and marks the rows it could not refresh as stale with their age; `jobs watch`
with no ids watches every active run, waiting ones included; printed hints are spelled as
invoked and keep the state root."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from cli_runner import run_cli


class _Plane:
    """What `jobs list`'s refresh uses of a control plane, with an engine that answers after ``delay`` s."""

    def __init__(self, rows: list[dict[str, Any]], delay: float) -> None:
        self.rows = {d["run_id"]: dict(d) for d in rows}
        self.delay = delay
        self.asked: list[list[str]] = []
        self.ledger = SimpleNamespace(read_raw=lambda rid: self.rows[rid])

    def engine(self, name: str) -> Any:
        return SimpleNamespace(reports_own_status=name == "local")

    def refresh(self, ids: list[str]) -> None:
        self.asked.append(list(ids))
        time.sleep(self.delay)
        for rid in ids:
            self.rows[rid]["status"] = "succeeded"


def _rows() -> list[dict[str, Any]]:
    old = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() - 300))
    return [
        {"run_id": "r-ray", "status": "running", "engine": "ray", "observed_at": old, "updated_at": old},
        {"run_id": "r-local", "status": "running", "engine": "local", "updated_at": old},
        {"run_id": "r-done", "status": "failed", "engine": "ray", "updated_at": old},
    ]


def test_jobs_list_marks_rows_its_engine_did_not_answer_for_in_time_as_stale() -> None:
    from merlin.cli.jobs_cmd import FRESH_BUDGET, _fresh
    from merlin.cli.runs_table import runs_text

    cp = _Plane(_rows(), delay=5.0)
    start = time.monotonic()
    rows = _fresh(cp, _rows(), None)
    took = time.monotonic() - start
    assert took < FRESH_BUDGET + 1.0, took  # it did not wait for the engine
    assert cp.asked == [["r-ray"]]  # only the active rows of an engine that does not record its own status
    by = {d["run_id"]: d for d in rows}
    assert 295 <= by["r-ray"]["_stale"] <= 330 and "_stale" not in by["r-local"] and "_stale" not in by["r-done"]
    text = runs_text(rows, 120, colour=False)
    assert "running (stale 5m)" in text, text


def test_jobs_list_shows_what_the_engine_answered_within_the_budget() -> None:
    from merlin.cli.jobs_cmd import _fresh

    cp = _Plane(_rows(), delay=0.0)
    rows = _fresh(cp, _rows(), None)
    by = {d["run_id"]: d for d in rows}
    assert by["r-ray"]["status"] == "succeeded" and "_stale" not in by["r-ray"]
    assert [d["run_id"] for d in _fresh(_Plane(_rows(), 0.0), _rows(), ["running"])] == ["r-local", "r-done"]  # r-ray no longer matches


def test_jobs_watch_without_ids_watches_waiting_runs_too(tmp_path: Path) -> None:
    from merlin.controlplane import ControlPlane

    root = tmp_path / "state"
    cp = ControlPlane(root)
    cp.leases.define([{"id": "board0", "pool": "board"}])
    cp.leases.reserve(["board:1"])
    run = cp.submit([sys.executable, "-c", "pass"], target="demo", workflow="w", engine="local", leases=["board:1"])
    assert run.status.value == "waiting"
    res = run_cli("ray", "jobs", "watch", "--timeout", "1s", "--json", "--state-root", str(root))
    assert res.returncode == 124, res.stderr
    assert [r["run_id"] for r in json.loads(res.stdout)] == [run.run_id]
    cp.cancel(run.run_id)


def test_printed_hints_are_spelled_as_invoked_and_keep_the_state_root(tmp_path: Path) -> None:
    from merlin.cli.nextsteps import command
    from merlin.controlplane import targetgen_outcome

    root = tmp_path / "state"
    inventory = tmp_path / "inv.yaml"
    inventory.write_text("schema_version: 1\nitems:\n  - {id: board0, pool: board}\n")
    res = run_cli("ray", "resources", "define", str(inventory), "--state-root", str(root), env={"MERLIN_INVOKED_AS": "./merlin"})
    assert res.returncode == 0, res.stderr
    res = run_cli("ray", "resources", "reserve", "board:1", "--state-root", str(root), env={"MERLIN_INVOKED_AS": "./merlin"})
    lease = res.stdout.strip()
    assert f"renew with `./merlin ray resources renew {lease} --state-root {root}`" in res.stderr, res.stderr
    # a TargetGen run's "execute again" keeps the engine and the cluster it ran on, and the state root
    result = {"target_dir": str(tmp_path / "t"), "outcome": "awaiting_operator", "current_task": "x",
              "open_question": {"id": "q1", "recommended_option": "go"}}
    _text, steps = targetgen_outcome(result, "run-1", engine="ray", cluster="c1")
    again = [s for s in steps if s["action"] == "targetgen_execute"][0]
    rendered = command(again, ["--state-root", str(root)])
    assert rendered.endswith(f"targetgen execute --target-dir {tmp_path / 't'} --engine ray --cluster c1 --state-root {root}"), rendered


def test_a_targetgen_run_on_a_cluster_says_execute_again_there(tmp_path: Path) -> None:
    """The outcome a TargetGen run records (as its Ray job does) keeps its engine and cluster: `jobs status`,
    `jobs logs` and `jobs retry` print `targetgen execute ... --engine ray --cluster c1` (issue 19)."""
    from merlin.controlplane import ControlPlane
    from merlin.integrations.targetgen_runs import record_outcome
    from merlin.ledger.models import ClusterRef

    root = tmp_path / "state"
    cp = ControlPlane(root)
    run = cp.submit([sys.executable, "-c", "pass"], target="demo", workflow="w", engine="local", target_dir=tmp_path / "t", wait=True)

    def on_c1(r: Any) -> list[dict[str, Any]]:  # what a run submitted with --engine ray --cluster c1 records
        r.metadata = {**r.metadata, "targetgen_engine": "ray"}
        r.cluster = ClusterRef(name="c1", address="http://127.0.0.1:9")
        return []

    cp.ledger.update(run.run_id, on_c1, cause="test: as submitted to c1")
    record_outcome(cp, run.run_id, "awaiting_operator")
    res = run_cli("ray", "jobs", "status", run.run_id, "--no-refresh", "--state-root", str(root), env={"MERLIN_INVOKED_AS": "./merlin"})
    want = f"./merlin targetgen execute --target-dir {tmp_path / 't'} --engine ray --cluster c1 --state-root {root}"
    assert any(line.split(None, 1)[-1] == want for line in res.stdout.splitlines() if line.startswith("next")), res.stdout
