"""The one stop-and-verify loop (merlin.clusters.teardown), on real process trees: members are
named by recorded pids (with start times) and temp-dir markers, never by name; a bystander
running the very same command survives."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from merlin.clusters import procs, teardown
from tests.process_support import bash_group, wait_until


def test_members_are_recorded_pids_marker_holders_and_their_children_and_end_leaves_none(tmp_path: Path) -> None:
    marker = str(tmp_path / "mrl-test-0")
    recorded = bash_group("sleep 301 & sleep 302 & wait")  # a recorded helper and its two children
    marked = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(303)", marker], start_new_session=True)  # unrecorded, names the temp dir
    bystander = bash_group("sleep 301 & sleep 302 & wait")  # the same commands, not this cluster's
    try:
        wait_until(lambda: len(procs.descendants({recorded.pid})) >= 2 and len(procs.descendants({bystander.pid})) >= 2)
        start = procs.start_of(recorded.pid)
        found = teardown.members({recorded.pid: start}, [marker])
        assert recorded.pid in found and procs.descendants({recorded.pid}) <= found and marked.pid in found
        assert bystander.pid not in found and not (procs.descendants({bystander.pid}) & found)
        # a recorded pid whose start time differs is another process (a reused pid): not a member
        assert recorded.pid not in teardown.members({recorded.pid: (start or 0) + 500})

        ended = teardown.end(lambda: teardown.members({recorded.pid: start}, [marker]), snapshot=found, grace=1.0)
        assert ended.left == found and not ended.survivors
        assert [p for p in found if procs.alive(p)] == []
        assert procs.alive(bystander.pid) and all(procs.alive(p) for p in procs.descendants({bystander.pid}))
    finally:
        for p in (recorded, marked, bystander):
            procs.terminate({p.pid}, pgid=p.pid, grace=1.0)


def test_end_waits_for_a_snapshot_that_exits_by_itself_and_signals_nothing() -> None:
    proc = bash_group("sleep 0.3")
    try:
        info = wait_until(lambda: procs.proc_info(proc.pid))
        ended = teardown.end(lambda: set(), snapshot={proc.pid}, grace=10.0)
        assert ended.left == set() and ended.survivors == set()  # it ended within the grace period on its own
        assert info is not None and proc.wait(timeout=5) == 0  # exit 0: never signalled
    finally:
        if proc.poll() is None:
            proc.kill()


def test_mark_stopped_records_the_outcome_and_the_lost_runs() -> None:
    from merlin.clusters.base import unanswered_record
    from merlin.ledger.models import ClusterProcess

    rec = unanswered_record("c", "slurm", "stopping", "/nonexistent/token", lost_runs=["r0"], processes=[ClusterProcess(pid=1, start_ticks=0)])
    teardown.mark_stopped(rec, "stopped (scancel 7); nothing was left", ["r2", "r1"])
    assert rec.status == "stopped" and rec.stop_reason == "stopped by merlin" and rec.stopped_at is not None
    assert rec.lost_runs == ["r0", "r1", "r2"] and rec.processes == []
    assert rec.message == "stopped (scancel 7); nothing was left; 2 runs recorded lost"


def test_temp_dirs_are_removed_only_under_merlins_prefix(tmp_path: Path) -> None:
    mine = Path(f"{teardown.TEMP_PREFIX}teardown-test-{time.monotonic_ns()}")
    mine.mkdir()
    other = tmp_path / "not-merlins"
    other.mkdir()
    teardown.remove_temp_dirs([str(mine), str(other), ""])
    assert not mine.exists() and other.exists()
