"""Retries and gangs on Ray (docs/retries.md): a gang of 2 on the shared head (one job places a
bundle per replica, both start with one coordinator address; a killed replica stops the other and
the gang is retried once), and a run whose head is SIGKILLed retried on the head started again."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest

from cli_runner import run_cli
from merlin.clusters import procs
from merlin.controlplane import ControlPlane
from merlin.ledger import RunStatus
from test_ray_cluster import start_args

pytestmark = [pytest.mark.ray, pytest.mark.slow]

# One write per line: replicas share one log, and print() under PYTHONUNBUFFERED (set here and in
# CI) writes each argument by itself, so two replicas' lines interleave mid-line.
PRINT = (
    "import os, sys, time; e = os.environ; "
    "sys.stdout.write(f\"replica {e['MERLIN_REPLICA_INDEX']} of {e['MERLIN_REPLICA_COUNT']} coordinator {e['MERLIN_COORDINATOR_ADDRESS']}\\n\"); sys.stdout.flush(); "
    "time.sleep(300 if e['MERLIN_ATTEMPT'] == '1' else 0)"
)


def until(check, timeout: float = 120.0, what: str = ""):
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def start_head(root: Path, name: str) -> None:
    """Start (or start again) a head of its own; a start that Ray itself timed out (its raylet's 30 s
    registration, which a loaded machine can miss) is tried again, up to three times."""
    for _ in range(3):
        res = run_cli(*start_args(root, name), timeout=240)
        if res.returncode == 0:
            return
        assert "timed out during startup" in res.stderr, res.stderr
    raise AssertionError(f"the head {name} did not start in three tries: {res.stderr}")


def coordinators(log: str) -> dict[str, str]:
    return {m[0]: m[2] for m in re.findall(r"replica (\d+) of (\d+) coordinator (\S+)", log)}


def gang_killed_and_retried(cp: ControlPlane, cluster: str | None, placement: str | None) -> list[str]:
    """Submit a gang of 2 (attempt 1 sleeps), see both start with one coordinator, SIGKILL replica 1:
    replica 0 is stopped, the attempt is lost (infrastructure), the gang is retried once and succeeds.
    Returns the hosts of the first attempt's replicas."""
    rec = cp.submit([sys.executable, "-c", PRINT], target="demo", workflow="gang", engine="ray", cluster=cluster, replicas=2, placement=placement,
                    num_cpus=0.5, max_retries_preemption=1, retry_backoff=0.5)  # fmt: skip
    started = until(lambda: (r := cp.status(rec.run_id)).status == RunStatus.RUNNING and len(r.attempts[-1].replicas) == 2 and r, what="both replicas")
    seen = until(lambda: len(c := coordinators(cp.logs(rec.run_id))) == 2 and c, what="both replicas' lines in the log")
    assert len(set(seen.values())) == 1, seen
    replicas = started.attempts[-1].replicas
    assert seen["0"].startswith(f"{replicas[0].host}:")
    os.kill(replicas[1].pid, signal.SIGKILL)
    done = cp.wait(rec.run_id, timeout=240)
    assert done.status == RunStatus.SUCCEEDED, (done.message, [a.model_dump() for a in done.attempts])
    assert len(done.attempts) == 2
    first = done.attempts[0]
    assert first.failure_class == "infrastructure" and first.error_type == "REPLICA_LOST", first
    ends = {r.index: r.message for r in first.replicas}
    assert ends[1] == "killed by signal SIGKILL" and ends[0] == "stopped: replica 1 ended first"
    assert not procs.alive(replicas[0].pid)
    status = run_cli("ray", "jobs", "status", "--state-root", str(cp.root), rec.run_id)
    assert len([ln for ln in status.stdout.splitlines() if re.match(r"\s*[01]\s*\W?\s*succeeded", ln)]) == 2, status.stdout
    return [r.host or "" for r in replicas]


def test_a_gang_of_two_on_the_shared_head(ray_cp: ControlPlane) -> None:
    gang_killed_and_retried(ray_cp, None, None)


def test_a_gang_replica_over_its_memory_fails_the_gang_with_memory_limit_not_lost(ray_cp: ControlPlane) -> None:
    """Each replica's actor holds its command to the run's memory (the bundle only reserves it): replica 1
    takes 400 MiB against 128 MiB, is ended, replica 0 is stopped, and the gang fails MEMORY_LIMIT, a
    program failure: its preemption budget is not spent on it (one attempt)."""
    code = ("import os, time\nif os.environ['MERLIN_REPLICA_INDEX'] == '1':\n"
            "    x = bytearray(400 * 2**20)\n    x[::4096] = b'1' * len(x[::4096])\ntime.sleep(60)\n")
    t0 = time.monotonic()
    rec = ray_cp.submit([sys.executable, "-c", code], target="demo", workflow="gang-memory", engine="ray", replicas=2, num_cpus=0.5,
                        memory="128MiB", max_retries_preemption=1, retry_backoff=0.5)  # fmt: skip
    done = ray_cp.wait(rec.run_id, timeout=120)
    assert done.status == RunStatus.FAILED and time.monotonic() - t0 < 50, (done.message, [a.model_dump() for a in done.attempts])
    assert len(done.attempts) == 1  # a program failure: no retry from the preemption budget
    att = done.attempts[0]
    assert att.error_type == "MEMORY_LIMIT" and att.failure_class == "program", att
    assert done.message.startswith("failed: ended by merlin (SIGKILL): replica 1: its processes used "), done.message
    assert "over its limit of 128.0 MiB" in done.message
    ends = {r.index: r.message for r in att.replicas}
    assert ends[0] == "stopped: replica 1 ended first", ends


@pytest.mark.ray_exclusive  # SIGKILLs a head of its own; the retry keeper starts it again
def test_a_run_whose_head_is_killed_is_retried_on_the_head_the_keeper_starts_again(cluster_root: Path, tmp_path: Path) -> None:
    """Issue 17: SIGKILL of the Ray head under a Ray run with a preemption budget: the run is retried on a
    fresh cluster and succeeds, with nobody starting it by hand. The keeper starts the dead head again as it
    was recorded (same name, ports and resources); a head a person stopped is never started again."""
    root = cluster_root
    cp = ControlPlane(root)
    start_head(root, "rk")
    crec = cp.ledger.read_cluster("rk")
    marker = tmp_path / "started"
    code = "import pathlib, sys, time; p = pathlib.Path(sys.argv[1]); first = not p.exists(); p.write_text('x'); time.sleep(600 if first else 0)"
    rec = cp.submit([sys.executable, "-c", code, str(marker)], target="demo", workflow="rk", engine="ray", cluster="rk",
                    max_retries_preemption=1, retry_backoff=0.5)  # fmt: skip
    # a sweep on the same head (docs/sweeps.md): its first item runs when the head dies, the others wait in the ledger
    item = "import pathlib, sys, time; p = pathlib.Path(sys.argv[1] + sys.argv[2]); first = not p.exists(); p.write_text('x'); time.sleep(600 if first and sys.argv[2] == '0' else 0)"
    cp.sweeps("submit", "rks", command=[sys.executable, "-c", item, str(tmp_path / "item-"), "{input}"], inputs=["0", "1"], parallel=1,
              retries_infra=1, engine="ray", cluster="rk")  # fmt: skip
    until(lambda: cp.status(rec.run_id).status == RunStatus.RUNNING and marker.exists(), what="the first attempt to run")
    until(lambda: (tmp_path / "item-0").exists(), what="the sweep's first item to run")
    head = [p for p in crec.processes if p.name in ("gcs_server", "raylet")]
    procs.signal_pids([p.pid for p in head], signal.SIGKILL)
    until(lambda: not any(procs.alive(p.pid, p.start_ticks) for p in head), what="the GCS and raylet to die")
    done = cp.wait(rec.run_id, timeout=240)
    assert done.status == RunStatus.SUCCEEDED, done.message
    deadline = time.monotonic() + 180
    while (v := cp.sweeps("status", "rks"))["state"] == "running":
        assert time.monotonic() < deadline, v
        time.sleep(0.5)
    assert v["state"] == "succeeded", (v["counts"], v.get("failures"))
    items = [cp.get(r["run_id"]) for r in cp.sweeps("summary", "rks")["rows"]]
    assert [[a.status for a in i.attempts] for i in items] == [[RunStatus.LOST, RunStatus.SUCCEEDED], [RunStatus.SUCCEEDED]], [i.message for i in items]
    assert [a.status for a in done.attempts] == [RunStatus.LOST, RunStatus.SUCCEEDED]
    assert done.attempts[0].failure_class == "infrastructure"
    again = cp.ledger.read_cluster("rk")
    assert again.status.value == "active" and again.session_name != crec.session_name, "a fresh head"
    assert (again.ports.gcs, again.ports.dashboard) == (crec.ports.gcs, crec.ports.dashboard), "started again as recorded"
    assert any("the retry keeper starts it again as recorded" in e.cause for e in cp.events(rec.run_id)), "\n".join(f"{e.event}: {e.cause}" for e in cp.events(rec.run_id))
    # a head a person stopped is not started again by a retry: the retry waits for it, saying how to start it
    from merlin.control.retries import restart_dead_head

    cp.stop_cluster("rk", grace=2.0)
    assert restart_dead_head(cp, "rk", rec.run_id, len(done.attempts)) is False
    assert cp.ledger.read_cluster("rk").status.value == "stopped"
