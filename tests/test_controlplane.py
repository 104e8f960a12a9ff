"""ControlPlane API without Ray: in-process runs (what `targetgen execute --engine
local` records), outcomes, and the local TargetGen path through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import EXAMPLES, run_cli
from merlin.controlplane import ControlPlane, targetgen_message
from merlin.ledger import RunStatus


def test_record_inprocess_run_success(tmp_path: Path) -> None:
    cp = ControlPlane(tmp_path / "s")
    tdir = tmp_path / "target"
    tdir.mkdir()
    with cp.record_inprocess_run(target="demo", target_dir=tdir, command=["merlin", "x"]) as run:
        assert cp.get(run.run_id).status == RunStatus.RUNNING  # visible while it works
        (tdir / "report.md").write_text("# done")
        run.finish("completed", exit_code=0)
    rec = cp.get(run.run_id)
    assert rec.status == RunStatus.SUCCEEDED and rec.outcome == "completed" and rec.attempt.exit_code == 0
    assert rec.engine == "local" and rec.source == "targetgen" and rec.command == ["merlin", "x"]
    assert f"merlin ray artifacts list {run.run_id}" in rec.message
    assert [f.name for f in cp.artifacts(run.run_id).files] == ["report.md"]


def test_record_inprocess_run_failure_is_recorded_and_reraised(tmp_path: Path) -> None:
    cp = ControlPlane(tmp_path / "s")
    with pytest.raises(RuntimeError):
        with cp.record_inprocess_run(target="demo", target_dir=tmp_path) as run:
            raise RuntimeError("disk on fire")
    rec = cp.get(run.run_id)
    assert rec.status == RunStatus.FAILED and "disk on fire" in rec.message and rec.outcome is None


def test_attached_run_gets_outcome_but_keeps_engine_status(tmp_path: Path) -> None:
    """The Ray-job side: an existing run is attached, the outcome written, the status left to the engine."""
    cp = ControlPlane(tmp_path / "s")
    rec = cp.submit(["true"], target="demo", workflow="w", wait=True)
    with cp.record_inprocess_run(target="demo", target_dir=tmp_path, run_id=rec.run_id) as run:
        assert run.attached
        run.finish("awaiting_operator", exit_code=10, message="answer the question, then execute again")
    after = cp.get(rec.run_id)
    assert after.status == RunStatus.SUCCEEDED and after.outcome == "awaiting_operator"
    assert after.message == "answer the question, then execute again"
    assert [e["event"] for e in cp.events(rec.run_id)][-1] == "outcome"


def test_targetgen_message_names_the_next_command() -> None:
    data = {"target_dir": "/t", "outcome": "blocked", "blocked": [{"task_id": "t1", "reason": "no SDK"}]}
    msg = targetgen_message(data, "r-1")
    assert "merlin targetgen retry --target-dir /t --task t1" in msg and "no SDK" in msg
    data = {"target_dir": "/t", "outcome": "awaiting_response", "awaiting_response": {"response_file": "/t/r.md", "prompt_file": "/t/p.md"}}
    assert "write /t/r.md" in targetgen_message(data, "r-1")


def test_local_execute_records_a_run_with_unchanged_cli_behaviour(tmp_path: Path) -> None:
    cap = EXAMPLES / "x86_cpu_baseline" / "capability.yaml"
    ovl = sorted((cap.parent / "overlays").glob("*.yaml"))[0]
    root = tmp_path / "ledger"
    res = run_cli("targetgen", "execute", str(cap), "--overlay", str(ovl), "--out-dir", str(tmp_path / "t"), "--state-root", str(root), "--json")
    assert res.returncode == 10, res.stderr  # the executor's own exit code, as before
    result = json.loads(res.stdout)
    assert result["outcome"] == "awaiting_operator"  # stdout is the executor's JSON, as before
    runs = ControlPlane(root).list_runs()
    assert len(runs) == 1
    run = runs[0]
    assert run["status"] == "succeeded" and run["outcome"] == "awaiting_operator" and run["engine"] == "local"
    assert run["target"] == "x86_cpu_baseline" and run["attempts"][0]["exit_code"] == 10
    assert "merlin targetgen answer" in run["message"]
    assert (root / "runs" / run["run_id"] / "artifacts.json").is_file()
    # bad input never reaches the ledger
    bad = run_cli("targetgen", "execute", str(tmp_path / "missing.yaml"), "--state-root", str(root))
    assert bad.returncode == 2 and len(ControlPlane(root).list_runs()) == 1
    wrong = run_cli("targetgen", "execute", str(cap), "--engine", "spark", "--state-root", str(root))
    assert wrong.returncode == 2
