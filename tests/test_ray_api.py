"""Ray's Jobs REST API client (merlin.engines.ray_api) against the real session cluster:
typed answers, HTTP status codes instead of text, no `import ray` to observe a run,
and a clean Ctrl-C while following a Ray run's logs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO
from merlin.controlplane import ControlPlane
from merlin.engines import ray_api
from merlin.ledger import RunStatus

pytestmark = [pytest.mark.ray, pytest.mark.slow]

PY = sys.executable


def _running(cp: ControlPlane, run_id: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rec = cp.status(run_id)
        if rec.status == RunStatus.RUNNING:
            return rec
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not start: {cp.get(run_id).message}")


def _api(cp: ControlPlane) -> ray_api.JobsApi:
    cluster = cp.ledger.read_cluster("default")
    assert cluster is not None
    return cp.engine("ray").client(cluster)


def test_typed_answers_and_status_codes(ray_cp: ControlPlane) -> None:
    rec = ray_cp.submit(["bash", "-c", "echo typed-hello; exit 3"], target="demo", workflow="api", engine="ray", wait=True)
    assert rec.status == RunStatus.FAILED
    sub = rec.attempt.submission_id
    api = _api(ray_cp)  # with the cluster's token header
    job = api.get_job(sub)
    assert isinstance(job, ray_api.JobInfo) and job.submission_id == sub
    assert job.status == "FAILED" and job.terminal and job.driver_exit_code == 3
    assert job.metadata["merlin_run_id"] == rec.run_id and job.entrypoint.endswith("exit 3'")
    assert job.start_time and job.end_time and job.end_time >= job.start_time
    assert sub in {j.submission_id for j in api.list_jobs()}
    assert "typed-hello" in api.logs(sub)
    assert api.stop(sub) is False  # already ended: Ray says so in its JSON
    for call in (api.get_job, api.logs, api.stop):
        with pytest.raises(ray_api.JobNotFound) as err:
            call("merlin-never-submitted-1")
        assert err.value.status == 404
    if api.headers:  # a token cluster (the default): no token is HTTP 401, reported as Unauthorized
        with pytest.raises(ray_api.Unauthorized) as refused:
            ray_api.JobsApi(rec.cluster.address).get_job(sub)
        assert refused.value.status == 401
    from merlin.clusters.net import free_ports

    with pytest.raises(ray_api.Unreachable) as down:
        ray_api.JobsApi(f"http://127.0.0.1:{free_ports(1)[0]}", timeout=2).list_jobs()
    assert down.value.status is None


def test_follow_polls_until_the_job_ends(ray_cp: ControlPlane) -> None:
    rec = ray_cp.submit(["bash", "-c", "for i in 1 2 3; do echo step$i; sleep 0.4; done"], target="demo", workflow="api", engine="ray")
    api = _api(ray_cp)
    chunks = list(api.follow(rec.attempt.submission_id, poll=0.2))
    text = "".join(chunks)
    assert [w for w in text.split() if re.fullmatch(r"step\d", w)] == ["step1", "step2", "step3"]
    assert text == api.logs(rec.attempt.submission_id)  # nothing repeated, nothing lost
    assert api.get_job(rec.attempt.submission_id).status == "SUCCEEDED"


def test_status_refresh_logs_and_cancel_do_not_import_ray(ray_cp: ControlPlane) -> None:
    rec = ray_cp.submit(["bash", "-c", "echo started; sleep 300"], target="demo", workflow="noimport", engine="ray")
    _running(ray_cp, rec.run_id)
    # through the CLI, as a user runs it (it refreshes: the run is live)
    main = (
        "import sys\nfrom merlin.cli.app import main\n"
        "try:\n    main(['ray', 'jobs', 'status', sys.argv[1], '--json'])\n"
        "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "sys.stderr.write('LOADED:' + ','.join(m for m in ('merlin.engines.ray_api', 'ray') if m in sys.modules))\n"
    )
    cli = subprocess.run([PY, "-c", main, rec.run_id], capture_output=True, text=True, timeout=60, cwd=REPO,
                         env={**os.environ, "MERLIN_STATE_ROOT": str(ray_cp.root)})
    assert cli.returncode == 0, cli.stderr
    assert cli.stderr.split("LOADED:")[1].strip() == "merlin.engines.ray_api"  # asked Ray over HTTP, never imported it
    assert json.loads(cli.stdout)["status"] == "running"
    code = (
        "import json, sys\n"
        "from merlin.controlplane import ControlPlane\n"
        "cp = ControlPlane(sys.argv[1]); rid = sys.argv[2]; seen = {}\n"
        "seen['status'] = cp.status(rid, refresh=True).status.value\n"
        "seen['refresh'] = [r['status'] for r in cp.list_runs(refresh=True)]\n"
        "seen['logs'] = 'started' in cp.logs(rid)\n"
        "eng = cp.engine('ray'); seen['engine_logs'] = 'started' in eng._client_for_record(cp.get(rid)).logs(cp.get(rid).attempt.submission_id)\n"
        "seen['cancel'] = cp.cancel(rid).status.value\n"
        "seen['ray_imported'] = sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.'))\n"
        "print(json.dumps(seen))\n"
    )
    res = subprocess.run([PY, "-c", code, str(ray_cp.root), rec.run_id], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert res.returncode == 0, res.stderr
    seen = json.loads(res.stdout)
    assert seen == {"status": "running", "refresh": ["running"], "logs": True, "engine_logs": True,
                    "cancel": "cancelled", "ray_imported": []}


def test_ctrl_c_while_following_a_ray_run_exits_130_without_a_traceback(ray_cp: ControlPlane) -> None:
    rec = ray_cp.submit(["bash", "-c", "while true; do echo tick; sleep 0.2; done"], target="demo", workflow="ctrlc", engine="ray")
    _running(ray_cp, rec.run_id)
    env = {**os.environ, "MERLIN_STATE_ROOT": str(ray_cp.root), "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([PY, "-m", "merlin", "ray", "jobs", "logs", "-f", rec.run_id], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=REPO, text=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]  # it streams (Ray may write a line of its own first)
        assert "tick\n" in lines, lines
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        ray_cp.cancel(rec.run_id)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "GeneratorExit" not in err and "Exception ignored" not in err
    assert len(err.strip().splitlines()) <= 2, err  # a line saying so, not a dump
