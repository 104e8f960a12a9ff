"""Real second processes: the target lock, an answer arriving while execute
holds it, and an execute killed with SIGKILL in the middle of a validation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_cli
from merlin.targetgen import executor as ex
from test_executor import HAL, OK, Spec, ready_spec

# Waits (up to 60 s) until the release file exists; writes its pid into the started file first.
WAIT_CODE = (
    "import os, sys, time, pathlib\n"
    "pathlib.Path(sys.argv[1]).write_text(str(os.getpid()))\n"
    "deadline = time.time() + 60\n"
    "while not pathlib.Path(sys.argv[2]).exists() and time.time() < deadline:\n"
    "    time.sleep(0.05)\n"
)


def wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"process ended early: {proc.returncode}\n{proc.stdout.read() if proc.stdout else ''}\n{proc.stderr.read() if proc.stderr else ''}")
        if time.time() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.05)


def start_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    full = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "merlin", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full,
        start_new_session=True,
    )


def dead(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in text or "\nState:\tX" in text


@pytest.fixture
def spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Spec:
    s = Spec(tmp_path / "spec")
    s.orchestrate()
    s.set_validations(OK)
    return ready_spec(s, monkeypatch)


@pytest.mark.slow  # several seconds: left out of --quick
def test_answer_while_execute_holds_the_lock_is_applied_by_that_execute(spec: Spec) -> None:
    """Q is open for the HAL task while a running execute works on an earlier task (retried):
    the answer is recorded durably despite the lock, and the running execute applies it."""
    spec.set_validations([{"id": "boom", "argv": ["false"], "description": "d"}], task_id="derive_deployment_overlay")
    spec.set_validations([{"id": "boom", "argv": ["false"], "description": "d"}], task_id=HAL)
    spec.execute()
    spec.answer("mark_blocked")  # derive_deployment_overlay: blocked; execute goes on to the HAL task
    result = spec.execute()
    assert result.outcome == "awaiting_operator" and result.current_task == HAL
    qid = result.open_question["id"]

    started, release = spec.root / "started", spec.root / "release"
    spec.set_validations(
        [{"id": "slow", "argv": ["{python}", "-c", WAIT_CODE, str(started), str(release)], "description": "d"}],
        task_id="derive_deployment_overlay",
    )
    ex.retry(spec.target_dir, "derive_deployment_overlay", reason="unblocked")
    running = start_cli("targetgen", "execute", "--from-dir", str(spec.target_dir), "--json")
    try:
        wait_for(started, running)
        # A second execute waits briefly, then names the holder: exit 3, one line.
        second = run_cli("targetgen", "execute", "--from-dir", str(spec.target_dir), env={"MERLIN_TARGETGEN_LOCK_WAIT": "0.3"})
        assert second.returncode == 3, second.stderr
        assert f"locked by pid {running.pid}" in second.stderr and "execute" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
        # status reads without the lock and says who holds it.
        status = json.loads(run_cli("targetgen", "status", "--target-dir", str(spec.target_dir), "--json").stdout)
        assert status["lock_holder"].startswith(f"pid {running.pid}")
        # The answer waits briefly for the lock, then records durably anyway.
        t0 = time.monotonic()
        answered = run_cli("targetgen", "answer", "--target-dir", str(spec.target_dir), "--question-id", qid, "--choice", "continue_skip_validation")
        assert answered.returncode == 0, answered.stderr
        assert time.monotonic() - t0 < 15
        assert f"locked by pid {running.pid}" in answered.stderr and "applies it" in answered.stderr
        assert [a["question_id"] for a in ex.status(spec.target_dir).pending_answers] == [qid]
    finally:
        release.touch()
    out, err = running.communicate(timeout=60)
    assert running.returncode == 10, err
    data = json.loads(out)
    assert data["outcome"] == "awaiting_response" and data["current_task"] == HAL
    state = spec.state()
    assert state["requests"][qid]["status"] == "resolved" and state["requests"][qid]["answer"]["choice"] == "continue_skip_validation"
    assert state["tasks"]["derive_deployment_overlay"]["state"] == "completed"
    assert state["tasks"][HAL]["validations"]["boom"]["status"] == "skipped"


def test_answer_recorded_while_locked_is_applied_by_the_next_execute(spec: Spec) -> None:
    """A lock held by another process (here a plain holder) never loses an answer."""
    spec.set_validations([{"id": "boom", "argv": ["false"], "description": "d"}], task_id=HAL)
    qid = spec.execute().open_question["id"]
    ready, release = spec.root / "locked", spec.root / "unlock"
    holder_code = (
        "import sys, time, pathlib\n"
        "from merlin.targetgen import state as st\n"
        "layout = st.Layout(pathlib.Path(sys.argv[1]))\n"
        "with st.target_lock(layout, 'execute', 5):\n"
        "    pathlib.Path(sys.argv[2]).touch()\n"
        "    deadline = time.time() + 60\n"
        "    while not pathlib.Path(sys.argv[3]).exists() and time.time() < deadline:\n"
        "        time.sleep(0.05)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", holder_code, str(spec.target_dir), str(ready), str(release)], text=True)
    try:
        wait_for(ready, holder)
        result = ex.answer(spec.target_dir, qid, "continue_skip_validation", lock_timeout=0.2)
        assert result.lock_holder and result.lock_holder.startswith(f"pid {holder.pid}")
    finally:
        release.touch()
        holder.wait(timeout=30)
    assert spec.execute().outcome == "awaiting_response"
    assert spec.state()["requests"][qid]["answer"]["choice"] == "continue_skip_validation"


def test_sigkill_during_a_validation_leaves_readable_state_and_execute_resumes(spec: Spec) -> None:
    started, release = spec.root / "started", spec.root / "release"
    spec.set_validations(
        [{"id": "slow", "argv": ["{python}", "-c", WAIT_CODE, str(started), str(release)], "description": "d"}],
        task_id="derive_compile_view",
    )
    proc = start_cli("targetgen", "execute", "--from-dir", str(spec.target_dir))
    wait_for(started, proc)
    child = int(started.read_text())
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # The validation's process died with the executor (it runs in its own process group).
    deadline = time.time() + 10
    while not dead(child) and time.time() < deadline:
        time.sleep(0.05)
    assert dead(child), f"validation process {child} outlived the killed execute"

    state = spec.state()  # readable JSON: atomic writes only
    rec = state["tasks"]["derive_compile_view"]
    assert rec["running"]["kind"] == "validation" and rec["running"]["id"] == "slow" and rec["running"]["pid"] == proc.pid
    assert state["tasks"]["review_target_spec"]["state"] == "completed"
    assert state["last_execute"]["finished_at"] is None
    # status works on the interrupted state.
    assert ex.status(spec.target_dir).current_task == "derive_compile_view"

    release.touch()
    result = spec.execute()
    assert result.outcome == "awaiting_response"
    assert any("did not finish" in s for s in result.steps)
    assert any("slow was interrupted" in s for s in result.steps)
    rec = spec.task("derive_compile_view")
    assert rec["running"] is None and rec["validations"]["slow"]["status"] == "passed"
    assert any(h["why"].startswith("interrupted: validation slow") for h in rec["history"])
    assert spec.state()["interrupted_executes"] == 1
    events = [json.loads(line)["kind"] for line in (spec.target_dir / "events.jsonl").read_text().splitlines()]
    assert "interrupted" in events
