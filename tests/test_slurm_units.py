"""Slurm pieces without a scheduler: parsers against recorded outputs (tests/data/slurm,
captured from the local Slurm 22.05.8), merlin's batch script, option checks and port blocks."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from merlin.clusters import slurm_node
from merlin.clusters.slurm import (
    SchedJob,
    SlurmBackend,
    _job,
    expand_hostlist,
    parse_squeue_lines,
    render_sbatch,
)
from merlin.errors import BadInput
from tests.slurm_support import BARE_STOP

DATA = Path(__file__).parent / "data" / "slurm"


# Oracles for the recorded outputs (merlin itself reads squeue's line form only).
def parse_squeue_json(data: dict[str, Any]) -> dict[str, SchedJob]:
    """``squeue --json`` (openapi v0.0.38, Slurm 22.05) -> job id -> :class:`SchedJob`."""

    out = {}
    for j in data.get("jobs") or []:
        jid = str(j.get("job_id"))
        state = j.get("job_state") or "UNKNOWN"
        end = j.get("end_time")
        end_s = datetime.fromtimestamp(end, UTC).isoformat() if isinstance(end, (int, float)) and end > 0 else None
        out[jid] = _job(jid, state, j.get("state_reason") or "", j.get("nodes") or "", end_s)
    return out


def parse_scontrol_oneline(text: str) -> dict[str, str]:
    """``scontrol show node|job -o NAME``: ``Key=Value`` words -> dict (values may not contain spaces)."""
    out: dict[str, str] = {}
    for word in text.split():
        if "=" in word:
            key, value = word.split("=", 1)
            out.setdefault(key, value)
    return out


def test_squeue_json_gives_state_reason_and_nodes():
    jobs = parse_squeue_json(json.loads((DATA / "squeue.json").read_text()))
    assert jobs["3"].phase == "pending" and jobs["3"].reason == "PartitionConfig"
    assert jobs["4"].phase == "running" and jobs["4"].nodes == ["n1", "n2"]
    assert jobs["4"].end_time is not None and jobs["3"].end_time is None


def test_squeue_format_lines_match_the_json_view():
    lines = parse_squeue_lines((DATA / "squeue-o.txt").read_text())
    js = parse_squeue_json(json.loads((DATA / "squeue.json").read_text()))
    # the JSON capture also holds two jobs cancelled just before (squeue -o was filtered to live ones)
    assert js["1"].phase == "ended" and js["1"].cancelled
    assert {k: (v.phase, v.reason, v.nodes) for k, v in lines.items()} == {k: (js[k].phase, js[k].reason, js[k].nodes) for k in lines}


def test_ended_states_say_why():
    jobs = parse_squeue_lines("7|TIMEOUT|TimeLimit|n1|2026-12-01T22:00:00\n8|CANCELLED|None|n1|N/A\n9|COMPLETING|None|n1|N/A\n10|NODE_FAIL|None|n2|N/A")
    assert jobs["7"].phase == "ended" and jobs["7"].walltime_hit and not jobs["7"].cancelled
    assert jobs["8"].cancelled and jobs["8"].reason == ""
    assert jobs["9"].phase == "ending"
    assert jobs["10"].phase == "ended" and not jobs["10"].cancelled and not jobs["10"].walltime_hit


def test_scontrol_oneline_node_addr():
    info = parse_scontrol_oneline((DATA / "scontrol-node-n2.txt").read_text())
    assert info["NodeName"] == "n2" and info["NodeAddr"] == "127.0.0.12" and info["RealMemory"] == "1000"
    job = parse_scontrol_oneline((DATA / "scontrol-job.txt").read_text())
    assert job["JobState"] in ("RUNNING", "PENDING") and "NumNodes" in job


@pytest.mark.parametrize(
    "text,expected",
    [("n[1-2]", ["n1", "n2"]), ("gpu[01-03,07],cpu5", ["gpu01", "gpu02", "gpu03", "gpu07", "cpu5"]), ("", []), ("n1", ["n1"])],
)
def test_expand_hostlist(text, expected):
    assert expand_hostlist(text) == expected


def test_batch_script_head_first_workers_as_overlap_steps(tmp_path: Path):
    script = render_sbatch(
        name="c1",
        nodes=3,
        state_dir=tmp_path,
        node_cmd=["/venv/bin/python", "-m", "merlin.clusters.slurm_node", "--state-dir", str(tmp_path)],
        options={"time": "1:00:00", "partition": "gpu", "gpus_per_node": "2", "sbatch_args": ["--constraint=a100"]},
    )
    assert script.startswith("#!/bin/bash\n")
    for directive in ("--nodes=3", "--ntasks-per-node=1", "--time=1:00:00", "--partition=gpu", "--gpus-per-node=2", "--constraint=a100", f"--output={tmp_path}/job-%j.out"):
        assert f"#SBATCH {directive}" in script
    assert 'head --index 0 --node "${HOSTS[0]}" &' in script
    assert "srun --overlap --nodes=1 --ntasks=1" in script and "worker --index" in script
    assert script.rstrip().endswith("wait")
    # never the things merlin promises not to do
    assert not BARE_STOP.search(script) and "sleep" not in script and "0.0.0.0" not in script


def test_slurm_options_are_checked(tmp_path: Path):
    from merlin.ledger.store import Ledger

    b = SlurmBackend(Ledger(tmp_path))
    with pytest.raises(BadInput, match="`nodes` 0"):
        b.parse_options({"nodes": 0})
    with pytest.raises(BadInput, match="`partition`"):
        b.parse_options({"partition": "gpu\n#SBATCH --x"})
    with pytest.raises(BadInput, match="`sbatch_args`"):
        b.parse_options({"sbatch_args": ["constraint=a100"]})
    with pytest.raises(BadInput, match="does not take `select`"):
        b.parse_options({"select": "2:ncpus=1"})
    nodes, opts = b.parse_options({"nodes": 2, "mem": "4G", "sbatch_args": ["--exclusive"]})
    assert nodes == 2 and opts["mem"] == "4G" and opts["sbatch_args"] == ["--exclusive"]


def test_port_blocks_are_per_node_and_per_allocation():
    a0, a1 = slurm_node.node_ports(slurm_node.block_base("41", 2), 0), slurm_node.node_ports(slurm_node.block_base("41", 2), 1)
    ports0, ports1 = set(slurm_node.all_ports(a0)), set(slurm_node.all_ports(a1))
    assert not ports0 & ports1 and len(ports0) == len(slurm_node.NAMED) + slurm_node.WORKER_PORTS
    assert slurm_node.block_base("41", 2) != slurm_node.block_base("42", 2)
    for job in ("1", "99999", "123456789"):
        base = slurm_node.block_base(job, 8)
        assert slurm_node.BLOCK_LO <= base and base + 8 * slurm_node.PORTS_PER_NODE <= slurm_node.BLOCK_HI


def test_pick_ports_moves_off_a_busy_port():
    import socket

    for job in map(str, range(77, 177)):  # a job whose first GCS port nothing else holds now (tests run beside Ray)
        first = slurm_node.node_ports(slurm_node.block_base(job, 1), 0)
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", first["gcs"]))
            except OSError:
                continue
            s.listen()
            picked = slurm_node.pick_ports(job, 1, 0, "127.0.0.1")
        assert picked["gcs"] != first["gcs"]
        return
    pytest.fail("no job id's first GCS port was free to hold")


def test_node_temp_dir_keeps_ray_socket_paths_short():
    # the longest socket Ray puts there: <temp>/session_<date>_<time>_<us>_<pid>/sockets/plasma_store
    temp = "/tmp/mrl-123456789012-15"
    sock = f"{temp}/session_2026-12-01_22-09-04_562424_4194304/sockets/plasma_store"
    assert len(sock) < 107


def test_idle_watchdog_counts_active_runs_and_leases(tmp_path: Path):
    runs = tmp_path / "runs"
    for rid, status, cluster in (("a", "running", "c1"), ("b", "succeeded", "c1"), ("c", "pending", "other")):
        (runs / rid).mkdir(parents=True)
        (runs / rid / "run_record.json").write_text(json.dumps({"status": status, "cluster": {"name": cluster}}))
    assert slurm_node.active_runs(tmp_path, "c1") == 1
    (runs / "a" / "run_record.json").write_text(json.dumps({"status": "succeeded", "cluster": {"name": "c1"}}))
    assert slurm_node.active_runs(tmp_path, "c1") == 0
    (tmp_path / "resources" / "leases").mkdir(parents=True)
    (tmp_path / "resources" / "leases" / "l1.json").write_text(json.dumps({"cluster": "c1", "status": "active"}))
    assert slurm_node.active_runs(tmp_path, "c1") == 1


def test_jobs_why_scheduler_layer_names_the_pending_reason(tmp_path):
    """A queued Slurm/PBS allocation: one scheduler condition with the reason and a next step;
    an active or local cluster: none."""
    from merlin.clusters.local import LocalBackend
    from merlin.clusters.pbs import PbsBackend
    from merlin.clusters.slurm import SlurmBackend
    from merlin.clusters.why import hold_conditions
    from merlin.ledger import Ledger
    from merlin.ledger.models import ClusterAuth, ClusterPorts, ClusterRecord

    ledger = Ledger(tmp_path)
    slurm_b, pbs_b, local_b = SlurmBackend(ledger), PbsBackend(ledger), LocalBackend(ledger)

    def rec(kind: str, status: str, reason: str | None) -> ClusterRecord:
        return ClusterRecord(name="c", kind=kind, status=status, host="127.0.0.1", address="", dashboard_url="", temp_dir="",
                             ports=ClusterPorts(gcs=0, dashboard=0), auth=ClusterAuth(mode="token", token_file="/x"),
                             scheduler_job_id="42", scheduler_reason=reason, requested={"nodes": 3})  # fmt: skip

    (slurm,) = hold_conditions(slurm_b, rec("slurm", "queued", "PartitionConfig"), "now")
    assert slurm["layer"] == "scheduler" and slurm["code"] == "scheduler_queued"
    assert "Slurm job 42 is still queued: PartitionConfig" in slurm["message"] and "fewer nodes" in slurm["hint"]
    assert slurm["next_steps"] == [{"action": "scheduler_query", "args": {"argv": ["squeue", "-j", "42", "-o", "%R"]}},
                                   {"action": "stop_cluster", "args": {"name": "c"}}]  # fmt: skip
    assert slurm["evidence"]["requested"] == {"nodes": 3}
    (pbs,) = hold_conditions(pbs_b, rec("pbs", "queued", "Not Running: Insufficient amount of resource: ncpus"), "now")
    assert "PBS job 42" in pbs["message"] and "Insufficient amount" in pbs["message"]
    assert pbs["next_steps"][0] == {"action": "scheduler_query", "args": {"argv": ["qstat", "-f", "42"]}}
    assert hold_conditions(slurm_b, rec("slurm", "active", None), "now") == []
    assert hold_conditions(local_b, rec("local", "queued", "x"), "now") == [], "a kind without a scheduler has no scheduler layer"


def _slurm_record(root: Path, name: str, minutes_left: float):
    from datetime import datetime, timedelta

    from merlin.ledger.models import ClusterAuth, ClusterPorts, ClusterRecord
    from merlin.ledger.store import Ledger

    rec = ClusterRecord(name=name, kind="slurm", status="active", host="127.0.0.1", address="http://127.0.0.1:9", dashboard_url="http://127.0.0.1:9",
                        temp_dir="", ports=ClusterPorts(gcs=9, dashboard=9), auth=ClusterAuth(mode="token", token_file=str(root / "no-token")),
                        scheduler_job_id="77", requested={"nodes": 1}, walltime_end=datetime.now(UTC) + timedelta(minutes=minutes_left))  # fmt: skip
    Ledger(root).write_cluster(rec)
    return rec


def test_jobs_submit_warns_when_the_allocation_ends_before_the_run(tmp_path: Path):
    """The real CLI against a recorded Slurm cluster with 5 minutes left: --time 30m warns, --time 2m does not."""
    from tests.conftest import run_cli

    root = tmp_path / "state"
    _slurm_record(root, "hpc", minutes_left=5)
    base = ("ray", "jobs", "submit", "--target", "t", "--workflow", "w", "--engine", "ray", "--cluster", "hpc", "--state-root", str(root))
    long = run_cli(*base, "--time", "30m", "--", "true")
    assert "warning: cluster 'hpc' has 5 min left on its allocation (job 77" in long.stderr and "asks for 30 min" in long.stderr
    short = run_cli(*base, "--time", "2m", "--", "true")
    assert "warning" not in short.stderr
    bad = run_cli(*base, "--time", "soon", "--", "true")
    assert bad.returncode == 2 and "'--time': 'soon' is not a duration" in bad.stderr


def test_observation_past_the_walltime_expires_the_cluster(tmp_path: Path):
    """The observation path when the allocation is gone after its walltime (squeue no
    longer lists it): expired with reason "allocation ended (walltime)", which is the
    reason its live runs get when they are recorded lost."""
    from merlin.clusters.slurm import SlurmBackend
    from merlin.ledger.store import Ledger

    root = tmp_path / "state"
    rec = _slurm_record(root, "hpc", minutes_left=-1)
    ended = SlurmBackend(Ledger(root))._ended(rec, None)
    assert ended.status == "expired" and ended.stop_reason == "allocation ended (walltime)"
    assert "reached its time limit" in ended.message and ended.stopped_at is not None
    assert Ledger(root).read_cluster("hpc").status == "expired"


def test_a_node_helper_takes_the_items_whose_host_names_it(tmp_path: Path):
    """An item's host matches a node by its Slurm node name, its NodeAddr or the machine's hostname."""
    import socket

    path = tmp_path / slurm_node.HOSTED_ITEMS
    path.write_text(json.dumps({"n2": {"fpga": 2.0}, "127.0.0.12": {"board": 1.0}, "n1": {"gpu_box": 1.0}, socket.gethostname(): {"sim": 1.0}}))
    names = slurm_node.node_names("n2", "127.0.0.12")
    assert slurm_node.hosted_resources(str(path), names) == {"fpga": 2.0, "board": 1.0, "sim": 1.0}
    assert slurm_node.hosted_resources(str(path), {"n3", "127.0.0.13"}) == {}
    assert slurm_node.hosted_resources(None, names) == {} and slurm_node.hosted_resources(str(tmp_path / "absent"), names) == {}


def test_inventory_hosts_become_per_host_pool_counts(tmp_path: Path):
    from merlin.leases.book import LeaseBook
    from merlin.leases.runs import host_resources, resources_by_host

    book = LeaseBook(tmp_path / "state")
    book.define([
        {"id": "f1", "pool": "fpga", "host": "n2"}, {"id": "f2", "pool": "fpga", "host": "n2"},
        {"id": "b1", "pool": "board", "host": "127.0.0.11"}, {"id": "loose", "pool": "fpga"},
    ])  # fmt: skip
    assert resources_by_host(book) == {"n2": {"fpga": 2.0}, "127.0.0.11": {"board": 1.0}}
    assert host_resources(book, "n2") == {"fpga": 2.0} and host_resources(book, "n9") == {}


def test_the_record_names_each_node_by_its_custom_resources():
    from merlin.clusters.hosted import node_custom_resources

    alive = [
        {"node_ip": "127.0.0.11", "resources_total": {"CPU": 1.0, "memory": 1e9, "object_store_memory": 1e8, "node:127.0.0.11": 1.0, "node:__internal_head__": 1.0}},
        {"node_ip": "127.0.0.12", "resources_total": {"CPU": 1.0, "fpga": 1.0, "node:127.0.0.12": 1.0}},
    ]
    assert node_custom_resources(alive, {"127.0.0.11": "n1", "127.0.0.12": "n2"}) == {"n2": {"fpga": 1.0}}
    assert node_custom_resources(alive, {}) == {"127.0.0.12": {"fpga": 1.0}}



def _helper_with_stand_in_ray(tmp_path: Path, role: str, index: int, exit_code: int, patch: str, args: list[str]) -> tuple[Any, Path, int]:
    """Run the node helper's real code (``slurm_node.main``, in a process of its own: it installs signal
    handlers) with ``ray`` a stand-in that exits ``exit_code`` at once (a contract double, labelled so:
    Ray's own start-up failure cannot be made to happen on demand). ``patch``: more module lines to
    set first. Returns the finished process, the state dir and how many times ``ray`` was started."""
    import shutil
    import subprocess
    import sys

    state = tmp_path / "state"
    state.mkdir()
    tries = tmp_path / "tries"
    fake_ray = tmp_path / "ray"
    fake_ray.write_text(f"#!/bin/sh\necho x >> {tries}\nexit {exit_code}\n")
    fake_ray.chmod(0o755)
    code = (
        "import sys; from merlin.clusters import slurm_node as s\n"
        f"s.ray_bin = lambda: [{str(fake_ray)!r}]\n"
        "s.node_addr = lambda node: '127.0.0.1'\n"
        "s.allocation_resources = lambda node='': {'num_cpus': 1.0, 'num_gpus': 0.0}\n"
        f"{patch}\n"
        "sys.exit(s.main(sys.argv[1:]))"
    )
    job = role[0] + "".join(c for c in tmp_path.name if c.isalnum())[-8:]
    argv = [role, "--state-dir", str(state), "--index", str(index), "--node", f"n{role[0]}", "--job-id", job, *args]
    try:
        res = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60)
    finally:
        shutil.rmtree(Path("/tmp") / f"mrl-{job[:12]}-{index}", ignore_errors=True)  # the helper's node temp dir
    return res, state, tries.read_text().count("x") if tries.exists() else 0


def test_a_worker_whose_ray_start_keeps_failing_is_started_again_then_says_it_gave_up(tmp_path: Path) -> None:
    """The node helper's worker side (CI met a worker's `ray start` that missed Ray's 30 s registration on a
    loaded host, and merlin waited out its timeout), with a stand-in `ray` that exits 3: the helper starts
    the worker again JOIN_TRIES times, then writes ``failed`` into its handshake file (what merlin's wait
    reads to stop waiting) and exits with Ray's code."""
    res, state, tries = _helper_with_stand_in_ray(tmp_path, "worker", 1, 3, "s.JOIN_TRIES = 3", ["--nodes", "2", "--head", "127.0.0.1:9"])
    assert res.returncode == 3 and tries == 3, (res.returncode, res.stderr)
    assert "gave up" in res.stderr and res.stderr.count("starting it again") == 2
    node = json.loads((state / "node-1.json").read_text())
    assert node["failed"].startswith("its `ray start` exited 3 3 times without joining the head") and str(state) in node["failed"]


def test_a_head_whose_ray_start_keeps_exiting_is_started_again_then_says_it_did_not_come_up(tmp_path: Path) -> None:
    """The node helper's head side (CI met an SSH head whose `ray start` missed Ray's 30 s registration
    twice in a row on a loaded host), with a stand-in `ray` that exits 1: the helper starts the head
    HEAD_TRIES times in all, then says the words merlin's SSH wait stops on."""
    from merlin.clusters.ssh import GAVE_UP

    res, state, tries = _helper_with_stand_in_ray(tmp_path, "head", 0, 1, "s.head_ready = lambda port, token: False", ["--nodes", "1"])
    assert res.returncode == 1 and tries == slurm_node.HEAD_TRIES == 3, (res.returncode, res.stderr)
    assert res.stderr.count("starting it again") == 2 and any(words in res.stderr for words in GAVE_UP), res.stderr
    assert not (state / "head.json").exists()


def test_ended_cannot_tell_when_the_scheduler_cannot_be_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Ray engine asks a batch backend whether an unreachable cluster's allocation ended
    (`ended`); with the scheduler's commands missing (or slurmctld down) the answer is "cannot tell",
    so a look at the run says it could not observe it, never a scheduler error."""
    from merlin.clusters.base import unanswered_record
    from merlin.clusters.slurm import SlurmBackend
    from merlin.ledger.store import Ledger

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no squeue
    ledger = Ledger(tmp_path / "state")
    rec = unanswered_record("gone", "slurm", "active", str(tmp_path / "token"), scheduler_job_id="4242", state_dir=str(tmp_path / "sd"))
    with ledger.cluster_lock("gone"):
        ledger.write_cluster(rec)
    assert SlurmBackend(ledger).ended(rec) is None
    assert ledger.read_cluster("gone").status == "active"  # nothing recorded from a question nobody answered


def test_a_head_that_does_not_answer_asks_its_scheduler_at_most_once_every_ten_seconds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While a Slurm head does not answer but its allocation runs (a slow head), every look at one of its
    runs asked ``squeue``: a waiter polling twice a second asked twice a second. One engine now asks at most
    once every ``ASK_EVERY`` seconds per cluster. ``squeue`` here is a CONTRACT DOUBLE (it counts its
    calls and says the job runs, in the format ``squeue -o SQUEUE_FORMAT`` prints)."""
    import os

    from merlin.clusters.base import unanswered_record
    from merlin.engines import ray_local
    from merlin.engines.ray_engine import RayEngine
    from merlin.ledger.store import Ledger

    bindir, calls = tmp_path / "bin", tmp_path / "calls"
    bindir.mkdir()
    (bindir / "squeue").write_text(f"#!/bin/sh\necho asked >> {calls}\necho '4242|RUNNING|None|n1|2099-01-01T00:00:00'\n")
    (bindir / "squeue").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    ledger = Ledger(tmp_path / "state")
    rec = unanswered_record("slow", "slurm", "active", str(tmp_path / "token"), scheduler_job_id="4242", state_dir=str(tmp_path / "sd"))
    with ledger.cluster_lock("slow"):
        ledger.write_cluster(rec)
    engine = RayEngine(ledger)
    assert [engine._dead(rec) for _ in range(5)] == [None] * 5  # it may come back: not dead
    assert calls.read_text().splitlines() == ["asked"]
    monkeypatch.setattr(ray_local, "ASK_EVERY", 0.0)  # the interval passed
    assert engine._dead(rec) is None and len(calls.read_text().splitlines()) == 2


def test_a_failed_ray_start_is_cleaned_up_before_the_next_try(tmp_path: Path) -> None:
    """``ray start`` that fails (Ray's fixed 30 s "node timed out during startup" on a loaded host) can
    leave its GCS and raylet running, reparented to init, on the ports the next try takes: the node
    helper ends whatever names the node's temp dir first (``slurm_node.end_remains``)."""
    import subprocess
    import sys

    from merlin.clusters import procs, slurm_node

    temp_dir = tmp_path / "mrl-test-0"
    other = tmp_path / "mrl-test-1"
    left = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", f"--log_dir={temp_dir}/session_x/logs"])
    keep = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", f"--log_dir={other}/session_x/logs"])
    try:
        assert slurm_node.end_remains(temp_dir) == 1
        assert left.wait(timeout=10) is not None and keep.poll() is None  # another node's processes stay
        assert slurm_node.end_remains(temp_dir) == 0
    finally:
        for p in (left, keep):
            p.kill()
            p.wait()
        assert not procs.alive(left.pid)
