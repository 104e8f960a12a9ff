"""`merlin targetgen execute --engine ray` on a real cluster: the executor runs as a
Ray job and its outcome lands in the run record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_runner import run_cli
from conftest import EXAMPLES
from merlin.controlplane import ControlPlane

pytestmark = [pytest.mark.ray, pytest.mark.slow]

CAP = EXAMPLES / "x86_cpu_baseline" / "capability.yaml"


def _commands(rec) -> list[str]:
    """A record's next steps as the CLI renders them (plain ``merlin``: tests do not run ./merlin)."""
    from merlin.cli.nextsteps import command

    data = rec if isinstance(rec, dict) else rec.model_dump(mode="json")
    return [command(s) for s in data["next_steps"]]


def overlay() -> Path:
    return sorted((CAP.parent / "overlays").glob("*.yaml"))[0]


def test_execute_on_ray_records_the_executor_outcome(ray_cp: ControlPlane, tmp_path: Path) -> None:
    out = tmp_path / "targets"
    res = run_cli("targetgen", "execute", str(CAP), "--overlay", str(overlay()), "--out-dir", str(out), "--engine", "ray", "--wait", "--json", timeout=300)
    # the executor stops at an operator question: the CLI exits with the executor's code (10)
    assert res.returncode == 10, res.stderr
    rec = json.loads(res.stdout)
    assert rec["status"] == "succeeded" and rec["outcome"] == "awaiting_operator"
    assert rec["engine"] == "ray" and rec["source"] == "targetgen" and rec["target"] == "x86_cpu_baseline"
    target_dir = out / "x86_cpu_baseline"
    assert rec["target_dir"] == str(target_dir.resolve())
    cmds = _commands(rec)
    assert any(c.startswith(f"merlin targetgen answer --target-dir {target_dir.resolve()}") for c in cmds), (cmds, rec["message"], rec.get("outcome"))
    assert any(c.startswith(f"merlin targetgen execute --target-dir {target_dir.resolve()} --engine ray") for c in cmds), cmds  # the hint keeps --engine ray
    # the command really ran on the cluster: the job's entrypoint is this interpreter running merlin
    cmd = rec["command"]
    assert cmd[1:6] == ["-m", "merlin", "targetgen", "execute", "--target-dir"] and "--run-id" in cmd
    logs = ray_cp.logs(rec["run_id"])
    assert "awaiting_operator" in logs and "review_target_spec" in logs
    # the bundle was persisted here and advanced by the job
    state = json.loads((target_dir / "execution_state.json").read_text())
    assert state["tasks"]
    events = [e.event for e in ray_cp.events(rec["run_id"])]
    assert events[0] == "created" and "outcome" in events and "artifacts" in events
    outcome_ev = next(e for e in ray_cp.events(rec["run_id"]) if e.event == "outcome")
    assert outcome_ev.pid != next(e for e in ray_cp.events(rec["run_id"]) if e.event == "created").pid
    names = {f.name for f in ray_cp.artifacts(rec["run_id"]).files}
    assert "execution_state.json" in names and "execution_bundle.json" in names

    # answer, then resume from the directory on Ray again: same ledger, a new run
    q = json.loads(run_cli("targetgen", "status", "--target-dir", str(target_dir), "--json").stdout)["open_question"]
    ans = run_cli("targetgen", "answer", "--target-dir", str(target_dir), "--question-id", q["id"], "--choice", q["recommended_option"])
    assert ans.returncode == 0, ans.stderr
    again = run_cli("targetgen", "execute", "--from-dir", str(target_dir), "--engine", "ray", "--wait", "--json", timeout=300)
    rec2 = json.loads(again.stdout)
    assert rec2["run_id"] != rec["run_id"] and rec2["status"] == "succeeded"
    assert again.returncode == {"completed": 0, "awaiting_operator": 10, "awaiting_response": 10, "blocked": 3}[rec2["outcome"]]


def test_execute_on_ray_without_cluster_is_blocked(tmp_path: Path) -> None:
    root = tmp_path / "empty-ledger"
    res = run_cli("targetgen", "execute", str(CAP), "--overlay", str(overlay()), "--out-dir", str(tmp_path / "t"),
                  "--engine", "ray", "--state-root", str(root))
    assert res.returncode == 3
    assert "start one; next: `merlin ray cluster start-local --state-root " in res.stderr and "Traceback" not in res.stderr
    runs = ControlPlane(root).list_runs()
    assert [r["status"] for r in runs] == ["blocked"] and runs[0]["source"] == "targetgen"
    assert (tmp_path / "t" / "x86_cpu_baseline" / "execution_bundle.json").is_file()  # the bundle was persisted
