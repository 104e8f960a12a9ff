"""merlin.client beyond the shared contract (tests/test_client_api.py): what importing it loads, the
current client per context, job names under concurrency, the front ends' one JobRequest, the status
table, and the facade's arguments as a person passes them."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cli_runner import run_cli
from conftest import REPO
from merlin.client import (
    DEFAULT_MAX_RETRIES_PREEMPTION,
    STATUS_OF_RUN,
    Client,
    Entrypoint,
    EnvironmentConfig,
    JobRequest,
    JobStatus,
    LocalClient,
    ResourceConfig,
    current_client,
    set_current_client,
    submit_kwargs,
)
from merlin.controlplane import ControlPlane, run_statuses
from merlin.errors import BadInput
from merlin.ledger.models import RunEvent
from merlin.ledger.status import RunStatus
from tests.wheelhouse import wheelhouse  # noqa: F401  (the fixture)

PY = sys.executable


def test_importing_the_client_loads_neither_ray_nor_pydantic() -> None:
    code = "import sys, merlin.client; print(sorted(m for m in ('ray', 'pydantic') if m in sys.modules))"
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert out.strip() == "[]"


def test_the_current_client_is_per_context() -> None:
    """Two threads with two clients never see each other's; a thread that set none gets its own LocalClient."""
    with LocalClient() as a, LocalClient() as b:
        barrier = threading.Barrier(2)
        seen: dict[str, list[object]] = {"a": [], "b": []}

        def use(name: str, client: Client) -> None:
            with set_current_client(client):
                barrier.wait()
                for _ in range(50):
                    seen[name].append(current_client())
                    time.sleep(0.001)
                barrier.wait()
            seen[name].append(current_client())  # after the block: this thread's own default

        threads = [threading.Thread(target=use, args=("a", a)), threading.Thread(target=use, args=("b", b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(c is a for c in seen["a"][:-1]) and all(c is b for c in seen["b"][:-1])
        fallback_a, fallback_b = seen["a"][-1], seen["b"][-1]
        assert isinstance(fallback_a, LocalClient) and isinstance(fallback_b, LocalClient)
        assert fallback_a not in (a, b) and fallback_b not in (a, b, fallback_a)
        for c in (fallback_a, fallback_b):
            c.close()
            assert not Path(c.cp.root).exists()


def test_inside_a_run_the_current_client_is_the_runs_own(tmp_path: Path) -> None:
    with LocalClient() as client:
        code = "from merlin.client import current_client; c = current_client(); print(c.cp.root, c.engine)"
        handle = client.submit(JobRequest("inner", Entrypoint.from_binary(PY, ["-c", code])))
        handle.wait(timeout=60)
        assert handle.logs() == (f"{client.cp.root} local",)


def test_local_client_ends_its_jobs_and_removes_its_state_root() -> None:
    client = LocalClient()
    handle = client.submit(JobRequest("long", Entrypoint.from_binary("sleep", ["300"])))
    deadline = time.monotonic() + 30
    while (rec := handle.record()).attempt.pid is None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    pid = rec.attempt.pid
    root = Path(client.cp.root)
    client.close()
    assert not root.exists()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z":
        assert time.monotonic() < deadline, f"the job's process {pid} outlived its LocalClient"
        time.sleep(0.1)


def test_concurrent_submits_of_one_name_start_one_job(tmp_path: Path) -> None:
    root = tmp_path / "state"
    barrier = threading.Barrier(4)
    got: list[str] = []

    def submit() -> None:
        client = Client(state_root=root)  # each thread its own client, as separate processes would have
        barrier.wait()
        got.append(client.submit(JobRequest("once", Entrypoint.from_binary("sleep", ["60"]))).job_id)

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cp = ControlPlane(root)
    try:
        assert len(got) == 4 and len(set(got)) == 1
        assert [r["run_id"] for r in cp.list_runs()] == [got[0]]
        assert cp.ledger.read_request(got[0]).name == "once"  # the name is on the run's request record
    finally:
        cp.cancel(got[0])


def test_list_runs_takes_a_status_as_a_person_passes_it(tmp_path: Path) -> None:
    cp = ControlPlane(tmp_path / "state")
    failed = cp.submit(["false"], target="t", workflow="w", wait=True, timeout=60)
    ok = cp.submit(["true"], target="t", workflow="w", wait=True, timeout=60)
    assert [r["run_id"] for r in cp.list_runs(status="failed")] == [failed.run_id]
    assert [r["run_id"] for r in cp.list_runs(status=RunStatus.SUCCEEDED)] == [ok.run_id]
    assert {r["run_id"] for r in cp.list_runs(status=("failed", RunStatus.SUCCEEDED))} == {failed.run_id, ok.run_id}
    assert cp.run_summaries("failed")[0] == 1
    with pytest.raises(BadInput) as caught:
        cp.list_runs(status="sideways")
    assert caught.value.argument == "status" and "--" not in caught.value.message
    events = cp.events(ok.run_id)
    assert all(isinstance(e, RunEvent) for e in events) and events[0].event == "created"


def test_every_run_status_has_a_job_status() -> None:
    assert set(STATUS_OF_RUN) == set(run_statuses())
    assert {s for s in JobStatus if JobStatus.finished(s)} == {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}
    assert JobStatus.of_run(RunStatus.CANCELLED) == JobStatus.STOPPED and JobStatus.of_run("waiting") == JobStatus.PENDING


def test_the_status_table_in_docs_is_generated_from_the_code() -> None:
    from merlin.client.types import status_table

    assert status_table() in (REPO / "docs" / "api.md").read_text(encoding="utf-8"), "docs/api.md's table is stale: paste status_table()"


def test_bad_requests_name_their_argument() -> None:
    for make, argument in [
        (lambda: JobRequest("two words", Entrypoint.from_binary("true")), "name"),
        (lambda: JobRequest(None, Entrypoint.from_binary("true")), "target"),
        (lambda: JobRequest("j", Entrypoint.from_binary("true"), max_retries_failure=-1), "max_retries_failure"),
        (lambda: Entrypoint.from_binary("echo", "hi"), "args"),
        (lambda: ResourceConfig(device="tpu"), "device"),
        (lambda: ResourceConfig(ram="lots"), "ram"),
    ]:
        with pytest.raises(BadInput) as caught:
            make()
        assert caught.value.argument == argument, caught.value.message


def test_a_request_maps_onto_submit_with_every_budget_and_one_default() -> None:
    plain = submit_kwargs(JobRequest("j", Entrypoint.from_binary("true"), resources=ResourceConfig(cpu=2, device="gpu:1", leases=("firesim_fpga:1",))))
    assert plain["num_cpus"] == 2.0 and plain["num_gpus"] == 1.0 and plain["leases"] == ["firesim_fpga:1"] and plain["target"] == "j"
    assert "runtime" not in plain  # (no environment: the submitter's)
    # every budget is passed, with the one default the CLI and the gateway have too (docs/api.md)
    assert (plain["max_retries_failure"], plain["max_retries_preemption"], plain["replicas"], plain["placement"]) == (0, DEFAULT_MAX_RETRIES_PREEMPTION, None, None)
    assert DEFAULT_MAX_RETRIES_PREEMPTION == 0
    asked = submit_kwargs(JobRequest("j", Entrypoint.from_binary("true"), max_retries_failure=2, max_retries_preemption=0, replicas=2))
    assert (asked["max_retries_failure"], asked["max_retries_preemption"], asked["replicas"]) == (2, 0, 2)
    env = EnvironmentConfig(workspace="/w", pip_packages=("numpy",), extras=("tpu",), lockfile="uv.lock", secrets=("HF_TOKEN",), python="3.11", options={"no_index": True})
    with_env = submit_kwargs(JobRequest("j", Entrypoint.from_binary("true"), environment=env))
    assert with_env["workdir"] == "/w" and with_env["runtime"] == {
        "packages": ["numpy", "tpu"], "lock_file": "uv.lock", "secret_env": ["HF_TOKEN"], "python": "3.11", "no_index": True,
    }


def test_jobs_submit_name_adopts_the_live_run(tmp_path: Path) -> None:
    root = tmp_path / "state"
    argv = ("ray", "jobs", "submit", "--state-root", str(root), "--target", "t", "--workflow", "w", "--name", "nightly", "--json", "--", "sleep", "60")
    first = run_cli(*argv)
    second = run_cli(*argv)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    run_id = json.loads(first.stdout)["run_id"]
    try:
        assert json.loads(second.stdout)["run_id"] == run_id
        assert ControlPlane(root).ledger.read_request(run_id).name == "nightly"
        bad = run_cli("ray", "jobs", "submit", "--state-root", str(root), "--target", "t", "--workflow", "w", "--name", "two words", "--", "true")
        assert bad.returncode == 2 and bad.stderr.startswith("--name 'two words' is not a job name"), bad.stderr
        newline = run_cli("ray", "jobs", "submit", "--state-root", str(root), "--target", "t", "--workflow", "w", "--name", "nightly\n", "--", "true")
        assert newline.returncode == 2 and "is not a job name" in newline.stderr, newline.stderr  # '$' alone let it through
    finally:
        ControlPlane(root).cancel(run_id)


def test_the_gateway_submits_the_same_request(tmp_path: Path) -> None:
    from merlin.gateway.ops import Gateway

    gw = Gateway(tmp_path / "state")
    args = {"command": ["sleep", "60"], "target": "t", "workflow": "w", "name": "agent-job", "num_cpus": 1}
    first = gw.call("runs_submit", args)
    try:
        assert gw.call("runs_submit", args)["run_id"] == first["run_id"]  # an agent that asks twice starts it once
        request = gw.cp.ledger.read_request(first["run_id"])
        assert request.name == "agent-job" and request.num_cpus == 1.0 and request.source == "gateway"
    finally:
        gw.cp.cancel(first["run_id"])


@pytest.mark.slow
def test_a_job_with_an_environment_config_runs_in_the_env_it_names(wheelhouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``EnvironmentConfig`` through a client, end to end: fray's ``pip_packages`` and ``env_vars``, and
    merlin's ``options`` (a local wheelhouse, no index) build the env the command runs in."""
    from merlin.client import EnvironmentConfig

    monkeypatch.setenv("MERLIN_ENV_CACHE", str(tmp_path / "envcache"))
    env = EnvironmentConfig(pip_packages=("mlnprobe==2.0",), env_vars={"GREETING": "hello"}, options={"find_links": [str(wheelhouse)], "no_index": True})
    code = "import mlnprobe, os; print('version', mlnprobe.__version__, os.environ['GREETING'])"
    with LocalClient() as client:
        job = client.submit(JobRequest("with-env", Entrypoint.from_binary("python", ["-c", code]), environment=env))
        assert job.wait(timeout=300) == JobStatus.SUCCEEDED
        assert "version 2.0 hello" in job.logs()
        assert job.record().attempt.env_id and job.record().attempt.env_cache == "built"
