"""Ray's own layer of `jobs why`, on a real throwaway Ray cluster with one `firesim_fpga`.

A first run holds the resource; a second asks for it through the engine (entrypoint
resources, no merlin lease), so Ray keeps it PENDING: `jobs why` shows
`ray_job_pending` with what Ray said, and the run starts once the first ends. A run
asking for a resource no node has is `ray_resource_infeasible`; a job whose
runtime_env is still being fetched is `ray_runtime_env_setup`."""

from __future__ import annotations

import json
import os
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_runner import run_cli
from merlin.controlplane import ControlPlane
from merlin.ledger.status import RunStatus

pytestmark = [pytest.mark.ray, pytest.mark.slow]

HOLD = "import os,sys,time; t=time.time()\nwhile not os.path.exists(sys.argv[1]) and time.time()-t<120: time.sleep(0.1)"


@pytest.fixture(scope="module")
def fpga(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A private local cluster whose node has one ``firesim_fpga``; stopped at the end. Starting and
    stopping it take the own-head slot; the tests only submit to it (shared turns)."""
    pytest.importorskip("ray")
    from tests.ray_fixtures import ray_turn, start_cluster

    root = tmp_path_factory.mktemp("why-ray") / "state"
    with ray_turn(request.config, own_head=True):
        cp, rec = start_cluster(root, "fpga", resources={"firesim_fpga": 1})
    assert rec.resources.get("firesim_fpga") == 1
    yield cp
    with ray_turn(request.config, own_head=True):
        cp.stop_cluster("fpga", grace=2.0, force=True)


def _until(pred, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.3)
    return pred()


def _writer(fifo: Path) -> int | None:
    """A write end of ``fifo`` once someone reads it (never blocks: ENXIO while no reader)."""
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return None


def _submit(cp: ControlPlane, gate: Path, **resources: float) -> str:
    rec = cp.submit([sys.executable, "-c", HOLD, str(gate)], target="fpga", workflow="why", engine="ray", cluster="fpga", resources=resources)
    assert rec.status == RunStatus.PENDING, rec.message
    return rec.run_id


def test_a_run_ray_keeps_pending_shows_what_ray_said_then_runs(fpga: ControlPlane, tmp_path: Path) -> None:
    cp = fpga
    gate = tmp_path / "go"
    first = _submit(cp, gate, firesim_fpga=1)
    assert _until(lambda: cp.status(first).status == RunStatus.RUNNING), cp.get(first).message
    assert cp.why(first) == [], "a running run: nothing holds it back, and Ray is not asked"
    second = _submit(cp, gate, firesim_fpga=1)

    def pending_with_demand():
        conds = cp.why(second)
        ray = [c for c in conds if c["code"] == "ray_job_pending"]
        return ray[0] if ray and any(d["shape"] == {"firesim_fpga": 1.0} for d in ray[0]["evidence"].get("pending_demands", [])) else None

    c = _until(pending_with_demand)  # the autoscaler reports every few seconds
    assert c is not None, cp.why(second)
    ev = c["evidence"]
    assert c["layer"] == "ray" and c["observed_at"] and ev["ray_reported_at"]
    assert ev["ray_status"] == "PENDING" and "waiting for resources" in ev["ray_message"], "Ray's own message, as Ray said it"
    assert ev["entrypoint_resources"] == {"firesim_fpga": 1.0} and ev["submission_id"].startswith(f"merlin-{second}-")
    assert ev["usage"]["firesim_fpga"] == {"used": 1.0, "total": 1.0}, "the first run holds the one slot"
    assert "firesim_fpga 1/1 in use" in c["message"] and c["hint"]
    assert {"action": "status", "args": {"run_id": second}} in c["next_steps"]
    assert [x["layer"] for x in cp.why(second)] == ["ray"], "no lease, an active cluster that has the resource: only Ray holds it"
    # the CLI: --json is the same data, the text names the layer and the commands; status shows the first reason
    res = run_cli("ray", "jobs", "why", second, "--json", "--state-root", str(cp.root))
    assert res.returncode == 0 and json.loads(res.stdout)["conditions"][0]["code"] == "ray_job_pending", res.stderr
    text = run_cli("ray", "jobs", "why", second, "--state-root", str(cp.root)).stdout
    assert "[ray/ray_job_pending] Ray keeps job" in text and f"ray jobs status {second}" in text, text
    status = run_cli("ray", "jobs", "status", second, "--state-root", str(cp.root)).stdout
    assert "ray/ray_job_pending" in status and f"ray jobs why {second}" in status, status
    gate.touch()  # the first ends: Ray starts the second
    for run_id in (first, second):
        assert cp.wait(run_id, timeout=120).status == RunStatus.SUCCEEDED, cp.logs(run_id)
    assert cp.why(second) == []


def test_a_resource_no_node_has_is_infeasible_on_both_layers(fpga: ControlPlane, tmp_path: Path) -> None:
    cp = fpga
    run = _submit(cp, tmp_path / "go", nothere=1)
    try:
        conds = _until(lambda: (cs := cp.why(run)) and any(c["code"] == "ray_resource_infeasible" for c in cs) and cs)
        assert conds, cp.why(run)
        codes = [c["code"] for c in conds]
        assert codes.index("cluster_resource_missing") < codes.index("ray_resource_infeasible") < codes.index("ray_job_pending"), codes
        (inf,) = [c for c in conds if c["code"] == "ray_resource_infeasible"]
        assert inf["evidence"]["entrypoint_resources"] == {"nothere": 1.0}
        assert inf["evidence"]["nodes"] and all("nothere" not in n["resources"] for n in inf["evidence"]["nodes"]), "the nodes Ray reports"
        assert {"action": "cancel", "args": {"run_id": run}} in inf["next_steps"]
        (miss,) = [c for c in conds if c["code"] == "cluster_resource_missing"]
        steps = [s["action"] for s in miss["next_steps"]]
        assert steps[:2] == ["stop_cluster", "start_cluster"] and miss["next_steps"][1]["args"]["resources"]["nothere"] == 1
    finally:
        cp.cancel(run)


def test_a_job_whose_runtime_env_is_being_fetched_is_runtime_env_setup(fpga: ControlPlane, tmp_path: Path) -> None:
    """A working_dir zip behind a FIFO: Ray's setup waits until the test writes it, then the job runs."""
    from merlin.clock import iso
    from merlin.clusters.auth import headers_for
    from merlin.engines import ray_api, ray_why

    cluster = fpga.ledger.read_cluster("fpga")
    api = ray_api.JobsApi(cluster.address, headers_for(cluster.auth, cluster.name))
    fifo = tmp_path / "wd.zip"
    os.mkfifo(fifo)
    sub = f"why-env-{os.getpid()}-{int(time.time())}"
    api.submit({"entrypoint": "true", "submission_id": sub, "runtime_env": {"working_dir": f"file://{fifo}", "env_vars": {"A": "1"}}})
    try:
        time.sleep(2.0)
        job = api.get_job(sub)
        assert job.status == "PENDING" and job.runtime_env_setup == ("working_dir",), job
        conds = ray_why.conditions("r1", sub, job, api.cluster_status(), {}, iso(time.time()), "fpga")
        assert [c["code"] for c in conds] == ["ray_runtime_env_setup", "ray_job_pending"]
        env = conds[0]
        assert env["evidence"]["runtime_env_fields"] == ["working_dir"] and "runtime environment" in env["evidence"]["ray_message"]
    finally:
        src = tmp_path / "src.zip"
        with zipfile.ZipFile(src, "w") as z:
            z.writestr("hello.txt", "hi")
        fd = _until(lambda: _writer(fifo), 30)  # Ray's setup has it open for reading: feed it
        assert fd, "Ray never opened the working_dir zip"
        os.set_blocking(fd, True)
        with os.fdopen(fd, "wb") as w:
            w.write(src.read_bytes())
    assert _until(lambda: api.get_job(sub).terminal, 60), api.get_job(sub)
    assert api.get_job(sub).status == "SUCCEEDED"
