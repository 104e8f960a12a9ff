"""Reliability probes at suite size (issue 9): each prints ``tried/survived/lost/stuck``.

Real processes throughout: supervisors, a refresh loop in another process,
SIGKILLs. The full-size probes are in ``benchmarks/probe_reliability.py``.
"""

from __future__ import annotations

import contextlib
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
from merlin.errors import Blocked
from merlin.ledger import RunStatus

FIGURES: dict[str, dict[str, int]] = {}


def figure(name: str, tried: int, survived: int, lost: int, stuck: int, **more: int) -> None:
    FIGURES[name] = {"tried": tried, "survived": survived, "lost": lost, "stuck": stuck, **more}
    extra = "".join(f" {k}={v}" for k, v in more.items())
    print(f"\n[reliability] {name}: tried={tried} survived={survived} lost={lost} stuck={stuck}{extra}")


def wait_for(pred, timeout: float = 30.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def cp(tmp_path: Path) -> ControlPlane:
    return ControlPlane(tmp_path / "state")


REFRESH_LOOP = """
import sys, time
from merlin.controlplane import ControlPlane
cp = ControlPlane(sys.argv[1])
end = time.monotonic() + float(sys.argv[2])
n = 0
while time.monotonic() < end:
    cp.refresh()
    n += 1
print(n)
"""


def refresh_race(cp: ControlPlane, submits: int, retries: int) -> dict[str, int]:
    """Submits and retries (real supervisors) beside a refresh loop in another process.

    The first ``retries`` runs fail on their first attempt (exit 3) and succeed on
    the next, so each is retried while the loop keeps refreshing: a retried run
    is a healthy run too, and must end ``succeeded``, never ``lost``."""
    markers = Path(cp.root).parent / "race-markers"
    markers.mkdir(parents=True, exist_ok=True)

    def command(i: int) -> list[str]:
        if i >= retries:
            return ["true"]
        marker = markers / f"run-{i}"  # absent: first attempt, which fails; present: the retry, which succeeds
        return ["sh", "-c", f"test -e '{marker}' && exit 0; : > '{marker}'; exit 3"]

    loop = subprocess.Popen([sys.executable, "-c", REFRESH_LOOP, str(cp.root), "600"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        ids = [cp.submit(command(i), target="race", workflow="w").run_id for i in range(submits)]
        done = lambda: all(not cp.get(r).status.is_active() for r in ids)  # noqa: E731
        wait_for(done, timeout=120)
        to_retry = [r for r in ids if cp.get(r).status.is_retryable()]
        for rid in to_retry:
            cp.retry(rid)
        wait_for(done, timeout=120)
    finally:
        loop.send_signal(signal.SIGKILL)
        loop.wait()
    records = [cp.get(r) for r in ids]
    lost = sum(1 for r in records if any(a.status == RunStatus.LOST for a in r.attempts))
    stuck = sum(1 for r in records if r.status.is_active())
    survived = sum(1 for r in records if r.status == RunStatus.SUCCEEDED and r.attempts[-1].status == RunStatus.SUCCEEDED)
    retried = sum(
        1 for r in records if len(r.attempts) == 2 and r.attempts[0].status == RunStatus.FAILED and r.attempts[0].exit_code == 3
    )
    return {"tried": submits + len(to_retry), "survived": survived, "lost": lost, "stuck": stuck, "retried": retried}


@pytest.mark.slow  # several seconds: left out of --quick
def test_refresh_racing_submits_and_retries_never_makes_a_healthy_run_lost(cp: ControlPlane) -> None:
    """Every lost decision is taken on the record under the lock, not on the snapshot polled,
    for first attempts and for retries alike."""
    fig = refresh_race(cp, submits=16, retries=8)
    figure("refresh race", **fig)
    assert fig["retried"] == 8  # the retry half really ran: 8 runs failed once, were retried, and succeeded
    assert fig["tried"] == 16 + 8
    assert fig["lost"] == 0 and fig["stuck"] == 0
    assert fig["survived"] == 16


def test_dead_supervisor_takes_its_command_with_it(cp: ControlPlane) -> None:
    rec = cp.submit(["sleep", "300"], target="demo", workflow="w")
    running = wait_for(lambda: (r := cp.get(rec.run_id)).status == RunStatus.RUNNING and r)
    os.kill(running.attempt.supervisor_pid, signal.SIGKILL)
    wait_for(lambda: not procs.alive(running.attempt.pid), timeout=10)  # PR_SET_PDEATHSIG ended it
    lost = cp.status(rec.run_id)
    assert lost.status == RunStatus.LOST and "still running" not in lost.message
    again = cp.retry(rec.run_id)
    assert again.status in (RunStatus.PENDING, RunStatus.RUNNING)
    cp.cancel(rec.run_id, grace=0.5)


def test_survivors_of_a_dead_supervisor_block_retry_until_cancel_ends_them(cp: ControlPlane) -> None:
    """A grandchild in the command's group outlives the supervisor: retry refuses, cancel ends it."""
    rec = cp.submit(["bash", "-c", "sleep 300 & wait"], target="demo", workflow="w")
    running = wait_for(lambda: (r := cp.get(rec.run_id)).status == RunStatus.RUNNING and r)
    wait_for(lambda: len(procs.group_members(running.attempt.pgid)) >= 2)
    os.kill(running.attempt.supervisor_pid, signal.SIGKILL)
    lost = wait_for(lambda: (r := cp.status(rec.run_id)).status == RunStatus.LOST and r)
    assert "still running" in lost.message and "cancel" in lost.message
    with pytest.raises(Blocked, match="cancel it"):
        cp.retry(rec.run_id)
    cp.cancel(rec.run_id, grace=0.5)
    assert procs.group_members(running.attempt.pgid) == []
    again = cp.retry(rec.run_id)
    assert len(again.attempts) == 2
    cp.cancel(rec.run_id, grace=0.5)


INPROCESS = """
import sys, time
from merlin.controlplane import ControlPlane
target_dir = sys.argv[2]  # before sys.argv becomes the command a retry runs
sys.argv = ["merlin", "targetgen", "execute", "--from-dir", target_dir]
cp = ControlPlane(__import__("os").environ["MERLIN_STATE_ROOT"])
with cp.record_inprocess_run(target="x86_cpu_baseline", target_dir=target_dir) as run:
    print(run.run_id, flush=True)
    time.sleep(300)
"""


def orchestrated(tmp_path: Path) -> str:
    from conftest import EXAMPLES
    from merlin.targetgen import executor as ex

    cap = EXAMPLES / "x86_cpu_baseline" / "capability.yaml"
    overlay = sorted((cap.parent / "overlays").glob("*.yaml"))[0]
    return str(ex.orchestrate(cap, overlay, out_dir=tmp_path / "out").target_dir)


@pytest.mark.slow  # several processes, seconds even on a quiet machine
def test_killed_inprocess_execute_is_lost_with_a_true_message_and_retry_runs_it(cp: ControlPlane, tmp_path: Path) -> None:
    target_dir = orchestrated(tmp_path)
    env = dict(os.environ, MERLIN_STATE_ROOT=str(cp.root))
    proc = subprocess.Popen([sys.executable, "-c", INPROCESS, str(cp.root), target_dir], stdout=subprocess.PIPE, text=True, env=env)
    run_id = proc.stdout.readline().strip()
    rec = cp.get(run_id)
    assert rec.attempt.supervisor_pid == proc.pid and rec.attempt.supervisor_start is not None
    assert rec.command[:3] == [sys.executable, "-m", "merlin"] and rec.command[-2:] == ["--run-id", run_id]
    proc.kill()
    proc.wait()
    lost = cp.status(run_id)
    assert lost.status == RunStatus.LOST
    assert f"pid {proc.pid}" in lost.message and "None" not in lost.message and "in-process" in lost.message
    again = cp.retry(run_id, wait=True, timeout=120)
    att = again.attempts[-1]
    assert att.exit_code is not None and att.error_type != "COMMAND_START_ERROR", att
    assert again.outcome is not None  # the retried executor attached to the run and wrote its outcome
    assert "No such file" not in cp.logs(run_id)


@pytest.mark.ray_own_head
@pytest.mark.slow
def test_ray_run_whose_head_was_sigkilled_is_lost_then_cancel_and_retry_elsewhere_work(ray_cp: ControlPlane) -> None:
    """A throwaway cluster (not the session one) is SIGKILLed under a running job."""
    from merlin.clusters import registry
    from ray_fixtures import start_cluster

    cp = ray_cp
    _, doomed = start_cluster(cp.root, "doomed", num_cpus=1)
    backend = registry.backend(doomed.kind, cp.ledger)
    try:
        rec = cp.submit(["sleep", "300"], target="demo", workflow="w", engine="ray", cluster="doomed")
        wait_for(lambda: cp.status(rec.run_id).status == RunStatus.RUNNING, timeout=120)
        members = backend._members(cp.ledger.read_cluster("doomed"))
        procs.signal_pids(members, signal.SIGKILL)
        wait_for(lambda: backend.processes_alive(cp.ledger.read_cluster("doomed")) == 0, timeout=30)
        cancel = run_cli("ray", "jobs", "cancel", rec.run_id, "--state-root", str(cp.root))
        assert cancel.returncode == 0, cancel.stderr
        lost = cp.get(rec.run_id)
        assert lost.status == RunStatus.LOST and "GCS and raylet are gone" in lost.message
        again = run_cli("ray", "jobs", "retry", rec.run_id, "--cluster", "default", "--state-root", str(cp.root), "--json")
        assert again.returncode == 0, again.stderr
        wait_for(lambda: cp.status(rec.run_id).status == RunStatus.RUNNING, timeout=120)
        assert cp.get(rec.run_id).cluster.name == "default"
        cancelled = cp.cancel(rec.run_id)
        assert cancelled.status == RunStatus.CANCELLED
        # survived: retried onto the live cluster; lost: the one run on the killed head (a true lost)
        figure("head SIGKILL", tried=1, survived=1, lost=1, stuck=0)
    finally:
        procs.signal_pids(backend._members(cp.ledger.read_cluster("doomed")), signal.SIGKILL)
        cp.stop_cluster("doomed", grace=1.0)


def test_sigkill_debris_is_completed_or_removed_by_jobs_list_and_doctor(cp: ControlPlane) -> None:
    """Directories a SIGKILL left without a record: a request -> completed as lost (retryable);
    only a lock or a temp file -> removed; stale temp files beside live records -> removed."""
    import shutil

    done = cp.submit(["true"], target="demo", workflow="w", wait=True)
    runs = cp.layout.runs
    half = cp.submit(["true"], target="demo", workflow="w", wait=True).run_id
    shutil.copytree(runs / half, runs / "demo-half-1")
    for p in (runs / "demo-half-1").iterdir():
        if p.name not in ("run_request.json", "events.jsonl"):
            (shutil.rmtree if p.is_dir() else os.unlink)(p)
    req = (runs / "demo-half-1" / "run_request.json")
    req.write_text(req.read_text().replace(half, "demo-half-1"))
    (runs / "demo-half-1" / "events.jsonl").unlink()
    (runs / "demo-lock-1").mkdir()
    (runs / "demo-lock-1" / "run_record.json.lock").write_text("")
    (runs / "demo-tmp-1").mkdir()
    (runs / "demo-tmp-1" / ".run_record.json.abc.tmp").write_text("{")
    stale = runs / done.run_id / ".run_record.json.x1.tmp"
    stale.write_text("{")
    old = time.time() - 3600
    for p in [*runs.rglob("*")]:
        os.utime(p, (old, old), follow_symlinks=False)
    listed = run_cli("ray", "jobs", "list", "--state-root", str(cp.root), "--json")
    assert listed.returncode == 0, listed.stderr
    assert "swept SIGKILL debris" in listed.stderr and "completed 1" in listed.stderr
    import json

    ids = {r["run_id"] for r in json.loads(listed.stdout)}
    assert "demo-half-1" in ids and not (runs / "demo-lock-1").exists() and not (runs / "demo-tmp-1").exists()
    half_rec = cp.get("demo-half-1")
    assert half_rec.status == RunStatus.LOST and "submitter" in half_rec.message
    assert [e["event"] for e in cp.ledger.events("demo-half-1")][:1] == ["created"]
    doc = run_cli("ray", "doctor", "--state-root", str(cp.root), "--json")
    assert doc.returncode == 0, doc.stderr
    assert json.loads(doc.stdout)["temp_files"] == [str(stale)] and not stale.exists()
    again = run_cli("ray", "doctor", "--state-root", str(cp.root))
    assert again.returncode == 0 and "nothing to sweep" in again.stderr
    assert cp.retry("demo-half-1", wait=True, timeout=30).status == RunStatus.SUCCEEDED
    figure("SIGKILL debris", tried=4, survived=4, lost=0, stuck=0)


def test_state_after_an_interrupted_execute_validates_against_its_schema(tmp_path: Path) -> None:
    """A SIGKILLed execute leaves ``last_execute`` without ``finished_at``; the next execute
    counts it in ``interrupted_executes``, which the published schema must accept."""
    import json

    jsonschema = pytest.importorskip("jsonschema")
    from conftest import REPO
    from merlin.targetgen import executor as ex

    target = Path(orchestrated(tmp_path))
    ex.execute(target)
    path = target / "execution_state.json"
    state = json.loads(path.read_text())
    state["last_execute"]["finished_at"] = None  # what a SIGKILL mid-execute leaves
    state["last_execute"]["outcome"] = None
    path.write_text(json.dumps(state))
    ex.execute(target)
    data = json.loads(path.read_text())
    assert data["interrupted_executes"] == 1
    schemas = REPO / "docs" / "records" / "targetgen"
    for name in ("support_plan", "task_graph", "verification_manifest", "execution_bundle", "execution_state"):
        jsonschema.validate(json.loads((target / f"{name}.json").read_text()), json.loads((schemas / f"{name}.schema.json").read_text()))


@contextlib.contextmanager
def tmpfs(mnt: Path, options: str):
    """A tmpfs mounted on ``mnt`` for the block (the test is skipped where mounting is not allowed)."""
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip() or res.returncode}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.fixture
def small_fs(tmp_path: Path):
    """A 2 MiB tmpfs (skipped where mounting is not allowed)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    with tmpfs(mnt, "size=2m"):
        yield mnt


def fill(path: Path) -> Path:
    filler = path / "filler"
    with open(filler, "wb", buffering=0) as fh:
        for chunk in (65536, 512, 1):
            try:
                while True:
                    fh.write(b"\0" * chunk)
            except OSError:
                pass
    return filler


@pytest.mark.slow  # several seconds: left out of --quick
def test_full_disk_is_an_environment_error_and_a_run_end_is_recorded_once_space_returns(small_fs: Path, tmp_path: Path) -> None:
    import json

    root = small_fs / "state"
    cp = ControlPlane(root)
    first = cp.submit(["true"], target="demo", workflow="w", wait=True)
    assert first.status == RunStatus.SUCCEEDED
    filler = fill(small_fs)
    tried = 3
    res = run_cli("ray", "jobs", "submit", "--target", "demo", "--workflow", "w", "--engine", "local", "--state-root", str(root), "--json", "--", "true")
    assert res.returncode == 75, res.stderr
    line = res.stderr.strip()
    assert "\n" not in line and "Traceback" not in line and "free" in line and str(root) in line, line
    assert json.loads(res.stdout)["code"] == "environment.no_space"
    assert [p.name for p in (root / "runs").iterdir()] == [first.run_id]  # no orphan directory
    for p in (root / "runs").iterdir():  # every record has its created event
        assert (p / "events.jsonl").read_text().count('"created"') == 1
    # a run that ends while the disk is full is recorded once space returns
    filler.unlink()
    rec = cp.submit(["bash", "-c", "sleep 1.5"], target="demo", workflow="w")
    wait_for(lambda: cp.get(rec.run_id).status == RunStatus.RUNNING)
    filler = fill(small_fs)
    time.sleep(2.5)  # the command has ended; its supervisor cannot record it
    assert cp.get(rec.run_id).status == RunStatus.RUNNING
    filler.unlink()
    done = wait_for(lambda: (r := cp.get(rec.run_id)).status.is_terminal() and r, timeout=30)
    assert done.status == RunStatus.SUCCEEDED and done.attempt.exit_code == 0
    figure("full tmpfs", tried=tried, survived=2, lost=0, stuck=0)


def test_logs_of_an_attempt_whose_cluster_stopped_say_they_were_not_kept_and_why(cp: ControlPlane) -> None:
    """A Ray run that ended before merlin copied its log, on a cluster that is gone since
    (as a run recorded before logs were kept, then its cluster stopped)."""
    from merlin.ledger.models import Attempt, ClusterRef, RunRecord, RunRequest

    req = RunRequest(run_id="demo-gone-1", target="demo", workflow="w", source="test", engine="ray", command=["true"], workdir="/",
                     target_dir=str(cp.root / "t"), cluster="gone")
    rec = RunRecord(run_id="demo-gone-1", target="demo", workflow="w", source="test", engine="ray", status=RunStatus.PENDING,
                    command=["true"], workdir="/", target_dir=req.target_dir, cluster=ClusterRef(name="gone"),
                    attempts=[Attempt(number=1, engine="ray", status=RunStatus.PENDING, submission_id="merlin-demo-gone-1-1")])
    cp.ledger.create_run(req, rec, cause="test")
    from merlin.ledger import set_status

    cp.ledger.update("demo-gone-1", lambda r: set_status(r, RunStatus.LOST, "lost"), cause="test")
    res = run_cli("ray", "jobs", "logs", "demo-gone-1", "--attempt", "1", "--state-root", str(cp.root))
    assert res.returncode == 4, res.stderr
    assert "was not kept" in res.stderr and "gone" in res.stderr and res.stdout == ""


# ------------------------------------------------ SIGKILL storm, then every file validates

STORM_SUBMIT = """
import sys
from merlin.controlplane import ControlPlane
ControlPlane(sys.argv[1]).submit(["true"], target="storm", workflow="w")
"""


def validate_state_root(root: Path) -> int:
    """Every run file merlin wrote under ``root`` validates against its published schema; returns how many."""
    import json

    jsonschema = pytest.importorskip("jsonschema")
    from conftest import REPO

    docs = REPO / "docs" / "records"
    schema = {n: json.loads((docs / f"{n}.schema.json").read_text()) for n in ("run_record", "run_request", "run_event", "artifacts")}
    checked = 0
    for run_dir in (root / "runs").iterdir():
        for name, stem in (("run_record.json", "run_record"), ("run_request.json", "run_request"), ("artifacts.json", "artifacts")):
            if (run_dir / name).is_file():
                jsonschema.validate(json.loads((run_dir / name).read_text()), schema[stem])
                checked += 1
        if (run_dir / "events.jsonl").is_file():
            for line in (run_dir / "events.jsonl").read_text().splitlines():
                jsonschema.validate(json.loads(line), schema["run_event"])
                checked += 1
    return checked


def sigkill_storm(cp: ControlPlane, n: int) -> dict[str, int]:
    """Submitters SIGKILLed at spread-out moments of their submit; then a sweep and a refresh."""
    import random

    rnd = random.Random(9)
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", STORM_SUBMIT, str(cp.root)], check=True)  # how long one whole submit takes here
    whole = time.monotonic() - t0
    for _ in range(n):
        p = subprocess.Popen([sys.executable, "-c", STORM_SUBMIT, str(cp.root)])
        time.sleep(rnd.uniform(0.5, 1.0) * whole)  # most land inside the submit, after the imports
        p.kill()
        p.wait()
    cp.sweep(everything=True, min_age=0)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(r.status.is_active() for r in cp.refresh()):
        time.sleep(0.2)
    records = [cp.get(d["run_id"]) for d in cp.list_runs()]
    dirs = [p for p in cp.layout.runs.iterdir()] if cp.layout.runs.is_dir() else []
    assert len(dirs) == len(records), "a run directory without a record survived the sweep"
    lost = sum(1 for r in records if r.status == RunStatus.LOST)
    stuck = sum(1 for r in records if r.status.is_active())
    return {"tried": n + 1, "survived": n + 1 - lost - stuck, "lost": lost, "stuck": stuck, "killed_mid_submit": len(records) - 1}


@pytest.mark.slow  # several processes, seconds even on a quiet machine
def test_sigkill_storm_leaves_no_debris_nothing_stuck_and_every_file_valid(cp: ControlPlane) -> None:
    fig = sigkill_storm(cp, 5)
    print(f"[reliability] SIGKILL storm: {fig.pop('killed_mid_submit')} submitters were killed after creating their run")
    figure("SIGKILL storm", **fig)
    assert fig["stuck"] == 0
    for d in cp.list_runs():  # lost only with a true reason: its submitter was killed
        if d["status"] == "lost":
            assert "submitt" in d["message"], d["message"]
    assert validate_state_root(cp.root) > 0


# ------------------------------------------------ probes built by others, through the real CLI


def test_alias_bomb_and_fifo_are_refused_quickly(tmp_path: Path) -> None:
    from conftest import REPO
    from test_spec_limits import _bomb

    base = REPO / "tests" / "bad_inputs"
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text((base / "base_overlay.yaml").read_text() + "  extra:\n" + _bomb())
    fifo = tmp_path / "capability.yaml"
    os.mkfifo(fifo)
    results = [
        run_cli("targetgen", "validate", str(base / "base_capability.yaml"), "--overlay", str(overlay), timeout=60),
        run_cli("targetgen", "validate", str(fifo), timeout=30),
    ]
    refused = [r for r in results if r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.splitlines()) == 1]
    figure("alias bomb + FIFO", tried=2, survived=len(refused), lost=0, stuck=0)
    assert len(refused) == 2, [r.stderr for r in results]


def test_secrets_by_shape_never_reach_the_ledger_or_json(tmp_path: Path) -> None:
    import json

    root = tmp_path / "state"
    secrets = ["hunter2pass", "ghp_" + "a" * 36, "AKIA" + "B" * 16, "u:s3cretpw@"]
    res = run_cli(
        "ray", "jobs", "submit", "--target", "demo", "--workflow", "w", "--engine", "local", "--state-root", str(root), "--json",
        "--env", "DATABASE_URL=postgres://u:s3cretpw@h/db", "--",
        "true", "--password", "hunter2pass", f"--token={secrets[1]}", secrets[2],
    )
    assert res.returncode == 0, res.stderr
    on_disk = "".join(p.read_text() for p in root.rglob("*.json*") if p.is_file())
    leaked = [s for s in secrets if s in res.stdout or s in on_disk]
    figure("secrets by shape", tried=len(secrets), survived=len(secrets) - len(leaked), lost=len(leaked), stuck=0)
    assert leaked == [] and json.loads(res.stdout)["run_id"]


def test_escape_injection_is_printed_neutralised(tmp_path: Path) -> None:
    root = tmp_path / "state"
    cp = ControlPlane(root)
    evil = ["\x1b]0;owned\x07", "\x1b[2J", "line\rover"]
    rec = cp.submit(["echo", *evil], target="demo", workflow="w", wait=True)
    shown = [run_cli("ray", "jobs", "status", rec.run_id, "--state-root", str(root)), run_cli("ray", "jobs", "list", "--state-root", str(root))]
    raw = [r for r in shown if "\x1b" in r.stdout + r.stderr or "\r" in r.stdout + r.stderr]
    figure("escape injection", tried=len(shown), survived=len(shown) - len(raw), lost=len(raw), stuck=0)
    assert all(r.returncode == 0 for r in shown) and raw == []


ORPHAN_SUBMIT = """
import os, sys
from merlin.control import submit
submit.launch = lambda *a, **k: os._exit(9)  # the submitter dies right after writing its record, before the engine has it
from merlin.controlplane import ControlPlane
ControlPlane(sys.argv[1]).submit(["true"], target="orphan", workflow="w")
"""


@pytest.mark.parametrize("look", ["refresh", "status_json"])
def test_a_run_whose_submitter_died_before_the_engine_had_it_is_lost_at_the_next_look(tmp_path: Path, look: str) -> None:
    """Between its record and its engine a run is its submitter's: killed there, nobody hands it over.
    It was left pending for good (the SIGKILL storm met it once imports moved after the record's write)."""
    cp = ControlPlane(tmp_path / "state")
    proc = subprocess.run([sys.executable, "-c", ORPHAN_SUBMIT, str(cp.root)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 9, proc.stderr
    (row,) = cp.list_runs()
    assert row["status"] == "pending" and row["attempts"][-1]["submission_id"] is None
    seen = cp.refresh()[0].model_dump(mode="json") if look == "refresh" else cp.status_json(row["run_id"])
    assert seen["status"] == "lost" and "submitting process" in seen["message"], seen["message"]
