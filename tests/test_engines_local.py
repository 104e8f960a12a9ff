"""The local engine: detached supervisor, process groups, logs, cancel, retry, lost; and the CLI around it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_runner import run_cli
from merlin.clusters import procs
from merlin.controlplane import ControlPlane
from merlin.ledger import RunStatus


@pytest.fixture
def cp(tmp_path: Path) -> ControlPlane:
    return ControlPlane(tmp_path / "state")


def wait_for(pred, timeout: float = 20.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not reached in time")


def test_submit_runs_detached_and_records_exit_without_polling(cp: ControlPlane, tmp_path: Path) -> None:
    """Nobody polls: the supervisor alone moves the run to succeeded and indexes artifacts."""
    rec = cp.submit(
        [sys.executable, "-c", "import os,pathlib; print('hello'); pathlib.Path(os.environ['MERLIN_TARGET_DIR'], 'out.json').write_text('{}')"],
        target="demo", workflow="smoke",
    )
    assert rec.status in (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.SUCCEEDED)
    path = cp.layout.record(rec.run_id)
    done = wait_for(lambda: json.loads(path.read_text())["status"] == "succeeded" and cp.ledger.read_artifacts_raw(rec.run_id))
    assert done["files"][0]["name"] == "out.json"
    final = cp.get(rec.run_id)
    assert final.attempt.exit_code == 0 and final.attempt.pgid == final.attempt.pid
    assert cp.logs(rec.run_id) == "hello\n"
    events = [e.event + ":" + str(e.to_status or "") for e in cp.events(rec.run_id)]
    assert events[0] == "created:pending" and "transition:running" in events and "transition:succeeded" in events


def test_failed_command_records_exit_code_and_retry_runs_again(cp: ControlPlane, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    rec = cp.submit(["bash", "-c", f"test -f {flag} && echo ok || (echo missing >&2; exit 7)"], target="demo", workflow="w", wait=True)
    assert rec.status == RunStatus.FAILED and rec.attempt.exit_code == 7
    from merlin.cli.nextsteps import command

    assert f"merlin ray jobs retry {rec.run_id}" in [command(s) for s in rec.model_dump()["next_steps"]]
    assert "merlin" not in rec.message  # the message is for a person; the commands are next steps
    assert "missing" in cp.logs(rec.run_id)
    flag.write_text("x")
    again = cp.retry(rec.run_id, wait=True)
    assert again.status == RunStatus.SUCCEEDED and len(again.attempts) == 2
    assert [a.status for a in again.attempts] == [RunStatus.FAILED, RunStatus.SUCCEEDED]
    assert cp.logs(rec.run_id, attempt=1).strip() == "missing" and cp.logs(rec.run_id).strip() == "ok"
    with pytest.raises(Exception, match="succeeded; nothing to retry"):
        cp.retry(rec.run_id)


def test_cancel_ends_the_whole_process_group(cp: ControlPlane) -> None:
    rec = cp.submit(["bash", "-c", "sleep 300 & sleep 300 & echo started; wait"], target="demo", workflow="w")
    running = wait_for(lambda: (r := cp.get(rec.run_id)).status == RunStatus.RUNNING and r)
    pgid = running.attempt.pgid
    wait_for(lambda: len(procs.group_members(pgid)) >= 3)  # bash + two sleeps
    members = procs.group_members(pgid)
    out = cp.cancel(rec.run_id)
    assert out.status == RunStatus.CANCELLED
    wait_for(lambda: not procs.group_members(pgid), timeout=10)
    assert not any(procs.alive(p) for p in members)
    final = wait_for(lambda: (r := cp.get(rec.run_id)).attempt.exit_code is not None and r)
    assert final.status == RunStatus.CANCELLED and final.attempt.exit_code < 0  # the supervisor did not turn it into 'failed'


def test_cancel_before_start_never_starts(cp: ControlPlane, tmp_path: Path) -> None:
    from merlin.ledger.models import Attempt, RunRecord, RunRequest

    # a pending run without a submission: cancel is immediate and final
    req = RunRequest(run_id="pend-1", target="t", workflow="w", source="test", engine="local", command=["true"], workdir="/", target_dir=str(tmp_path))
    r = RunRecord(run_id="pend-1", target="t", workflow="w", source="test", engine="local", status="pending", command=["true"], workdir="/",
                  target_dir=str(tmp_path), attempts=[Attempt(number=1, engine="local", status="pending")])
    cp.ledger.create_run(req, r, cause="test")
    assert cp.cancel("pend-1").status == RunStatus.CANCELLED
    # the supervisor, started late, sees the cancellation and does nothing. A process of its own, as the
    # engine starts it: in-process, its signal set-up (SIGINT ignored) would stay in this pytest worker
    # and pass on to every process the worker starts later
    late = subprocess.run([sys.executable, "-m", "merlin.engines.local_supervisor", str(cp.layout.run_dir("pend-1")), "1"],
                          env={**os.environ, "MERLIN_STATE_ROOT": str(cp.root)}, capture_output=True, text=True, timeout=120)
    assert late.returncode == 0, late.stderr
    assert cp.get("pend-1").attempt.pid is None


def test_follow_streams_until_the_end(cp: ControlPlane) -> None:
    rec = cp.submit(["bash", "-c", "for i in 1 2 3; do echo line$i; sleep 0.3; done"], target="demo", workflow="w")
    t0 = time.monotonic()
    chunks = list(cp.follow(rec.run_id))
    assert "".join(chunks).split() == ["line1", "line2", "line3"]
    assert len(chunks) >= 2 and time.monotonic() - t0 >= 0.5  # it streamed, it did not wait and dump
    assert cp.get(rec.run_id).status == RunStatus.SUCCEEDED


def test_supervisor_killed_makes_the_run_lost(cp: ControlPlane) -> None:
    rec = cp.submit(["sleep", "300"], target="demo", workflow="w")
    running = wait_for(lambda: (r := cp.get(rec.run_id)).status == RunStatus.RUNNING and r)
    os.kill(running.attempt.supervisor_pid, signal.SIGKILL)
    wait_for(lambda: not procs.alive(running.attempt.supervisor_pid))
    lost = cp.status(rec.run_id)
    assert lost.status == RunStatus.LOST
    assert "supervisor" in lost.message
    # the command dies with its supervisor (PR_SET_PDEATHSIG); see tests/test_reliability.py for survivors
    wait_for(lambda: not procs.group_members(running.attempt.pgid), timeout=10)
    assert cp.list_runs(status=["lost"])[0]["run_id"] == rec.run_id


def test_secret_env_reaches_the_command_but_not_the_ledger(cp: ControlPlane) -> None:
    rec = cp.submit(
        ["bash", "-c", 'echo "len=${#DEPLOY_TOKEN} mode=$MODE"'], target="demo", workflow="w",
        env={"DEPLOY_TOKEN": "s3cr3t-value", "MODE": "fast"}, wait=True,
    )
    assert cp.logs(rec.run_id).strip() == "len=12 mode=fast"
    for p in cp.layout.run_dir(rec.run_id).rglob("*.json*"):
        assert "s3cr3t" not in p.read_text()
    # a retry needs the secret again: the ledger does not have it
    failed = cp.submit(["bash", "-c", "exit 1"], target="demo", workflow="w", env={"DEPLOY_TOKEN": "x"}, wait=True)
    with pytest.raises(Exception, match="DEPLOY_TOKEN"):
        cp.retry(failed.run_id)
    assert cp.retry(failed.run_id, env={"DEPLOY_TOKEN": "y"}, wait=True).attempts[-1].exit_code == 1


# ---------------------------------------------------------------------- CLI


def test_cli_submit_wait_exit_codes_and_json(tmp_path: Path) -> None:
    root = str(tmp_path / "s")
    ok = run_cli("ray", "jobs", "submit", "--state-root", root, "--target", "demo", "--workflow", "w", "--wait", "--json", "--", sys.executable, "-c", "print(1)")
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)
    assert data["status"] == "succeeded" and data["schema_version"] == 1
    bad = run_cli("ray", "jobs", "submit", "--state-root", root, "--target", "demo", "--workflow", "w", "--wait", "--", "bash", "-c", "exit 5")
    assert bad.returncode == 1 and "failed" in bad.stderr and "Traceback" not in bad.stderr
    run_id = bad.stdout.strip()
    st = run_cli("ray", "jobs", "status", run_id, "--state-root", root, "--json")
    assert st.returncode == 0 and json.loads(st.stdout)["attempts"][0]["exit_code"] == 5
    human = run_cli("ray", "jobs", "status", run_id, "--state-root", root)
    assert "failed" in human.stdout and "\x1b[" not in human.stdout
    lst = run_cli("ray", "jobs", "list", "--state-root", root, "--json")
    assert [d["status"] for d in json.loads(lst.stdout)] == ["failed", "succeeded"]
    only = run_cli("ray", "jobs", "list", "--state-root", root, "--status", "failed", "--json")
    assert [d["run_id"] for d in json.loads(only.stdout)] == [run_id]
    table = run_cli("ray", "jobs", "list", "--state-root", root)
    assert run_id in table.stdout and "STATUS" in table.stdout


def test_cli_errors_are_one_line_with_exit_codes(tmp_path: Path) -> None:
    root = str(tmp_path / "s")
    nf = run_cli("ray", "jobs", "status", "no-such-run", "--state-root", root)
    assert nf.returncode == 4 and nf.stderr.count("\n") == 1 and "unknown run" in nf.stderr
    esc = run_cli("ray", "jobs", "status", "../../etc", "--state-root", root)
    assert esc.returncode == 2 and "invalid run id" in esc.stderr
    nocmd = run_cli("ray", "jobs", "submit", "--state-root", root, "--target", "demo", "--workflow", "w")
    assert nocmd.returncode == 2
    badtarget = run_cli("ray", "jobs", "submit", "--state-root", root, "--target", "../x", "--workflow", "w", "--", "true")
    assert badtarget.returncode == 2 and "invalid target name" in badtarget.stderr
    badstatus = run_cli("ray", "jobs", "list", "--state-root", root, "--status", "weird")
    assert badstatus.returncode == 2
    for res in (nf, esc, badtarget, badstatus):
        assert "Traceback" not in res.stderr


def test_cli_artifacts_list_fetch_and_escape(tmp_path: Path) -> None:
    root = str(tmp_path / "s")
    tdir = tmp_path / "target"
    res = run_cli(
        "ray", "jobs", "submit", "--state-root", root, "--target", "demo", "--workflow", "w", "--target-dir", str(tdir), "--wait", "--",
        "bash", "-c", "mkdir -p $MERLIN_TARGET_DIR/sub && echo '{}' > $MERLIN_TARGET_DIR/sub/plan.json && echo hi > $MERLIN_TARGET_DIR/notes.md",
    )
    assert res.returncode == 0, res.stderr
    run_id = res.stdout.strip()
    lst = run_cli("ray", "artifacts", "list", run_id, "--state-root", root, "--json")
    files = {f["name"]: f["kind"] for f in json.loads(lst.stdout)["files"]}
    assert files == {"sub/plan.json": "json", "notes.md": "markdown"}
    out = tmp_path / "fetched"
    got = run_cli("ray", "artifacts", "fetch", run_id, "sub/plan.json", "--to", str(out), "--state-root", root)
    assert got.returncode == 0 and (out / "sub" / "plan.json").read_text() == "{}\n"
    esc = run_cli("ray", "artifacts", "fetch", run_id, "../../../etc/passwd", "--to", str(out), "--state-root", root)
    assert esc.returncode == 2 and "leave" in esc.stderr
    missing = run_cli("ray", "artifacts", "fetch", run_id, "nope.json", "--to", str(out), "--state-root", root)
    assert missing.returncode == 4


def test_cli_logs_follow_and_cancel(tmp_path: Path) -> None:
    root = str(tmp_path / "s")
    res = run_cli("ray", "jobs", "submit", "--state-root", root, "--target", "demo", "--workflow", "w", "--", "bash", "-c", "echo a; sleep 0.5; echo b")
    run_id = res.stdout.strip()
    fol = run_cli("ray", "jobs", "logs", run_id, "--follow", "--state-root", root)
    assert fol.returncode == 0 and fol.stdout.split() == ["a", "b"] and "succeeded" in fol.stderr
    long = run_cli("ray", "jobs", "submit", "--state-root", root, "--target", "demo", "--workflow", "w", "--", "sleep", "300").stdout.strip()
    cancel = run_cli("ray", "jobs", "cancel", long, "--state-root", root, "--json")
    assert cancel.returncode == 0 and json.loads(cancel.stdout)["status"] == "cancelled"
    again = run_cli("ray", "jobs", "cancel", long, "--state-root", root)
    assert again.returncode == 0 and "already ended" in again.stderr


def test_jobs_list_reads_no_ray_and_no_pydantic(tmp_path: Path) -> None:
    """The listing path stays cheap: measured by what it imports."""
    cp = ControlPlane(tmp_path / "s")
    cp.submit(["true"], target="demo", workflow="w", wait=True)
    code = (
        "import sys; from merlin.cli.app import main\n"
        "try:\n    main(['ray','jobs','list','--json','--state-root', sys.argv[1]])\nexcept SystemExit: pass\n"
        "bad = [m for m in ('ray', 'merlin.ledger.models') if m in sys.modules]\n"
        "sys.stderr.write('LOADED:' + ','.join(bad))\n"
    )
    import subprocess

    res = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s")], capture_output=True, text=True, timeout=60)
    assert "LOADED:" in res.stderr and res.stderr.split("LOADED:")[1].strip() == ""
    assert json.loads(res.stdout)[0]["status"] == "succeeded"


def test_long_listing_is_plain_columns_with_the_same_layout(tmp_path: Path) -> None:
    """More than 100 runs render as fixed-width text (fast); fewer as a Rich table; same columns."""
    from merlin.cli.runs_table import runs_table as _runs_table
    from merlin.cli.runs_table import runs_text as _runs_text

    rows = [
        {"run_id": f"demo-20260101-000000-{i:06x}", "status": "succeeded" if i % 2 else "failed", "engine": "local",
         "target": "demo", "workflow": "w", "attempts": [{}], "updated_at": "2026-01-01T00:00:00Z", "message": "m" * 200}
        for i in range(150)
    ]
    text = _runs_text(rows, 120, colour=False)
    lines = text.splitlines()
    assert len(lines) == 151 and lines[0].startswith("RUN ID") and "MESSAGE" in lines[0]
    assert all(len(line) <= 120 for line in lines) and "\x1b[" not in text
    assert lines[1].split()[:2] == [rows[0]["run_id"], "failed"]
    assert "\x1b[32m" in _runs_text(rows[:2], 120, colour=True)  # status colour only when asked
    table = _runs_table(rows[:3], 120)
    assert [c.header for c in table.columns][:2] == ["RUN ID", "STATUS"]
