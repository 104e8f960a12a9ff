"""Runs on the real local 2-node Slurm (n1 on 127.0.0.11, n2 on 127.0.0.12; scripts/services start):
a TargetGen run reaches its outcome there, and inventory items attached to a node become that
node's Ray resources, so a leased run lands where the hardware is.

Everything is real: sbatch, srun steps, Ray heads and workers, the lease book, Ray jobs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, run_cli
from tests.slurm_support import OBJECT_STORE, slurm_root, slurm_turn, wait_for  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm")]

CAP = EXAMPLES / "x86_cpu_baseline" / "capability.yaml"
OVERLAY = sorted((CAP.parent / "overlays").glob("*.yaml"))[0]
# the entrypoint says which node it runs on: the node IP its nearest Ray ancestor (the job's
# supervisor, a Ray worker the node's raylet started) was given. Not ray.util.get_node_ip_address():
# with every "node" on one machine it answers the address this host uses towards the head's GCS.
WHERE = (
    "import sys,psutil\n"
    "ips = [a.split('=', 1)[1] for p in psutil.Process().parents() for a in p.cmdline() if a.startswith(('--node-ip-address=', '--node_ip_address='))]\n"
    "open(sys.argv[1], 'w').write(ips[0] if ips else 'none'); print('node-ip', ips[:1])"
)


def _start(root: Path, name: str) -> dict:
    """`merlin ray cluster start --kind slurm --nodes 2 --wait`, as a person would type it."""
    res = run_cli("ray", "cluster", "start", "--kind", "slurm", "--name", name, "--nodes", "2", "--object-store-memory", str(OBJECT_STORE),
                  "--wait", "--wait-timeout", "170s", "--json", "--state-root", str(root), timeout=200)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    rec = json.loads(res.stdout)["cluster"]
    assert rec["status"] == "active" and rec["kind"] == "slurm" and rec["nodes"] == ["n1", "n2"], rec["message"]
    return rec


def _ray_job(rec: dict, submission_id: str) -> dict:
    """The Slurm head's own account of a job (its jobs API, with the cluster's token)."""
    from merlin.clusters.auth import headers_for
    from merlin.clusters.net import get_json
    from merlin.ledger.models import ClusterAuth

    return get_json(rec["address"], f"/api/jobs/{submission_id}", headers_for(ClusterAuth(**rec["auth"]), rec["name"]))


def test_targetgen_execute_with_engine_ray_reaches_its_outcome_on_the_two_node_slurm_cluster(slurm_root: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    out = tmp_path / "targets"
    plan = run_cli("targetgen", "plan", str(CAP), "--overlay", str(OVERLAY), "--out-dir", str(out))
    assert plan.returncode == 0, plan.stderr
    crec = _start(slurm_root, "tg")
    res = run_cli("targetgen", "execute", str(CAP), "--overlay", str(OVERLAY), "--out-dir", str(out), "--engine", "ray", "--cluster", "tg",
                  "--wait", "--json", "--state-root", str(slurm_root), timeout=240)  # fmt: skip
    # the executor stops at its first operator question: the CLI exits with the executor's code
    assert res.returncode == 10, res.stdout + res.stderr
    run = json.loads(res.stdout)
    assert run["status"] == "succeeded" and run["outcome"] == "awaiting_operator", run["message"]
    assert run["engine"] == "ray" and run["source"] == "targetgen" and run["target"] == "x86_cpu_baseline"
    # it ran on the Slurm cluster: recorded against it, and its head's jobs API ran the job
    assert run["cluster"]["name"] == "tg" and run["cluster"]["gcs_address"] == crec["gcs_address"]
    assert run["cluster"]["gcs_address"].startswith(f"{crec['head_address']}:") and crec["head_address"] == "127.0.0.11"
    job = _ray_job(crec, run["attempts"][-1]["submission_id"])
    assert job["status"] == "SUCCEEDED" and "-m merlin targetgen execute --target-dir" in job["entrypoint"]
    from merlin.controlplane import ControlPlane

    cp = ControlPlane(slurm_root)
    logs = cp.logs(run["run_id"])
    assert "awaiting_operator" in logs and "review_target_spec" in logs
    state = json.loads((out / "x86_cpu_baseline" / "execution_state.json").read_text())
    assert state["tasks"], "the job advanced the bundle in the target dir"
    stopped = cp.stop_cluster("tg", grace=3.0)
    assert stopped.status == "stopped", stopped.message


def test_inventory_items_on_slurm_nodes_are_their_ray_resources_and_a_leased_run_lands_there(slurm_root: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    from merlin.controlplane import ControlPlane

    cp = ControlPlane(slurm_root)
    # one item named by its Slurm node name, one by its node's NodeAddr
    cp.leases.define([{"id": "fpga-01", "pool": "fpga", "host": "n2"}, {"id": "board-01", "pool": "board", "host": "127.0.0.11"}])
    crec = _start(slurm_root, "hw")
    assert crec["node_resources"] == {"n2": {"fpga": 1.0}, "n1": {"board": 1.0}}, crec["node_resources"]
    assert crec["resources"]["fpga"] == 1.0 and crec["resources"]["board"] == 1.0
    status = run_cli("ray", "cluster", "status", "--name", "hw", "--state-root", str(slurm_root))
    assert status.returncode == 0, status.stderr
    assert "fpga=1" in status.stdout and "on n2" in status.stdout and "board=1" in status.stdout

    where = tmp_path / "node-ip"
    res = run_cli("ray", "jobs", "submit", "--engine", "ray", "--cluster", "hw", "--lease", "fpga:1", "--target", "fpga", "--workflow", "where",
                  "--json", "--state-root", str(slurm_root), "--", sys.executable, "-c", WHERE, str(where), timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    run_id = json.loads(res.stdout)["run_id"]
    assert cp.ledger.read_request(run_id).resources == {"fpga": 1.0}, "the leased run asks Ray for the item's pool"
    done = cp.wait(run_id, timeout=180)
    assert done.status.value == "succeeded", done.message
    assert where.read_text() == "127.0.0.12"  # n2's NodeAddr: where the FPGA is
    job = _ray_job(crec, done.attempts[-1].submission_id)
    assert job["driver_agent_http_address"].startswith("http://127.0.0.12:"), job  # Ray's own account of where it ran
    # the run's waiter releases its lease once it saw the run end
    wait_for(lambda: all(x["state"] == "released" for x in cp.leases.all_leases()), 30, what="the run's lease released")
    stopped = cp.stop_cluster("hw", grace=3.0)
    assert stopped.status == "stopped", stopped.message
