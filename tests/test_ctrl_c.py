"""Ctrl-C (a real SIGINT to a real merlin process): what is recorded and what is said."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from conftest import run_cli
from merlin.controlplane import ControlPlane
from test_executor import Spec, ready_spec
from test_executor_concurrency import OK, WAIT_CODE, start_cli, wait_for


@pytest.fixture
def spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Spec:
    s = Spec(tmp_path / "spec")
    s.orchestrate()
    s.set_validations(OK)
    return ready_spec(s, monkeypatch)


def test_ctrl_c_of_an_inprocess_execute_is_recorded_as_interrupted(spec: Spec) -> None:
    started, release = spec.root / "started", spec.root / "release"
    spec.set_validations(
        [{"id": "slow", "argv": ["{python}", "-c", WAIT_CODE, str(started), str(release)], "description": "d"}],
        task_id="derive_compile_view",
    )
    proc = start_cli("targetgen", "execute", "--from-dir", str(spec.target_dir))
    try:
        wait_for(started, proc)
        os.kill(proc.pid, signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    finally:
        release.touch()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    runs = ControlPlane().list_runs()
    assert len(runs) == 1
    rec = ControlPlane().get(runs[0]["run_id"])
    assert rec.status.value == "cancelled", rec.message
    assert "interrupted by Ctrl-C" in rec.message and "KeyboardInterrupt" not in rec.message
    assert rec.attempts[-1].error_type == "EXECUTOR_INTERRUPTED"
    assert [str(s.action) for s in rec.next_steps] == ["run_again"]
    status = run_cli("targetgen", "status", "--target-dir", str(spec.target_dir))
    assert status.returncode == 0, status.stderr
    assert "the last execute" in status.stdout and "was interrupted" in status.stdout
    data = json.loads(run_cli("targetgen", "status", "--target-dir", str(spec.target_dir), "--json").stdout)
    assert data["last_execute"]["outcome"] == "interrupted"
    assert spec.execute().outcome != "interrupted"  # the next execute resumes


def _read_until(stream, needle: str, proc, timeout: float = 30) -> str:
    """Read a pipe line by line until ``needle`` shows up (the run's output arrives while it runs)."""
    import selectors
    import time

    sel = selectors.DefaultSelector()
    sel.register(stream, selectors.EVENT_READ)
    seen = ""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise AssertionError(f"{needle!r} never came; saw {seen!r}")
        if sel.select(timeout=0.2):
            seen += stream.readline()
    return seen


def test_ctrl_c_of_jobs_submit_wait_names_the_run_that_keeps_running(tmp_path: Path) -> None:
    """--wait prints the run id at once and streams the logs; Ctrl-C exits 130 and the run goes on."""
    marker = tmp_path / "go-on"
    code = f"import time, pathlib; print('first line', flush=True); [time.sleep(0.1) for _ in range(300) if not pathlib.Path({str(marker)!r}).exists()]; print('last line')"
    proc = start_cli("ray", "jobs", "submit", "--engine", "local", "--target", "demo", "--workflow", "w", "--wait", "--", "python3", "-c", code)
    try:
        run_id = proc.stdout.readline().strip()  # the id comes first, before the run ends
        assert run_id.startswith("demo-"), run_id
        _read_until(proc.stderr, "first line", proc)  # the logs arrive while the run runs
        os.kill(proc.pid, signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        assert "Traceback" not in err
        assert f"run {run_id} keeps running; cancel it with `" in err and f"ray jobs cancel {run_id}`" in err
        cp = ControlPlane()
        assert cp.status(run_id).status.value == "running"
    finally:
        marker.touch()
    assert ControlPlane().wait(run_id, timeout=30).status.value == "succeeded"
