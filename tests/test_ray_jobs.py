"""Runs on a real local Ray cluster (the session fixture): submit, logs, follow,
cancel, retry, reconciliation, blocked causes, redaction."""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from pathlib import Path

import pytest

from cli_runner import run_cli
from conftest import REPO
from conftest import run_cli as run_cli_process
from merlin.controlplane import ControlPlane
from merlin.ledger import RunStatus

pytestmark = [pytest.mark.ray, pytest.mark.slow]

PY = sys.executable


def _token_headers(cp: ControlPlane) -> dict[str, str]:
    """Clusters merlin starts require Ray's token (issue 9): a raw SDK client must send it too."""
    from merlin.clusters.auth import headers_for

    crec = cp.ledger.read_cluster("default")
    return headers_for(crec.auth, crec.name)


def _commands(rec) -> list[str]:
    """A record's next steps as the CLI renders them (plain ``merlin``: tests do not run ./merlin)."""
    from merlin.cli.nextsteps import command

    data = rec if isinstance(rec, dict) else rec.model_dump(mode="json")
    return [command(s) for s in data["next_steps"]]


def test_submit_wait_logs_and_artifacts_through_the_cli(ray_cp: ControlPlane) -> None:
    code = (
        "import os, sys, pathlib, merlin; print('exe', sys.executable); print('merlin', merlin.__file__); print('rid', os.environ['MERLIN_RUN_ID']); "
        "pathlib.Path(os.environ['MERLIN_TARGET_DIR'], 'result.json').write_text('{\"ok\": true}')"
    )
    res = run_cli("ray", "jobs", "submit", "--engine", "ray", "--target", "demo", "--workflow", "smoke", "--memory", "256MiB", "--wait", "--json", "--", PY, "-c", code)
    assert res.returncode == 0, res.stderr
    rec = json.loads(res.stdout)
    assert rec["status"] == "succeeded" and rec["engine"] == "ray"
    att = rec["attempts"][0]
    assert att["submission_id"] == f"merlin-{rec['run_id']}-1" and att["exit_code"] == 0
    assert rec["cluster"]["name"] == "default" and rec["cluster"]["address"].startswith("http://127.0.0.1:")
    assert rec["observed_at"] is not None
    logs = run_cli("ray", "jobs", "logs", rec["run_id"])
    assert f"exe {PY}" in logs.stdout  # the job runs this interpreter...
    assert f"merlin {REPO / 'src' / 'merlin' / '__init__.py'}" in logs.stdout  # ...and imports this merlin
    assert f"rid {rec['run_id']}" in logs.stdout  # merlin's values, exported by the entrypoint (not in the runtime env below)
    arts = json.loads(run_cli("ray", "artifacts", "list", rec["run_id"], "--json").stdout)
    assert [(f["name"], f["kind"]) for f in arts["files"]] == [("result.json", "json")]
    # Ray holds the same status, read through its typed API
    from ray.job_submission import JobStatus, JobSubmissionClient

    info = JobSubmissionClient(rec["cluster"]["address"], headers=_token_headers(ray_cp)).get_job_info(att["submission_id"])
    assert info.status == JobStatus.SUCCEEDED
    assert info.runtime_env.get("working_dir") is None  # no upload of the repository
    assert set(info.runtime_env) == {"env_vars"}
    assert not [k for k in info.runtime_env["env_vars"] if k.startswith("MERLIN_")]  # a cluster's jobs share one runtime env
    # --memory is reserved for the job on its node: more than the head has, and Ray never starts it
    big = ray_cp.submit(["true"], target="demo", workflow="w", engine="ray", memory="1000GiB")  # workflow "w": "memory" below is Ray's word
    try:
        time.sleep(3)
        assert ray_cp.status(big.run_id).status == RunStatus.PENDING
        why = json.loads(run_cli("ray", "jobs", "why", big.run_id, "--json").stdout)
        ray_conds = [c for c in why["conditions"] if c["code"].startswith("ray_")]
        assert ray_conds[0]["code"] == "ray_resource_infeasible" and "no node it reports has memory 1000.0 GiB" in ray_conds[0]["message"], why
    finally:
        ray_cp.cancel(big.run_id)


def test_a_ray_job_over_its_memory_is_ended_by_the_launcher_and_fails_memory_limit(ray_cp: ControlPlane) -> None:
    """Ray only reserves ``entrypoint_memory``; the launcher around the job's command holds it to the limit."""
    hog = "import time; x = bytearray(400 * 2**20); x[::4096] = b'1' * len(x[::4096]); time.sleep(60)"
    t0 = time.monotonic()
    rec = ray_cp.submit([PY, "-c", hog], target="demo", workflow="hog", engine="ray", memory="128MiB")
    done = ray_cp.wait(rec.run_id, timeout=60)
    assert done.status == RunStatus.FAILED and time.monotonic() - t0 < 45, done  # ended, not slept out
    att = done.attempts[-1]
    assert att.error_type == "MEMORY_LIMIT" and "over its limit of 128.0 MiB" in (att.error_message or ""), att
    assert done.message.startswith("failed: ended by merlin (SIGKILL): its processes used "), done.message
    assert [s.action for s in done.next_steps] == ["logs", "retry"]


def test_follow_streams_ray_logs(ray_cp: ControlPlane) -> None:
    rec = ray_cp.submit(["bash", "-c", "for i in 1 2 3 4; do echo tick$i; sleep 0.5; done"], target="demo", workflow="follow", engine="ray")
    t0 = time.monotonic()
    text = "".join(ray_cp.follow(rec.run_id))
    assert [w for w in text.split() if re.fullmatch(r"tick\d", w)] == ["tick1", "tick2", "tick3", "tick4"]
    assert time.monotonic() - t0 >= 1.0
    assert ray_cp.status(rec.run_id).status == RunStatus.SUCCEEDED
    fol = run_cli("ray", "jobs", "logs", rec.run_id, "--follow")  # after the end: the kept copy
    assert "tick4" in fol.stdout and fol.returncode == 0


def test_follow_moves_each_byte_of_a_long_log_once(ray_cp: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> None:
    """Following reads only what is new (Ray's tail), never the whole log again: the bytes this
    client receives while following stay within framing of the log's size, where polling the
    whole log every 0.5 s moved several times the log."""
    import socket

    script = "import time\nfor i in range(400):\n    print(f'line {i:04d} ' + 'x' * 3000, flush=True)\n    time.sleep(0.02)\n"
    rec = ray_cp.submit([PY, "-c", script], target="demo", workflow="tail", engine="ray")
    received = [0]
    real_recv, real_recv_into = socket.socket.recv, socket.socket.recv_into

    def recv(self: socket.socket, *args, **kwargs) -> bytes:  # every byte this process reads from a socket
        data = real_recv(self, *args, **kwargs)
        received[0] += len(data)
        return data

    def recv_into(self: socket.socket, buffer, *args, **kwargs) -> int:  # http.client reads through here
        n = real_recv_into(self, buffer, *args, **kwargs)
        received[0] += n
        return n

    monkeypatch.setattr(socket.socket, "recv", recv)
    monkeypatch.setattr(socket.socket, "recv_into", recv_into)
    chunks = list(ray_cp.follow(rec.run_id))
    monkeypatch.undo()
    followed = "".join(chunks)
    assert ray_cp.status(rec.run_id).status == RunStatus.SUCCEEDED
    assert followed == ray_cp.logs(rec.run_id), "the followed text is the log"
    assert len(re.findall(r"^line \d{4} x{3000}$", followed, re.M)) == 400 and len(chunks) > 1, "streamed while the job wrote"
    size = len(followed.encode("utf-8"))
    print(f"followed a log of {size} bytes, received {received[0]}")
    assert size <= received[0] <= size * 1.05 + 32_768, f"received {received[0]} bytes to follow a log of {size}"


def test_cancel_stops_the_ray_job(ray_cp: ControlPlane) -> None:
    from ray.job_submission import JobStatus, JobSubmissionClient

    rec = ray_cp.submit(["sleep", "300"], target="demo", workflow="cancel", engine="ray")
    deadline = time.monotonic() + 60
    while ray_cp.status(rec.run_id).status != RunStatus.RUNNING and time.monotonic() < deadline:
        time.sleep(0.2)
    res = run_cli("ray", "jobs", "cancel", rec.run_id, "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["status"] == "cancelled" and "retry" in out["message"]
    client = JobSubmissionClient(out["cluster"]["address"], headers=_token_headers(ray_cp))
    assert client.get_job_info(out["attempts"][0]["submission_id"]).status == JobStatus.STOPPED
    events = [e.event for e in ray_cp.events(rec.run_id)]
    assert "cancel_requested" in events


def test_failed_run_exit_1_then_retry_succeeds(ray_cp: ControlPlane, tmp_path: Path) -> None:
    flag = tmp_path / "fixed"
    res = run_cli("ray", "jobs", "submit", "--engine", "ray", "--target", "demo", "--workflow", "retry", "--wait", "--",
                  "bash", "-c", f"test -f {flag} || {{ echo 'not fixed yet'; exit 4; }}")
    assert res.returncode == 1, res.stderr
    run_id = res.stdout.strip()
    rec = ray_cp.get(run_id)
    assert rec.status == RunStatus.FAILED and rec.attempt.exit_code == 4
    assert rec.attempt.error_type == "JOB_ENTRYPOINT_COMMAND_ERROR"
    assert f"merlin ray jobs retry {run_id}" in _commands(rec)
    flag.write_text("yes")
    again = run_cli("ray", "jobs", "retry", run_id, "--wait", "--json")
    assert again.returncode == 0, again.stderr
    data = json.loads(again.stdout)
    assert data["status"] == "succeeded"
    assert [a["submission_id"] for a in data["attempts"]] == [f"merlin-{run_id}-1", f"merlin-{run_id}-2"]
    assert [a["status"] for a in data["attempts"]] == ["failed", "succeeded"]
    assert "not fixed yet" in ray_cp.logs(run_id, attempt=1)


def test_refresh_asks_each_cluster_once(ray_cp: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> None:
    from merlin.engines import ray_engine
    from merlin.engines.ray_api import JobsApi

    runs = [ray_cp.submit(["bash", "-c", f"sleep 1; echo {i}"], target="demo", workflow="many", engine="ray") for i in range(5)]
    calls = {"list_jobs": 0, "get_job_info": 0, "connections": 0}
    real_list, real_info, real_kept = JobsApi.list_jobs, JobsApi.get_job, JobsApi.kept_open

    def list_jobs(self):
        calls["list_jobs"] += 1
        return real_list(self)

    def get_job_info(self, job_id):
        calls["get_job_info"] += 1
        return real_info(self, job_id)

    def kept_open(self):
        calls["connections"] += 1
        return real_kept(self)

    monkeypatch.setattr(JobsApi, "list_jobs", list_jobs)
    monkeypatch.setattr(JobsApi, "get_job", get_job_info)
    monkeypatch.setattr(JobsApi, "kept_open", kept_open)
    cp = ControlPlane(ray_cp.root)  # a fresh control plane, as a new CLI process would have
    # more active runs than ASK_EACH: one list of the cluster's jobs per refresh
    monkeypatch.setattr(ray_engine, "ASK_EACH", 0)
    cp.list_runs(refresh=True)
    assert calls == {"list_jobs": 1, "get_job_info": 0, "connections": 0}
    monkeypatch.setattr(ray_engine, "ASK_EACH", 32)
    calls.update(list_jobs=0)
    rounds = 0
    while True:
        rounds += 1
        rows = cp.list_runs(refresh=True)
        if all(r["status"] == "succeeded" for r in rows if r["workflow"] == "many"):
            break
        assert rounds < 120
        time.sleep(0.5)
    # at most ASK_EACH: each active run asked after by its id, over one connection per cluster per refresh
    assert calls["list_jobs"] == 0 and calls["connections"] == rounds
    assert rounds <= calls["get_job_info"] <= len(runs) * rounds
    for r in runs:
        rec = cp.get(r.run_id)
        assert rec.observed_at is not None and rec.status == RunStatus.SUCCEEDED
    # terminal runs are not asked again: no engine call at all
    before = dict(calls)
    cp.list_runs(refresh=True)
    assert calls == before


def test_env_redacted_in_records_but_given_to_the_job(ray_cp: ControlPlane) -> None:
    res = run_cli("ray", "jobs", "submit", "--engine", "ray", "--target", "demo", "--workflow", "env", "--wait",
                  "--env", "SERVICE_TOKEN=tok-123456", "--env", "MODE=fast", "--num-cpus", "1", "--json", "--",
                  "bash", "-c", 'echo "len=${#SERVICE_TOKEN} mode=$MODE cpus=$MERLIN_RUN_ID"')
    assert res.returncode == 0, res.stderr
    rec = json.loads(res.stdout)
    assert "len=10 mode=fast" in ray_cp.logs(rec["run_id"])
    run_dir = ray_cp.layout.run_dir(rec["run_id"])
    for p in run_dir.rglob("*.json*"):
        assert "tok-123456" not in p.read_text(), p
    assert json.loads((run_dir / "run_request.json").read_text())["env"] == {"SERVICE_TOKEN": "***redacted***", "MODE": "fast"}
    assert json.loads((run_dir / "run_request.json").read_text())["num_cpus"] == 1.0


def test_blocked_when_ray_is_not_importable_then_retry(ray_cp: ControlPlane, tmp_path: Path) -> None:
    stub = tmp_path / "stub"
    (stub / "ray").mkdir(parents=True)
    (stub / "ray" / "__init__.py").write_text("raise ImportError('No module named ray (stub for tests)')\n")
    env = {"PYTHONPATH": str(stub)}  # a process of its own: Ray is already imported in this one
    res = run_cli_process("ray", "jobs", "submit", "--engine", "ray", "--target", "demo", "--workflow", "noray", "--", "echo", "hi", env=env)
    assert res.returncode == 3, res.stderr
    run_id = res.stdout.strip()
    assert "install Ray into merlin's environment" in res.stderr and "next: `.venv/bin/pip install 'ray[default]'`" in res.stderr
    assert f"then `merlin ray jobs retry {run_id}`" in res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    rec = ray_cp.get(run_id)
    assert rec.status == RunStatus.BLOCKED and rec.attempt.error_type == "ray_not_importable"
    # cluster start is blocked the same way
    start = run_cli_process("ray", "cluster", "start-local", "--name", "never", env=env)
    assert start.returncode == 3 and "install Ray" in start.stderr
    # the cause is gone (no stub): retry submits the same run
    again = run_cli("ray", "jobs", "retry", run_id, "--wait", "--json")
    assert again.returncode == 0, again.stderr
    data = json.loads(again.stdout)
    assert data["status"] == "succeeded" and len(data["attempts"]) == 2 and data["attempts"][0]["status"] == "blocked"


def test_blocked_without_cluster_then_retry_once_it_exists(ray_cluster, tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    res = run_cli("ray", "jobs", "submit", "--engine", "ray", "--state-root", str(root), "--target", "demo", "--workflow", "nocl", "--", "echo", "hi")
    assert res.returncode == 3
    run_id = res.stdout.strip()
    assert "no active Ray cluster" in res.stderr and "start one; next: `merlin ray cluster start-local --state-root " in res.stderr
    assert f"then `merlin ray jobs retry {run_id} --state-root {root}`" in res.stderr  # the hints keep --state-root
    cp = ControlPlane(root)
    assert cp.get(run_id).status == RunStatus.BLOCKED
    lst = json.loads(run_cli("ray", "jobs", "list", "--state-root", str(root), "--status", "blocked", "--json").stdout)
    assert [r["run_id"] for r in lst] == [run_id]
    # the fix: this state root now has an active cluster (the shared one)
    (root / "cluster").mkdir(exist_ok=True)
    shutil.copy(ray_cluster.record_path, root / "cluster" / "bootstrap.json")
    again = run_cli("ray", "jobs", "retry", run_id, "--state-root", str(root), "--wait")
    assert again.returncode == 0, again.stderr
    assert cp.get(run_id).status == RunStatus.SUCCEEDED
    events = [(e.event, e.to_status) for e in cp.events(run_id)]
    # recorded as blocked from the start (nothing was handed to Ray), then retried and run
    assert events[0] == ("created", "blocked") and ("retry", None) in events and ("transition", "succeeded") in events


def test_watch_ends_when_all_runs_are_terminal(ray_cp: ControlPlane) -> None:
    a = ray_cp.submit(["sleep", "1"], target="demo", workflow="watch", engine="ray")
    b = ray_cp.submit(["bash", "-c", "sleep 1; exit 2"], target="demo", workflow="watch", engine="ray")
    res = run_cli("ray", "jobs", "watch", a.run_id, b.run_id, "--interval", "0.3s", "--json", timeout=120)
    assert res.returncode == 1, res.stderr  # issue 8: a watched run failed (b)
    rows = {r["run_id"]: r["status"] for r in json.loads(res.stdout)}
    assert rows == {a.run_id: "succeeded", b.run_id: "failed"}
    human = run_cli("ray", "jobs", "watch", a.run_id, "--interval", "0.3s")
    assert human.returncode == 0 and a.run_id in human.stdout and "succeeded" in human.stdout


def test_python_api_example_from_docs(ray_cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The example in docs/ray.md runs as written (against the test cluster)."""
    doc = (REPO / "docs" / "ray.md").read_text()
    block = doc.split("<!-- api-example -->")[1].split("```python")[1].split("```")[0]
    root = tmp_path / "api"
    (root / "cluster").mkdir(parents=True)
    shutil.copy(ray_cluster.record_path, root / "cluster" / "bootstrap.json")
    monkeypatch.chdir(tmp_path)
    block = block.replace('state_root="build/generated/ray"', f'state_root="{root}"')
    namespace: dict = {}
    exec(compile(block, "docs/ray.md", "exec"), namespace)
    run = namespace["run"]
    assert run.status == RunStatus.SUCCEEDED


def test_a_run_the_cluster_can_never_start_says_why(ray_cp: ControlPlane) -> None:
    """Ray would keep it PENDING silently; merlin names the missing resources and the fix."""
    res = run_cli(
        "ray", "jobs", "submit", "--engine", "ray", "--target", "demo", "--workflow", "gpu",
        "--num-gpus", "1", "--resource", "fpga_slot=2", "--json", "--", PY, "-c", "print('never')",
    )
    assert res.returncode == 0, res.stderr
    rec = json.loads(res.stdout)
    assert rec["status"] == "pending"
    assert "can never start this run" in rec["message"]
    assert "GPU 1 (cluster has 0)" in rec["message"] and "fpga_slot 2 (cluster has 0)" in rec["message"]
    assert f"merlin ray jobs cancel {rec['run_id']}" in _commands(rec) and "merlin" not in rec["message"]
    status = run_cli("ray", "jobs", "status", rec["run_id"], "--json")
    assert json.loads(status.stdout)["message"] == rec["message"]  # still explained after observing Ray
    cancelled = ray_cp.cancel(rec["run_id"])
    assert cancelled.status == RunStatus.CANCELLED  # Ray cannot stop a never-scheduled job; the ledger records the intent
    assert "cancelled before its engine started it" in cancelled.message and "retry" in cancelled.message.lower()
    ray_cp.refresh()
    assert ray_cp.status(rec["run_id"]).status == RunStatus.CANCELLED  # Ray's lingering PENDING does not undo it


def test_a_run_that_fits_gets_no_pending_warning(ray_cp: ControlPlane) -> None:
    run = ray_cp.submit([PY, "-c", "print('fits')"], target="demo", workflow="cpu", engine="ray", num_cpus=1, wait=True)
    assert run.status == RunStatus.SUCCEEDED
    assert "can never start" not in json.dumps([e.model_dump(mode="json") for e in ray_cp.events(run.run_id)])


def test_submit_posts_without_importing_ray(ray_cp: ControlPlane) -> None:
    """Submission uses Ray's Jobs REST API: the 0.5 s `import ray` is paid only to observe."""
    import subprocess

    code = (
        "import sys\nfrom merlin.cli.app import main\n"
        "try:\n    main(['ray', 'jobs', 'submit', '--engine', 'ray', '--target', 'demo', '--workflow', 'rest', '--json', '--', sys.executable, '-c', 'print(1)'])\n"
        "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "sys.stderr.write('LOADED:' + ','.join(m for m in ('merlin.engines.ray_engine', 'merlin.engines.ray_api', 'ray') if m in sys.modules))\n"
    )
    res = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)  # MERLIN_STATE_ROOT: ray_cp's
    assert res.returncode == 0, res.stderr
    assert res.stderr.split("LOADED:")[1].strip() == "merlin.engines.ray_engine,merlin.engines.ray_api"  # the REST client, not Ray
    run_id = json.loads(res.stdout)["run_id"]
    assert ray_cp.wait(run_id, timeout=60).status == RunStatus.SUCCEEDED


def test_a_resubmitted_attempt_is_adopted_and_an_unknown_one_is_lost(ray_cp: ControlPlane) -> None:
    """A second POST of the same submission id (the first got through) is adopted: after Ray's
    error, merlin asks Ray for that submission and checks it is this run's (no text matching).
    A submission id Ray never heard of observes as lost."""
    from merlin.engines.ray_engine import RayEngine

    rec = ray_cp.submit(["true"], target="demo", workflow="dup", engine="ray", wait=True)
    assert rec.status == RunStatus.SUCCEEDED
    eng = ray_cp.engine("ray")
    request = ray_cp.ledger.read_request(rec.run_id)
    again = eng.submit(rec, request, {})  # Ray answers with an error naming the existing submission
    assert again.submission_id == rec.attempt.submission_id
    assert ray_cp.status(rec.run_id).status == RunStatus.SUCCEEDED
    api = eng.client(ray_cp.ledger.read_cluster("default"))
    assert RayEngine._already_submitted(api, again.submission_id, rec.run_id)
    assert not RayEngine._already_submitted(api, again.submission_id, "some-other-run")  # not ours: never adopted
    assert not RayEngine._already_submitted(api, "merlin-never-submitted-1", rec.run_id)
    ghost = rec.model_copy(update={"attempts": [rec.attempt.model_copy(update={"submission_id": "merlin-never-submitted-1"})]})
    obs = eng.poll(ghost)
    assert obs.status == RunStatus.LOST and obs.error_type == "SUBMISSION_UNKNOWN"


def _status_in_subprocess(run_id: str) -> tuple[dict, str]:
    """``merlin ray jobs status RUN_ID --json`` in a fresh interpreter: (its JSON, the heavy modules it loaded)."""
    import subprocess

    code = (
        "import sys\nfrom merlin.cli.app import main\n"
        f"try:\n    main(['ray', 'jobs', 'status', {run_id!r}, '--json'])\n"
        "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "sys.stderr.write('LOADED:' + ','.join(m for m in ('pydantic', 'ray') if m in sys.modules))\n"
    )
    res = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)  # MERLIN_STATE_ROOT: ray_cp's
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout), res.stderr.split("LOADED:")[1].strip()


def test_status_of_an_unchanged_live_run_skips_pydantic_and_a_change_takes_the_full_path(ray_cp: ControlPlane) -> None:
    """Issue 7's speed point: `jobs status` on a live run that is still running reads and
    touches the raw record (no pydantic); the record stays valid, and an end goes through
    the transition-checked path with its event."""
    from merlin.engines.ray_api import JobsApi
    from merlin.ledger.models import RunRecord

    rec = ray_cp.submit(["sleep", "300"], target="demo", workflow="fast-status", engine="ray")
    deadline = time.monotonic() + 60
    while ray_cp.status(rec.run_id).status != RunStatus.RUNNING and time.monotonic() < deadline:
        time.sleep(0.2)
    before = ray_cp.get(rec.run_id)
    assert before.status == RunStatus.RUNNING and before.observed_at is not None
    events_before = ray_cp.events(rec.run_id)

    out, loaded = _status_in_subprocess(rec.run_id)
    assert loaded == ""  # neither pydantic nor ray
    after = ray_cp.get(rec.run_id)  # what it wrote still validates as a RunRecord
    assert isinstance(after, RunRecord) and after.observed_at > before.observed_at
    assert out == after.model_dump(mode="json")  # the JSON printed is the record's own dump
    assert after.model_dump(exclude={"observed_at", "updated_at"}) == before.model_dump(exclude={"observed_at", "updated_at"})
    assert ray_cp.events(rec.run_id) == events_before  # nothing happened, so no event

    JobsApi(after.cluster.address, _token_headers(ray_cp)).stop(after.attempts[-1].submission_id)
    deadline = time.monotonic() + 60
    while (out := ray_cp.status_json(rec.run_id))["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.3)
    assert out["status"] == "cancelled" and out == ray_cp.get(rec.run_id).model_dump(mode="json")
    ends = [e for e in ray_cp.events(rec.run_id) if e.event == "transition" and e.to_status == "cancelled"]
    assert len(ends) == 1 and ends[0].cause == "observed by ray engine: cancelled"
