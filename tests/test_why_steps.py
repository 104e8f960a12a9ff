"""Next steps as data in every condition, rendered by the front ends: a cluster that is not
active is started again as it was recorded (its kind and options, not `start-local`), and
every action `jobs why` uses has a CLI spelling."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cli_runner import run_cli
from merlin.cli.nextsteps import command, condition_lines
from merlin.controlplane import ControlPlane
from merlin.nextsteps import Action, step


def _stopped_slurm(cp: ControlPlane, name: str = "lab") -> None:
    from merlin.ledger.models import ClusterAuth, ClusterPorts, ClusterRecord

    cp.ledger.write_cluster(ClusterRecord(
        name=name, kind="slurm", status="stopped", host="127.0.0.1", address="", dashboard_url="", temp_dir="",
        ports=ClusterPorts(gcs=0, dashboard=0), auth=ClusterAuth(mode="token", token_file="/nonexistent"),
        requested={"nodes": 2}, options={"nodes": 2, "time": "1:00:00", "partition": "debug", "idle_timeout": 3600.0, "sbatch_args": ["--exclusive"]},
        scheduler_job_id="7", stop_reason="stopped by merlin", message="stopped",
    ))  # fmt: skip


def test_a_stopped_slurm_cluster_is_started_again_as_slurm_with_its_options(tmp_path: Path) -> None:
    cp = ControlPlane(tmp_path / "state")
    _stopped_slurm(cp)
    run = cp.submit([sys.executable, "-c", "pass"], target="hpc", workflow="w", engine="ray", cluster="lab")
    assert run.status.value == "blocked"
    conds = cp.why(run.run_id)
    assert [c["code"] for c in conds] == ["cluster_not_active", "run_blocked"]
    start, retry = conds[0]["next_steps"]
    assert start == {"action": "start_cluster", "args": {"name": "lab", "kind": "slurm", "options": {
        "nodes": 2, "time": "1:00:00", "partition": "debug", "idle_timeout": 3600.0, "sbatch_args": ["--exclusive"]}}}  # fmt: skip
    assert retry == {"action": "retry", "args": {"run_id": run.run_id}}
    assert command(start) == "merlin ray cluster start --kind slurm --name lab --nodes 2 --time 1:00:00 --partition debug --sbatch-arg --exclusive --idle-timeout 3600s"
    assert all("start-local" not in command(s) for c in conds for s in c["next_steps"])
    # the blocked run's own next steps say the same
    assert command(run.next_steps[0].model_dump()) == command(start)
    # the CLI: `jobs why` prints the hint and the commands under each condition; --json is the data
    res = run_cli("ray", "jobs", "why", run.run_id, "--state-root", str(cp.root))
    assert res.returncode == 0, res.stderr
    assert "[cluster/cluster_not_active] cluster lab is stopped" in res.stdout
    assert "next: merlin ray cluster start --kind slurm --name lab" in res.stdout and f"next: merlin ray jobs retry {run.run_id}" in res.stdout
    data = json.loads(run_cli("ray", "jobs", "why", run.run_id, "--json", "--state-root", str(cp.root)).stdout)["conditions"]
    assert data[0]["next_steps"][0]["args"]["kind"] == "slurm" and data[0]["hint"] and "next_step" not in data[0]


def test_conditions_validate_against_the_published_schema(tmp_path: Path) -> None:
    from merlin.ledger.models import Condition

    cp = ControlPlane(tmp_path / "state")
    _stopped_slurm(cp)
    run = cp.submit([sys.executable, "-c", "pass"], target="hpc", workflow="w", engine="ray", cluster="lab")
    for c in cp.why(run.run_id):
        assert Condition.model_validate(c).model_dump(mode="json") == c


def test_every_action_of_jobs_why_has_a_cli_spelling() -> None:
    rendered = [
        (step(Action.WHY, run_id="r1"), "merlin ray jobs why r1"),
        (step(Action.STOP_CLUSTER, name="lab"), "merlin ray cluster stop --name lab"),
        (step(Action.SCHEDULER_QUERY, argv=["squeue", "-j", "7", "-o", "%R"]), "squeue -j 7 -o %R"),
        (step(Action.LEASES_LIST), "merlin ray resources list"),
        (step(Action.LEASES_QUEUE), "merlin ray resources queue"),
        (step(Action.LEASE_WHY, lease_id="l1"), "merlin ray resources why l1"),
        (step(Action.RESERVE, bundles=["fpga:1,board=u250", "board:1"], priority=5), "merlin ray resources reserve fpga:1,board=u250 board:1 --priority 5"),
        (step(Action.RELEASE, lease_id="l1", force=True), "merlin ray resources release l1 --force --reason WHY"),
        (step(Action.ITEM_HEALTH, item="fpga-01", state="good"), "merlin ray resources health fpga-01 good --reason WHY"),
        (step(Action.DRAIN_ITEM, item="fpga-01", undo=True), "merlin ray resources drain fpga-01 --undo"),
        (step(Action.DEFINE_INVENTORY), "merlin ray resources define FILE"),
        (step(Action.START_CLUSTER, name="default", port=6379, resources={"fpga": 1}), "merlin ray cluster start-local --gcs-port 6379 --resource fpga=1"),
    ]
    assert [command(s) for s, _ in rendered] == [want for _, want in rendered]
    lines = condition_lines({"layer": "leases", "code": "lease_item_held", "message": "fpga-01 is held", "hint": "wait for it",
                             "next_steps": [rendered[0][0]]}, [])  # fmt: skip
    assert lines == ["[leases/lease_item_held] fpga-01 is held", "    wait for it", "    next: merlin ray jobs why r1"]


def test_an_error_carries_its_next_steps_and_the_cli_prints_them(tmp_path: Path) -> None:
    """Errors below cli/ keep a plain message and carry next_steps; the CLI spells them after the error line."""
    root = str(tmp_path / "state")
    res = run_cli("ray", "resources", "show", "lease-nope", "--state-root", root)
    assert res.returncode == 4
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith("lease lease-nope: no such lease; next: ") and "ray resources list" in line and "ray resources queue" in line
    doc = json.loads(run_cli("ray", "resources", "show", "lease-nope", "--json", "--state-root", root).stdout)
    assert doc["error"] == "lease lease-nope: no such lease" and doc["next_steps"] == [{"action": "leases_list", "args": {}}, {"action": "leases_queue", "args": {}}]
    none = run_cli("ray", "resources", "reserve", "fpga:1", "--state-root", root)
    assert none.returncode == 3 and "`" not in none.stderr.split("; next:")[0] and "ray resources define FILE" in none.stderr


def test_rays_cluster_report_is_read_with_its_resource_names_kept() -> None:
    """`GET /api/cluster_status` as Ray 2.60's dashboard sends it (captured from a local head with one
    firesim_fpga held and two jobs pending): dict keys are camel-cased by the dashboard, list contents not."""
    from merlin.engines.ray_api import ClusterLoad
    from merlin.engines.ray_why import infeasible

    sent = {"result": True, "msg": "Got cluster status.", "data": {"autoscalingStatus": "...", "autoscalingError": None, "clusterStatus": {
        "time": 1796173460.86, "loadMetricsReport": {
            "usage": {"memory": [0.0, 23580065792.0], "CPU": [0.0, 2.0], "objectStoreMemory": [0.0, 104857600.0], "firesimFpga": [1.0, 1.0]},
            "resourceDemand": [[{"firesim_fpga": 1.0}, 1], [{"nothere": 1.0}, 1]], "pgDemand": [], "requestDemand": [],
            "nodeTypes": [[{"node:__internal_head__": 1.0, "CPU": 2.0, "memory": 23580065792.0, "firesim_fpga": 1.0, "object_store_memory": 104857600.0}, 1]]}}}}  # fmt: skip
    load = ClusterLoad.from_json(sent)
    assert load.demands == [({"firesim_fpga": 1.0}, 1), ({"nothere": 1.0}, 1)] and load.reported_at == 1796173460.86
    assert load.usage["firesim_fpga"] == (1.0, 1.0) and load.usage["object_store_memory"] == (0.0, 104857600.0), "names mapped back"
    assert not infeasible({"firesim_fpga": 1.0}, load) and infeasible({"nothere": 1.0}, load) and not infeasible({}, load)
    assert ClusterLoad.from_json({}) == ClusterLoad(), "an autoscaler that reported nothing yet: no demands, nothing guessed"
