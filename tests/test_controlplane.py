"""ControlPlane API without Ray: in-process runs (what `targetgen execute --engine
local` records), outcomes, and the local TargetGen path through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_runner import run_cli
from conftest import EXAMPLES
from merlin.cli.nextsteps import command
from merlin.controlplane import ControlPlane, targetgen_outcome
from merlin.ledger import RunStatus


def _commands(rec) -> list[str]:
    """The record's next steps as the CLI renders them (``merlin`` when not run through ./merlin)."""
    data = rec if isinstance(rec, dict) else rec.model_dump(mode="json")
    return [command(s) for s in data["next_steps"]]


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
    assert f"merlin ray artifacts list {run.run_id}" in _commands(rec) and "merlin" not in rec.message
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
    assert [e.event for e in cp.events(rec.run_id)][-1] == "outcome"


def test_targetgen_outcome_names_the_next_command() -> None:
    data = {"target_dir": "/t", "outcome": "blocked", "blocked": [{"task_id": "t1", "reason": "no SDK"}]}
    msg, steps = targetgen_outcome(data, "r-1")
    assert "no SDK" in msg and "merlin" not in msg
    assert steps[0] == {"action": "targetgen_retry", "args": {"target_dir": "/t", "task": "t1"}}
    assert [command(s) for s in steps] == ["merlin targetgen retry --target-dir /t --task t1", "merlin targetgen execute --target-dir /t"]
    data = {"target_dir": "/t", "outcome": "awaiting_response", "awaiting_response": {"response_file": "/t/r.md", "prompt_file": "/t/p.md"}}
    msg, steps = targetgen_outcome(data, "r-1")
    assert "write /t/r.md" in msg and command(steps[0]) == "write /t/r.md (prompt /t/p.md)"
    # a run of another engine keeps that engine in its hint
    _msg, steps = targetgen_outcome(data, "r-1", engine="ray")
    assert command(steps[-1]) == "merlin targetgen execute --target-dir /t --engine ray"


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
    assert any(c.startswith("merlin targetgen answer") for c in _commands(run)) and "merlin" not in run["message"]
    assert (root / "runs" / run["run_id"] / "artifacts.json").is_file()
    # bad input never reaches the ledger
    bad = run_cli("targetgen", "execute", str(tmp_path / "missing.yaml"), "--state-root", str(root))
    assert bad.returncode == 2 and len(ControlPlane(root).list_runs()) == 1
    wrong = run_cli("targetgen", "execute", str(cap), "--engine", "spark", "--state-root", str(root))
    assert wrong.returncode == 2


def _x86_target(tmp_path: Path, root: Path) -> Path:
    cap = EXAMPLES / "x86_cpu_baseline" / "capability.yaml"
    ovl = sorted((cap.parent / "overlays").glob("*.yaml"))[0]
    res = run_cli("targetgen", "execute", str(cap), "--overlay", str(ovl), "--out-dir", str(tmp_path / "t"), "--state-root", str(root))
    assert res.returncode == 10, res.stderr
    return tmp_path / "t" / "x86_cpu_baseline"


def test_local_execute_on_a_busy_target_lock_is_recorded_blocked(tmp_path: Path) -> None:
    """A second real process holds the target lock: execute exits 3 and its run is `blocked`, not failed."""
    import subprocess
    import sys
    import time

    from merlin.targetgen import state as st

    root = tmp_path / "ledger"
    tdir = _x86_target(tmp_path, root)
    ready, release = tmp_path / "locked", tmp_path / "unlock"
    holder_code = (
        "import sys, time, pathlib\n"
        "from merlin.atomic import file_lock\n"
        "with file_lock(pathlib.Path(sys.argv[1]), timeout=5, holder='pid holder-test'):\n"
        "    pathlib.Path(sys.argv[2]).touch()\n"
        "    deadline = time.time() + 60\n"
        "    while not pathlib.Path(sys.argv[3]).exists() and time.time() < deadline:\n"
        "        time.sleep(0.05)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", holder_code, str(st.Layout(tdir).lock), str(ready), str(release)])
    try:
        deadline = time.time() + 30
        while not ready.exists():
            assert holder.poll() is None and time.time() < deadline
            time.sleep(0.05)
        res = run_cli("targetgen", "execute", "--from-dir", str(tdir), "--state-root", str(root), env={"MERLIN_TARGETGEN_LOCK_WAIT": "0.2"})
    finally:
        release.touch()
        holder.wait(timeout=30)
    assert res.returncode == 3, res.stderr
    rec = max(ControlPlane(root).list_runs(), key=lambda r: r["created_at"])
    assert rec["status"] == "blocked", rec
    assert rec["attempts"][-1]["error_type"] == "EXECUTOR_BLOCKED" and rec["attempts"][-1]["exit_code"] == 3
    assert "locked by pid holder-test" in rec["message"] and any("targetgen execute --from-dir" in c for c in _commands(rec))  # the command as typed
    assert ".." not in rec["message"].replace(str(tdir), "")


def test_failed_inprocess_message_has_single_punctuation(tmp_path: Path) -> None:
    from merlin.errors import BadInput

    cp = ControlPlane(tmp_path / "s")
    with pytest.raises(BadInput):
        with cp.record_inprocess_run(target="demo", target_dir=tmp_path, command=["merlin", "x"]) as run:
            raise BadInput("the spec is wrong.")
    rec = cp.get(run.run_id)
    assert rec.status == RunStatus.FAILED and rec.attempt.exit_code == 2
    assert rec.message == "failed: the spec is wrong; fix it, then run its command again"
    assert _commands(rec) == ["merlin x"]


def test_logs_of_a_local_execute_show_progress_and_where_task_logs_are(tmp_path: Path) -> None:
    root = tmp_path / "ledger"
    tdir = _x86_target(tmp_path, root)
    run_id = ControlPlane(root).list_runs()[0]["run_id"]
    res = run_cli("ray", "jobs", "logs", run_id, "--state-root", str(root))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip(), "the executor's progress lines are kept in the run's log"
    assert f"per-task logs of run {run_id}: {tdir / 'logs'}/" in res.stderr
    data = json.loads(run_cli("ray", "jobs", "logs", run_id, "--state-root", str(root), "--json").stdout)
    assert data["logs"] == res.stdout and data["task_logs"] == str(tdir / "logs")
