"""Automatic retries by failure class on the local engine (docs/retries.md): program failures
count against max_retries_failure, infrastructure ends (a killed supervisor) against
max_retries_preemption; each retry is a new attempt of the same run, history kept."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from cli_runner import run_cli
from merlin.clusters import procs
from merlin.controlplane import ControlPlane
from merlin.errors import BadInput
from merlin.ledger import RunStatus


@pytest.fixture
def cp(tmp_path: Path) -> ControlPlane:
    return ControlPlane(tmp_path / "state")


def wait_for(pred, timeout: float = 60.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not reached in time")


def fails_times(tmp_path: Path, n: int) -> list[str]:
    """A command that exits 1 its first ``n`` runs, then 0 (its count kept in a file)."""
    counter = tmp_path / "count"
    code = (
        "import pathlib, sys; p = pathlib.Path(sys.argv[1]); k = int(p.read_text()) if p.exists() else 0; "
        "p.write_text(str(k + 1)); print('run', k + 1); sys.exit(1 if k < int(sys.argv[2]) else 0)"
    )
    return [sys.executable, "-c", code, str(counter), str(n)]


def keeper_gone(cp: ControlPlane, run_id: str) -> None:
    keeper = cp.get(run_id).retry_keeper
    if keeper.get("pid"):
        wait_for(lambda: not procs.alive(keeper["pid"], keeper.get("start")), timeout=30)


def test_program_failures_are_retried_within_max_retries_failure(cp: ControlPlane, tmp_path: Path) -> None:
    rec = cp.submit(fails_times(tmp_path, 2), target="demo", workflow="w", max_retries_failure=2, retry_backoff=0.2, wait=True, timeout=120)
    assert rec.status == RunStatus.SUCCEEDED, rec.message
    assert [a.number for a in rec.attempts] == [1, 2, 3]
    assert [a.status for a in rec.attempts] == [RunStatus.FAILED, RunStatus.FAILED, RunStatus.SUCCEEDED]
    assert [a.failure_class for a in rec.attempts] == ["program", "program", None]
    assert rec.max_attempts == 3
    assert (tmp_path / "count").read_text() == "3"
    assert "run 1" in cp.logs(rec.run_id, 1) and "run 3" in cp.logs(rec.run_id, 3)
    retries = [e for e in cp.events(rec.run_id) if e.event == "retry"]
    assert [e.attempt for e in retries] == [2, 3]
    assert retries[0].detail["failure_class"] == "program"
    assert cp.get(rec.run_id).retry_at is None
    keeper_gone(cp, rec.run_id)


def test_without_a_budget_a_failure_is_final_after_one_attempt(cp: ControlPlane, tmp_path: Path) -> None:
    rec = cp.submit(fails_times(tmp_path, 2), target="demo", workflow="w", max_retries_failure=0, wait=True, timeout=60)
    assert rec.status == RunStatus.FAILED
    assert len(rec.attempts) == 1 and rec.attempts[0].failure_class == "program"
    assert rec.retry_keeper == {}  # no budget: no keeper was started
    time.sleep(1.0)
    assert len(cp.status(rec.run_id).attempts) == 1


def test_the_budget_runs_out(cp: ControlPlane, tmp_path: Path) -> None:
    rec = cp.submit(fails_times(tmp_path, 5), target="demo", workflow="w", max_retries_failure=1, retry_backoff=0.1, wait=True, timeout=60)
    assert rec.status == RunStatus.FAILED
    assert len(rec.attempts) == 2
    keeper_gone(cp, rec.run_id)
    assert len(cp.status(rec.run_id).attempts) == 2


def test_program_failure_does_not_consume_the_preemption_budget(cp: ControlPlane, tmp_path: Path) -> None:
    rec = cp.submit(fails_times(tmp_path, 1), target="demo", workflow="w", max_retries_preemption=3, retry_backoff=0.1, wait=True, timeout=60)
    assert rec.status == RunStatus.FAILED
    assert len(rec.attempts) == 1  # a program failure, and no failure budget: not retried
    assert rec.attempts[0].failure_class == "program"
    keeper_gone(cp, rec.run_id)
    assert len(cp.status(rec.run_id).attempts) == 1


def test_killed_supervisor_is_retried_within_max_retries_preemption(cp: ControlPlane, tmp_path: Path) -> None:
    marker = tmp_path / "started"
    code = (
        "import pathlib, sys, time; p = pathlib.Path(sys.argv[1]); first = not p.exists(); p.write_text('x'); "
        "time.sleep(300 if first else 0)"
    )
    rec = cp.submit([sys.executable, "-c", code, str(marker)], target="demo", workflow="w",
                    max_retries_preemption=1, max_retries_failure=0, retry_backoff=0.2)  # fmt: skip
    running = wait_for(lambda: (r := cp.get(rec.run_id)).status == RunStatus.RUNNING and marker.exists() and r)
    os.kill(running.attempt.supervisor_pid, signal.SIGKILL)
    done = cp.wait(rec.run_id, timeout=120)
    assert done.status == RunStatus.SUCCEEDED, done.message
    assert [a.status for a in done.attempts] == [RunStatus.LOST, RunStatus.SUCCEEDED]
    assert done.attempts[0].failure_class == "infrastructure"
    assert "supervisor" in (done.attempts[0].error_message or "")
    # the first attempt's command was confirmed gone before the second started
    assert not procs.group_members(running.attempt.pgid)
    assert done.attempts[1].start_time > done.attempts[0].end_time


def test_a_cancel_during_the_backoff_ends_it(cp: ControlPlane, tmp_path: Path) -> None:
    rec = cp.submit(fails_times(tmp_path, 5), target="demo", workflow="w", max_retries_failure=3, retry_backoff=30)
    pending = wait_for(lambda: (r := cp.get(rec.run_id)).retry_at is not None and r)
    assert pending.status == RunStatus.PENDING and len(pending.attempts) == 2
    assert pending.message.startswith("attempt 2 of 4, retrying in 30 s after failed: exit code 1")
    why = cp.why(rec.run_id)
    assert why[-1]["code"] == "retry_backoff" and why[-1]["evidence"]["failure_class"] == "program"
    cancelled = cp.cancel(rec.run_id)
    assert cancelled.status == RunStatus.CANCELLED
    keeper_gone(cp, rec.run_id)
    assert len(cp.get(rec.run_id).attempts) == 2 and (tmp_path / "count").read_text() == "1"


@pytest.mark.slow  # several seconds: left out of --quick
def test_a_dead_keeper_is_replaced_by_the_next_look(cp: ControlPlane, tmp_path: Path) -> None:
    rec = cp.submit(fails_times(tmp_path, 1), target="demo", workflow="w", max_retries_failure=1, retry_backoff=2)
    pending = wait_for(lambda: (r := cp.get(rec.run_id)).retry_at is not None and r)  # attempt 2 recorded, backoff running
    keeper = pending.retry_keeper
    os.kill(keeper["pid"], signal.SIGKILL)
    wait_for(lambda: not procs.alive(keeper["pid"], keeper.get("start")))
    assert cp.status(rec.run_id).status == RunStatus.PENDING  # not made lost: the look starts another keeper
    assert cp.get(rec.run_id).retry_keeper["pid"] != keeper["pid"]
    done = cp.wait(rec.run_id, timeout=120)
    assert done.status == RunStatus.SUCCEEDED, done.message
    assert [a.status for a in done.attempts] == [RunStatus.FAILED, RunStatus.SUCCEEDED]


def fails_first_when_told(tmp_path: Path) -> tuple[list[str], Path]:
    """A command that waits for a file ``go``, then exits 1 its first run and 0 after."""
    go = tmp_path / "go"
    code = (
        "import pathlib, sys, time; go = pathlib.Path(sys.argv[1]); c = go.with_name('count'); k = int(c.read_text()) if c.exists() else 0; "
        "c.write_text(str(k + 1))\nwhile not go.exists(): time.sleep(0.05)\nsys.exit(1 if k == 0 else 0)"
    )
    return [sys.executable, "-c", code, str(go)], go


def test_jobs_list_refresh_restarts_a_killed_keeper_when_a_retry_is_due(cp: ControlPlane, tmp_path: Path) -> None:
    command, go = fails_first_when_told(tmp_path)
    rec = cp.submit(command, target="demo", workflow="w", max_retries_failure=1, retry_backoff=0.1)
    keeper = cp.get(rec.run_id).retry_keeper
    assert keeper.get("pid") and procs.alive(keeper["pid"], keeper.get("start"))
    os.kill(keeper["pid"], signal.SIGKILL)  # a real keeper process, killed before its run's attempt ends
    wait_for(lambda: not procs.alive(keeper["pid"], keeper.get("start")))
    go.write_text("go")
    failed = wait_for(lambda: (r := cp.get(rec.run_id)).status == RunStatus.FAILED and r)  # the local supervisor records it
    time.sleep(1.5)  # a retry is due, and nobody keeps it
    assert len(cp.get(rec.run_id).attempts) == 1 and failed.retry_keeper["pid"] == keeper["pid"]
    listed = run_cli("ray", "jobs", "list", "--refresh", "--state-root", str(cp.root))
    assert listed.returncode == 0, listed.stderr
    after = cp.get(rec.run_id)
    assert after.retry_keeper["pid"] != keeper["pid"] and procs.alive(after.retry_keeper["pid"], after.retry_keeper.get("start"))
    done = cp.wait(rec.run_id, timeout=120)
    assert done.status == RunStatus.SUCCEEDED, done.message
    assert [a.status for a in done.attempts] == [RunStatus.FAILED, RunStatus.SUCCEEDED]


def test_a_finished_runs_look_reads_no_request_file(cp: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = cp.submit(fails_times(tmp_path, 1), target="demo", workflow="w", max_retries_failure=1, retry_backoff=0.1, wait=True, timeout=120)
    assert rec.status == RunStatus.SUCCEEDED, rec.message
    mark = cp.layout.retry_keeper_mark(rec.run_id)
    # its keeper forgets itself (the record first, then the mark): nothing more is due
    done = wait_for(lambda: not (r := cp.get(rec.run_id)).retry_keeper and not mark.exists() and r)
    assert len(done.attempts) == 2

    def no_request(self: object, run_id: str) -> None:
        raise AssertionError(f"the request of {run_id} was read")

    monkeypatch.setattr(type(cp.ledger), "read_request", no_request)
    assert cp.status(rec.run_id).status == RunStatus.SUCCEEDED
    assert cp.status_json(rec.run_id)["status"] == "succeeded"
    assert cp.wait(rec.run_id, timeout=5).status == RunStatus.SUCCEEDED
    assert [d["run_id"] for d in cp.list_runs(refresh=True)] == [rec.run_id]
    cp.refresh([rec.run_id])


def test_a_dead_keepers_record_is_forgotten_when_nothing_is_due(cp: ControlPlane, tmp_path: Path) -> None:
    rec = cp.submit(fails_times(tmp_path, 5), target="demo", workflow="w", max_retries_failure=1, retry_backoff=0.1, wait=True, timeout=120)
    assert rec.status == RunStatus.FAILED and len(rec.attempts) == 2  # its budget used up
    keeper_gone(cp, rec.run_id)
    wait_for(lambda: not cp.get(rec.run_id).retry_keeper)

    def dead(r) -> None:  # a keeper killed after the run ended, before it forgot itself
        r.retry_keeper = {"pid": 2**22 + 7, "start": 1, "host": None}

    cp.ledger.update(rec.run_id, dead, cause="test")
    from merlin.control.retries import mark

    mark(cp, rec.run_id)
    assert [d["run_id"] for d in cp.list_runs()] == [rec.run_id]  # the look reads the request once, and forgets the keeper
    assert cp.get(rec.run_id).retry_keeper == {} and not cp.layout.retry_keeper_mark(rec.run_id).exists()


def test_bad_budgets_name_their_argument(cp: ControlPlane) -> None:
    for kwargs, argument in (({"max_retries_failure": -1}, "max_retries_failure"), ({"max_retries_preemption": 1.5}, "max_retries_preemption"),
                             ({"replicas": 0}, "replicas"), ({"placement": "spread"}, "placement"), ({"retry_backoff": "soon"}, "retry_backoff")):  # fmt: skip
        with pytest.raises(BadInput) as err:
            cp.submit(["true"], target="demo", workflow="w", **kwargs)
        assert err.value.argument == argument
    assert cp.list_runs() == []


def test_cli_retries_and_status_say_the_attempt(tmp_path: Path) -> None:
    root = str(tmp_path / "state")
    cmd = fails_times(tmp_path, 1)
    res = run_cli("ray", "jobs", "submit", "--state-root", root, "--target", "demo", "--workflow", "w", "--retries", "2",
                  "--retry-backoff", "1s", "--wait", "--", *cmd)  # fmt: skip
    assert res.exit_code == 0, res.stderr
    run_id = res.stdout.strip().splitlines()[-1]
    status = run_cli("ray", "jobs", "status", "--state-root", root, run_id)
    assert "attempt 2 of 3" in status.stdout
    listing = run_cli("ray", "jobs", "list", "--state-root", root, "--json")
    assert len(json.loads(listing.stdout)[0]["attempts"]) == 2
    table = run_cli("ray", "jobs", "list", "--state-root", root)
    assert "TRIES" in table.stdout and " 2 " in table.stdout
    bad = run_cli("ray", "jobs", "submit", "--state-root", root, "--target", "demo", "--workflow", "w", "--retries", "-1", "--", "true")
    assert bad.exit_code == 2 and "--retries" in bad.stderr


def test_cli_status_while_retrying(tmp_path: Path) -> None:
    root = str(tmp_path / "state")
    res = run_cli("ray", "jobs", "submit", "--state-root", root, "--target", "demo", "--workflow", "w", "--retries", "1",
                  "--retry-backoff", "1m", "--", *fails_times(tmp_path, 5))  # fmt: skip
    run_id = res.stdout.strip().splitlines()[-1]
    cp = ControlPlane(root)
    wait_for(lambda: cp.get(run_id).retry_at is not None)
    status = run_cli("ray", "jobs", "status", "--state-root", root, run_id)
    assert "attempt 2 of 2, retrying in" in status.stdout and "after failed: exit code 1" in status.stdout
    why = run_cli("ray", "jobs", "why", "--state-root", root, run_id)
    assert "attempt 2 of 2, retrying in" in why.stdout
    cp.cancel(run_id)
    keeper_gone(cp, run_id)


def test_gateway_runs_submit_takes_the_same_fields(tmp_path: Path) -> None:
    from merlin.gateway.ops import Gateway

    gw = Gateway(tmp_path / "state")
    doc = gw.call("runs_submit", {"command": fails_times(tmp_path, 1), "target": "demo", "workflow": "w", "max_retries_failure": 1,
                                  "retry_backoff": 0.2, "replicas": 1, "target_dir": str(tmp_path / "t")})  # fmt: skip
    done = gw.cp.wait(doc["run_id"], timeout=60)
    assert done.status == RunStatus.SUCCEEDED and len(done.attempts) == 2
    request = gw.cp.ledger.read_request(doc["run_id"])
    assert (request.max_retries_failure, request.max_retries_preemption, request.retry_backoff, request.replicas) == (1, 0, 0.2, 1)
    keeper_gone(gw.cp, doc["run_id"])


@pytest.mark.slow  # several seconds: left out of --quick
def test_a_clients_wait_waits_through_the_retries(tmp_path: Path) -> None:
    from merlin.client import Client, Entrypoint, JobRequest, JobStatus, wait_all

    client = Client(state_root=tmp_path / "state", engine="local")
    cmd = fails_times(tmp_path, 2)
    flaky = client.submit(JobRequest("flaky", Entrypoint.from_binary(cmd[0], cmd[1:]), max_retries_failure=2, retry_backoff=0.1))
    assert flaky.wait(timeout=120) == JobStatus.SUCCEEDED  # not FAILED after its first attempt
    assert [a.status for a in flaky.record().attempts] == [RunStatus.FAILED, RunStatus.FAILED, RunStatus.SUCCEEDED]
    once = client.submit(JobRequest("once", Entrypoint.from_binary(cmd[0], [cmd[1], cmd[2], str(tmp_path / "other"), "5"]), max_retries_failure=1, retry_backoff=0.1))
    assert wait_all([once], timeout=120, raise_on_failure=False) == [JobStatus.FAILED]
    assert len(once.record().attempts) == 2  # its budget used up before the wait returned


def test_a_look_spares_the_mark_of_a_keeper_still_starting(cp: ControlPlane) -> None:
    """A keeper's mark is written before the keeper records itself on the run: a look in between must
    not remove it (else a keeper that dies later is never revived); an old mark with no keeper goes."""
    from merlin.control import retries

    rec = cp.submit(["true"], target="demo", workflow="w")
    cp.wait(rec.run_id, timeout=60)
    retries.mark(cp, rec.run_id)  # as start_keeper does, before its keeper exists
    retries.notice_all(cp)
    assert cp.layout.retry_keeper_mark(rec.run_id).exists()
    old = time.time() - 120
    os.utime(cp.layout.retry_keeper_mark(rec.run_id), (old, old))
    retries.notice_all(cp)
    assert not cp.layout.retry_keeper_mark(rec.run_id).exists()


def test_cli_retries_infra_replicas_and_placement_reach_the_record(tmp_path: Path) -> None:
    """The job API's budgets and gang fields, given on the CLI: a gang of 2 with its own infrastructure budget
    runs both replicas with their index and count; a bad placement, or one without a gang, is one line, exit 2."""
    root = str(tmp_path / "state")
    echo = 'echo "replica $MERLIN_REPLICA_INDEX of $MERLIN_REPLICA_COUNT"'
    res = run_cli("ray", "jobs", "submit", "--state-root", root, "--target", "demo", "--workflow", "gang", "--retries-infra", "3",
                  "--replicas", "2", "--placement", "pack", "--wait", "--json", "--", "sh", "-c", echo)  # fmt: skip
    assert res.exit_code == 0, res.stderr
    run = json.loads(res.stdout)
    assert run["status"] == "succeeded" and run["max_attempts"] == 4, run  # the first and three for the infrastructure
    request = ControlPlane(root).ledger.read_request(run["run_id"])
    assert request.max_retries_preemption == 3 and request.replicas == 2 and request.placement == "pack"
    logs = run_cli("ray", "jobs", "logs", "--state-root", root, run["run_id"]).stdout
    assert "replica 0 of 2" in logs and "replica 1 of 2" in logs
    for extra, word in ((["--replicas", "2", "--placement", "diagonal"], "placement"), (["--placement", "spread"], "replicas")):
        bad = run_cli("ray", "jobs", "submit", "--state-root", root, "--target", "demo", "--workflow", "w", *extra, "--", "true")
        assert bad.exit_code == 2 and f"--{word}" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


def test_a_command_over_its_memory_limit_is_ended_and_fails_memory_limit(cp: ControlPlane) -> None:
    """``--memory``: the local supervisor ends a command whose process tree goes over it (SIGKILL),
    and the run fails MEMORY_LIMIT, a program failure (so ``--retries`` counts it); under it, nothing happens."""
    hog = [sys.executable, "-c", "import time; b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(60)"]
    t0 = time.monotonic()
    res = run_cli("ray", "jobs", "submit", "--target", "mem", "--workflow", "w", "--memory", "64MiB", "--wait", "--json", "--state-root", str(cp.root), "--", *hog)
    assert res.returncode == 1, res.stderr
    rec = json.loads(res.stdout)
    att = rec["attempts"][-1]
    assert rec["status"] == "failed" and att["error_type"] == "MEMORY_LIMIT" and att["failure_class"] in (None, "program"), att
    assert "over its limit of 64.0 MiB" in rec["message"] and time.monotonic() - t0 < 30, rec["message"]
    assert cp.ledger.read_request(rec["run_id"]).memory == 64 * 2**20
    ok = cp.submit(["true"], target="mem", workflow="w", memory="64MiB", wait=True)
    assert ok.status == RunStatus.SUCCEEDED
    for bad, why in (("lots", "is not a size"), ("10", "give at least 1MiB")):
        refused = run_cli("ray", "jobs", "submit", "--target", "mem", "--workflow", "w", "--memory", bad, "--state-root", str(cp.root), "--", "true")
        assert refused.returncode == 2 and "--memory" in refused.stderr and why in refused.stderr and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
