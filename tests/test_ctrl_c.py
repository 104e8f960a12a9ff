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
