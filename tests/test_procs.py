"""Process identity and tree termination through psutil (merlin.clusters.procs)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from merlin.clusters import procs
from merlin.controlplane import ControlPlane
from merlin.ledger import RunStatus
from tests.process_support import bash_group, wait_until


def test_identity_is_pid_plus_start_time() -> None:
    proc = bash_group("sleep 300")
    try:
        info = wait_until(lambda: procs.proc_info(proc.pid))
        assert info.pgid == proc.pid and info.sid == proc.pid and info.ppid == os.getpid()
        assert abs(info.start_ticks / 100 - time.time()) < 60  # centiseconds since the epoch
        assert procs.alive(proc.pid) and procs.alive(proc.pid, info.start_ticks)
        assert not procs.alive(proc.pid, info.start_ticks + 500)  # same pid, another start: not ours
        assert procs.group_members(proc.pid) == [proc.pid] or proc.pid in procs.group_members(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    assert not procs.alive(proc.pid) and procs.proc_info(proc.pid) is None


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="old records hold Linux /proc clock ticks")
def test_old_records_with_proc_clock_ticks_are_still_recognised() -> None:
    proc = bash_group("sleep 300")
    try:
        raw = Path(f"/proc/{proc.pid}/stat").read_text()
        old_ticks = int(raw[raw.rfind(")") + 2 :].split()[19])  # what merlin recorded before psutil
        assert procs.alive(proc.pid, old_ticks)
        assert not procs.alive(proc.pid, old_ticks + 500)  # 5 s later (CLK_TCK 100): another process
        assert procs.same_start(old_ticks, procs.proc_info(proc.pid).start_ticks)
    finally:
        proc.kill()
        proc.wait()


def test_terminate_a_group_that_obeys_sigterm_kills_nothing() -> None:
    proc = bash_group("sleep 300 & sleep 300 & wait")
    members = wait_until(lambda: (m := procs.group_members(proc.pid)) and len(m) >= 3 and m)
    done = procs.terminate(pgid=proc.pid, grace=5.0)
    proc.wait(timeout=10)
    assert set(members) <= done.signalled
    assert done.killed == set() and done.survivors == set()
    assert not any(procs.alive(p) for p in members)


def test_terminate_escalates_to_sigkill_and_says_whom_it_killed() -> None:
    proc = bash_group("trap '' TERM; sleep 300 & sleep 300 & wait")  # the sleeps obey TERM, bash ignores it
    wait_until(lambda: len(procs.group_members(proc.pid)) >= 3)
    t0 = time.monotonic()
    done = procs.terminate(pgid=proc.pid, grace=0.5)
    proc.wait(timeout=10)
    assert proc.pid in done.killed and done.survivors == set()
    assert time.monotonic() - t0 >= 0.5
    assert not procs.group_members(proc.pid)


def test_terminate_never_signals_the_caller() -> None:
    done = procs.terminate({os.getpid()}, grace=0.1)
    assert done.signalled == set() and done.killed == set()


def test_psutil_stays_out_of_the_cli_start() -> None:
    code = "import sys, merlin.cli.app; print([m for m in ('psutil',) if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_indexing_an_ended_run_does_not_hold_its_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The observation that ends a run indexes its target directory first, with the run's
    lock free (another command can read and write the record meanwhile), then commits it."""
    import merlin.ledger.artifacts as artifacts

    cp = ControlPlane(tmp_path / "state")
    rec = cp.submit(["bash", "-c", 'echo data > "$MERLIN_TARGET_DIR/out.txt"; sleep 300'], target="demo", workflow="w")
    running = wait_until(lambda: (r := cp.get(rec.run_id)).status == RunStatus.RUNNING and r)
    wait_until(lambda: (Path(running.target_dir) / "out.txt").is_file())
    os.kill(running.attempt.supervisor_pid, signal.SIGKILL)  # nobody records the end: the next observation does
    procs.terminate(pgid=running.attempt.pgid, grace=2.0)
    wait_until(lambda: not procs.alive(running.attempt.supervisor_pid))

    real = artifacts.index_dir
    lock_free_while_indexing: list[bool] = []

    def index_dir(*args, **kwargs):
        try:
            with cp.ledger.lock(rec.run_id, timeout=0):
                lock_free_while_indexing.append(True)
        except Exception:
            lock_free_while_indexing.append(False)
        return real(*args, **kwargs)

    monkeypatch.setattr(artifacts, "index_dir", index_dir)
    lost = cp.status(rec.run_id)
    assert lost.status == RunStatus.LOST
    assert lock_free_while_indexing == [True]
    index = json.loads(cp.layout.artifacts(rec.run_id).read_text())
    assert [f["name"] for f in index["files"]] == ["out.txt"]
    assert [e for e in cp.events(rec.run_id) if e.event == "artifacts"]
