"""`jobs retry` of a TargetGen run refuses while its target directory is busy: another
live run of the ledger on it, or an in-process execute holding its lock (the same check
as a submit, see merlin.integrations.targetgen_runs.retry_claim). One line, exit 2, and
next steps; once the directory is free the same retry goes through."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cli_runner import run_cli
from conftest import EXAMPLES
from merlin.controlplane import ControlPlane
from merlin.errors import BadInput
from merlin.ledger import RunStatus
from merlin.targetgen import state as st

HOLDER = (
    "import sys, time, pathlib\n"
    "from merlin.targetgen import state as st\n"
    "with st.target_lock(st.Layout(pathlib.Path(sys.argv[1])), 'execute', 5):\n"
    "    pathlib.Path(sys.argv[2]).touch()\n"
    "    deadline = time.time() + 90\n"
    "    while not pathlib.Path(sys.argv[3]).exists() and time.time() < deadline:\n"
    "        time.sleep(0.05)\n"
)


@contextmanager
def execute_holding(tdir: Path, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A real second process holding the target lock, as an in-process `targetgen execute` does."""
    ready, release = tmp_path / "locked", tmp_path / "unlock"
    ready.unlink(missing_ok=True)
    release.unlink(missing_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tdir), str(ready), str(release)], text=True)
    try:
        deadline = time.time() + 30
        while not ready.exists():
            assert holder.poll() is None and time.time() < deadline, "the holder never took the lock"
            time.sleep(0.05)
        yield holder
    finally:
        release.touch()
        holder.wait(timeout=30)


def blocked_targetgen_run(tmp_path: Path, root: Path) -> tuple[Path, str]:
    """An x86 target, and a TargetGen run on it recorded `blocked` (its execute found the lock held)."""
    cap = EXAMPLES / "x86_cpu_baseline" / "capability.yaml"
    ovl = sorted((cap.parent / "overlays").glob("*.yaml"))[0]
    out = tmp_path / "t"
    assert run_cli("targetgen", "orchestrate", str(cap), "--overlay", str(ovl), "--out-dir", str(out)).returncode == 0
    tdir = (out / "x86_cpu_baseline").resolve()
    with execute_holding(tdir, tmp_path):
        res = run_cli("targetgen", "execute", "--from-dir", str(tdir), "--state-root", str(root), env={"MERLIN_TARGETGEN_LOCK_WAIT": "0.2"})
    assert res.returncode == 3, res.stderr
    (rec,) = ControlPlane(root).list_runs()
    assert rec["status"] == "blocked" and rec["source"] == "targetgen", rec
    return tdir, rec["run_id"]


def test_retry_is_refused_while_an_in_process_execute_holds_the_target(tmp_path: Path) -> None:
    root = tmp_path / "ledger"
    tdir, run_id = blocked_targetgen_run(tmp_path, root)
    with execute_holding(tdir, tmp_path) as holder:
        res = run_cli("ray", "jobs", "retry", run_id, "--state-root", str(root))
        as_json = run_cli("ray", "jobs", "retry", run_id, "--state-root", str(root), "--json")
    assert res.returncode == 2, res.stderr
    (line,) = res.stderr.strip().splitlines()  # one line, its next steps as commands
    assert "Traceback" not in line and f"run {run_id} not retried" in line
    assert f"target directory {tdir} is busy" in line and f"locked by pid {holder.pid}" in line
    status, retry = line.find(f"merlin targetgen status --target-dir {tdir}"), line.find(f"merlin ray jobs retry {run_id}")
    assert 0 < status < retry, line  # the next steps, as commands: look at the directory, then retry
    import json

    doc = json.loads(as_json.stdout)
    assert as_json.returncode == 2 and doc["code"] == "target_busy" and doc["exit_code"] == 2
    assert [s["action"] for s in doc["next_steps"]] == ["targetgen_status", "retry"]
    rec = ControlPlane(root).get(run_id)
    assert rec.status == RunStatus.BLOCKED and len(rec.attempts) == 1  # nothing was recorded or launched


def test_retry_is_refused_while_another_run_is_live_on_the_target_then_goes_through(tmp_path: Path) -> None:
    root = tmp_path / "ledger"
    tdir, run_id = blocked_targetgen_run(tmp_path, root)
    cp = ControlPlane(root)
    other = cp.submit([sys.executable, "-c", "import time; time.sleep(120)"], target="x86_cpu_baseline", workflow="hold", engine="local", target_dir=tdir)
    assert not other.status.is_terminal()
    try:
        with pytest.raises(BadInput) as caught:
            cp.retry(run_id)
        err = caught.value
        assert err.exit_code == 2 and err.code == "target_busy"
        assert f"run {other.run_id} is still active on it" in err.message and "locked by" not in err.message
        assert [(s["action"], s["args"].get("run_id")) for s in err.next_steps] == [
            ("status", other.run_id), ("cancel", other.run_id), ("retry", run_id),
        ]
        res = run_cli("ray", "jobs", "retry", run_id, "--state-root", str(root))
        assert res.returncode == 2 and f"merlin ray jobs cancel {other.run_id}" in res.stderr, res.stderr
        assert len(cp.get(run_id).attempts) == 1
    finally:
        cp.cancel(other.run_id)
    assert cp.wait(other.run_id, timeout=60).status.is_terminal()
    # the directory is free again: the same retry runs the executor as a second attempt
    again = run_cli("ray", "jobs", "retry", run_id, "--state-root", str(root))
    assert again.returncode == 0, again.stderr
    done = cp.wait(run_id, timeout=120)
    assert len(done.attempts) == 2 and done.status == RunStatus.SUCCEEDED, done.message
    assert done.outcome == "awaiting_operator"
    assert st.lock_holder(st.Layout(tdir)) is None


def test_retry_of_a_run_that_is_not_targetgens_ignores_the_target_lock(tmp_path: Path) -> None:
    """Only TargetGen runs drive a target directory: a plain failed run on the same directory retries."""
    root = tmp_path / "ledger"
    cp = ControlPlane(root)
    tdir = tmp_path / "dir"
    tdir.mkdir()
    failed = cp.submit([sys.executable, "-c", "import sys; sys.exit(3)"], target="t", workflow="w", engine="local", target_dir=tdir, wait=True, timeout=60)
    assert failed.status == RunStatus.FAILED
    with execute_holding(tdir, tmp_path):
        rec = cp.retry(failed.run_id, wait=True, timeout=60)
    assert len(rec.attempts) == 2 and rec.status == RunStatus.FAILED
