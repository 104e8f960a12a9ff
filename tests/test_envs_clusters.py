"""Run environments on Ray-on-Slurm and Ray-over-SSH clusters (real sbatch, real sshd): two runs
pinned to mlnprobe 1.0 and 2.0 run at the same time, each on the node it was placed on, each with
its env built there by merlin's launcher (the interpreter recorded as the cluster's ``python``),
in the cache the cluster's ``env_cache`` names."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.slurm_support import OBJECT_STORE, slurm_root, slurm_turn, wait_for  # noqa: F401  (fixtures)
from tests.test_ssh_cluster import sshd  # noqa: F401  (fixture)
from tests.wheelhouse import runtime_for, wheelhouse  # noqa: F401  (fixture)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm")]
#: this module's end-to-end bound (seconds): a cluster start, two env builds, two runs, on a loaded machine
E2E = 900

# Prints mlnprobe's version, the env's prefix and the node it runs on (the --node-ip-address of its
# nearest ancestor: the node's raylet or its job supervisor; psutil is not in the env, so /proc),
# then waits for the other run's marker: both succeed only if they ran at the same time.
CODE = """
import os, sys, time, mlnprobe
def node():
    pid = os.getppid()
    while pid > 1:
        for a in open(f'/proc/{pid}/cmdline', 'rb').read().decode().split('\\0'):
            if a.startswith(('--node-ip-address=', '--node_ip_address=')):
                return a.split('=', 1)[1]
        pid = int(open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[1])
    return 'none'
me, other = sys.argv[1], sys.argv[2]
open(me, 'w').write('here')
line = f'version {mlnprobe.__version__} node {node()} prefix {sys.prefix}'
print(line, flush=True)
open(me + '.out', 'w').write(line)
t0 = time.monotonic()
while not os.path.exists(other):
    if time.monotonic() - t0 > 150:
        sys.exit('the other run never started while this one ran')
    time.sleep(0.2)
print('together', flush=True)
"""


def _pair(cp, cluster: str, wheels: Path, marks: Path, nodes: tuple[str, str]) -> list:
    marks.mkdir()
    runs = []
    for i, (version, node) in enumerate(zip(("1.0", "2.0"), nodes, strict=True)):
        me, other = marks / f"{i}", marks / f"{1 - i}"
        runs.append(cp.submit([
            "python", "-c", CODE, str(me), str(other)], target="envs", workflow="cluster", engine="ray", cluster=cluster,
            resources={f"node:{node}": 0.01}, runtime=runtime_for(wheels, f"mlnprobe=={version}"),
        ))  # fmt: skip
    return runs


def _log_or_why(cp, run_id: str) -> str:
    """The run's log for a failure message, or why there is none (a failure's message must not fail itself)."""
    from merlin.errors import MerlinError

    try:
        return cp.logs(run_id)
    except MerlinError as exc:
        return f"(no log: {exc.message})"


def _check(cp, runs: list, nodes: tuple[str, str], cache: Path) -> list[str]:
    done = [cp.wait(r.run_id, timeout=400) for r in runs]
    assert [d.status.value for d in done] == ["succeeded"] * 2, ([d.message for d in done], [_log_or_why(cp, r.run_id) for r in runs])

    # what each command saw, from the file it wrote (the shared filesystem), not Ray's job log
    outs = [(Path(str(r.command[3]) + ".out").read_text(), cp.logs(r.run_id)) for r in runs]
    for (text, log), version, node in zip(outs, ("1.0", "2.0"), nodes, strict=True):
        assert text.startswith(f"version {version} node {node} prefix {cache / 'envs'}"), (text, log)
    logs = [log for _t, log in outs]
    return logs


def test_v1_and_v2_at_once_on_the_two_node_slurm_cluster_each_on_its_own_node(slurm_root: Path, wheelhouse: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    from merlin.controlplane import ControlPlane

    signal.alarm(E2E)  # a start, two env builds and two runs: more than slurm_turn's usual bound
    cache = tmp_path / "shared-envs"
    res = run_cli("ray", "cluster", "start", "--kind", "slurm", "--name", "envs", "--nodes", "2", "--object-store-memory", str(OBJECT_STORE),
                  "--env-cache", str(cache), "--wait", "--wait-timeout", f"{E2E - 90}s", "--json", "--state-root", str(slurm_root), timeout=E2E - 60)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    rec = json.loads(res.stdout)["cluster"]
    assert rec["status"] == "active" and rec["nodes"] == ["n1", "n2"], rec["message"]
    assert rec["python"] == sys.executable and rec["env_cache"] == str(cache)
    cp = ControlPlane(slurm_root)
    nodes = ("127.0.0.11", "127.0.0.12")
    runs = _pair(cp, "envs", wheelhouse, tmp_path / "marks", nodes)
    _check(cp, runs, nodes, cache)
    # the job's entrypoint is the launcher with the recorded interpreter, the spec read from the shared state root
    req = cp.ledger.read_request(runs[0].run_id)
    assert req.runtime is not None and req.runtime.find_links == [str(wheelhouse)]
    assert {s.attempt.env_cache for s in (cp.status(r.run_id) for r in runs)} <= {"hit", "built"}
    stopped = cp.stop_cluster("envs", grace=3.0)
    assert stopped.status == "stopped", stopped.message


def _waits_while_its_env_builds_on_the_host(cp, wheels: Path, cache: Path) -> None:
    """An SSH host writes no report file here: the launcher's lines in the job's log say the env is
    building, so the run is ``waiting`` on it (not ``running``) until the command starts. The test
    holds the env's build lock in the host's cache (loopback: this filesystem), as another run's build would."""
    import time

    from merlin.control.runtime import prepare
    from merlin.envs.cache import EnvCache
    from merlin.envs.spec import env_id

    runtime = runtime_for(wheels, "mlnprobe==1.0")
    frozen, _ = prepare(cp, runtime)
    assert frozen is not None
    eid = env_id(frozen.model_dump(mode="json"))
    host = EnvCache(cache)
    lock = host.lock(eid)
    assert lock.try_acquire()
    host.write_state(eid, state="building", line="another run builds it", started_at=time.time())
    try:
        # on the head: Ray serves a job's log from there, and with both hosts on one machine (one hostname) only
        # the head's copy of a worker's job log (docs/clusters.md); on a silent log Ray's state stands (running)
        held = cp.submit(["python", "-c", "import mlnprobe; print('held', mlnprobe.__version__)"], target="envs", workflow="held", engine="ray",
                         cluster="sshenv", resources={"node:127.0.0.2": 0.01}, runtime=runtime)  # fmt: skip
        try:
            waiting = wait_for(lambda: (r := cp.status(held.run_id)).status.value == "waiting" and r.waiting_on == f"env {eid[:12]} building" and r,
                               240, what="the run waiting on its env")  # fmt: skip
        except AssertionError:
            r = cp.status(held.run_id)
            raise AssertionError((r.status, r.waiting_on, r.message, _log_or_why(cp, held.run_id))) from None
        assert "to build on the node: another run builds it" in waiting.message, waiting.message
        why = [c for c in cp.why(held.run_id) if c["code"] == "env_building"]
        assert why and "another run builds it" in why[0]["message"], cp.why(held.run_id)
    finally:
        lock.release()
    done = cp.wait(held.run_id, timeout=300)
    assert done.status.value == "succeeded" and "held 1.0" in cp.logs(held.run_id), (done.message, _log_or_why(cp, held.run_id))
    assert done.attempt.env_id == eid and done.attempt.env_cache == "built" and done.waiting_on is None
    moves = [(e.from_status, e.to_status) for e in cp.events(held.run_id) if e.event == "transition"]
    assert ("pending", "waiting") in moves and moves[-1][1] == "succeeded", moves  # running, unless it ended between two looks


def test_v1_and_v2_at_once_on_an_ssh_worker_spec_on_the_command_line(slurm_turn: None, sshd: dict, wheelhouse: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    from merlin.clusters.ssh import SshBackend
    from merlin.controlplane import ControlPlane
    from merlin.ledger.store import Ledger

    signal.alarm(E2E)
    root = tmp_path / "state"
    cache = tmp_path / "worker-envs"
    b = SshBackend(Ledger(root))
    opts = {k: sshd[k] for k in ("port", "identity_file", "known_hosts")}
    try:
        rec, started = b.start("sshenv", host="127.0.0.2", workers="127.0.0.3", object_store_memory=OBJECT_STORE, env_cache=str(cache), **opts)
        assert started and rec.status == "active", rec.message
        assert rec.python == sys.executable and rec.env_cache == str(cache)
        cp = ControlPlane(root)
        _waits_while_its_env_builds_on_the_host(cp, wheelhouse, cache)
        nodes = ("127.0.0.3", "127.0.0.3")  # both on the worker
        runs = _pair(cp, "sshenv", wheelhouse, tmp_path / "marks", nodes)
        _check(cp, runs, nodes, cache)
        # the record names each run's env, though Ray serves only the head's part of an SSH job's log
        from merlin.envs.spec import env_id

        for r in runs:
            assert cp.status(r.run_id).attempt.env_id == env_id(cp.ledger.read_request(r.run_id).runtime.model_dump(mode="json")), r.run_id
        from merlin.clusters.auth import headers_for
        from merlin.clusters.net import get_json

        job = get_json(rec.address, f"/api/jobs/{cp.status(runs[0].run_id).attempt.submission_id}", headers_for(rec.auth, rec.name))
        # an SSH host need not see the state root: the spec rides on the command line (after the
        # exports of merlin's per-run values, MERLIN_STATE_ROOT among them, as in any run's environment)
        entry = job["entrypoint"]
        cmd = entry.split(" && ", 1)[1] if entry.startswith("export ") else entry
        assert "--spec-inline" in cmd and str(root) not in cmd, entry
        # and a working dir reaches it as a Ray package: the job starts in Ray's unpacked copy of the snapshot
        code = tmp_path / "code"
        code.mkdir()
        (code / "data.txt").write_text("as submitted\n")
        (code / "run.sh").write_text('#!/bin/sh\n{ cat data.txt; pwd; } > "$1"\n')
        (code / "run.sh").chmod(0o755)
        out = tmp_path / "marks" / "wd.out"
        wd = cp.submit(["./run.sh", str(out)], target="envs", workflow="wd", engine="ray", cluster="sshenv",
                       resources={"node:127.0.0.3": 0.01}, runtime={"working_dir": str(code)})  # fmt: skip
        (code / "data.txt").write_text("edited after submit\n")
        done = cp.wait(wd.run_id, timeout=120)
        assert done.status.value == "succeeded", (done.message, _log_or_why(cp, wd.run_id))
        seen, where = out.read_text().splitlines()
        assert seen == "as submitted" and where != str(code) and "_ray_pkg_" in where, (seen, where)
        job = get_json(rec.address, f"/api/jobs/{done.attempt.submission_id}", headers_for(rec.auth, rec.name))
        assert job["runtime_env"]["working_dir"].startswith("gcs://_ray_pkg_") and not job["entrypoint"].startswith("cd "), job
        stopped = b.stop(Ledger(root).read_cluster("sshenv"), grace=3.0)
        assert stopped.status == "stopped", stopped.message
    finally:
        signal.alarm(0)
        rec = Ledger(root).read_cluster("sshenv")
        if rec is not None and rec.status != "stopped":
            b.stop(rec, grace=2.0)


def test_v1_and_v2_at_once_on_the_pbs_contract_double_each_on_its_own_node(
    slurm_root: Path, wheelhouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PBS against the CONTRACT DOUBLE of qsub/qstat/qdel/pbsdsh (tests/doubles/pbs/, on the real
    local Slurm): proves merlin's PBS kind runs envs the same way; it is not a test against PBS."""
    pytest.importorskip("ray")
    from merlin.clusters.pbs import PbsBackend
    from merlin.controlplane import ControlPlane
    from merlin.ledger.store import Ledger

    signal.alarm(E2E)
    monkeypatch.setenv("PATH", f"{Path(__file__).parent / 'doubles' / 'pbs'}:{__import__('os').environ['PATH']}")
    cache = tmp_path / "pbs-envs"
    rec, started = PbsBackend(Ledger(slurm_root)).start(
        "pbsenv", select="2:ncpus=1", object_store_memory=OBJECT_STORE, env_cache=str(cache), wait=True, timeout=E2E - 60
    )
    assert started and rec.status == "active", rec.message
    assert rec.python == sys.executable and rec.env_cache == str(cache)
    cp = ControlPlane(slurm_root)
    nodes = ("127.0.0.11", "127.0.0.12")
    _check(cp, _pair(cp, "pbsenv", wheelhouse, tmp_path / "marks", nodes), nodes, cache)
    assert cp.stop_cluster("pbsenv", grace=3.0).status == "stopped"


# ------------------------------------------------------------ no cluster needed


def test_env_placement_by_kind() -> None:
    from merlin.clusters.registry import env_placement

    assert env_placement("slurm") == (True, None) and env_placement("pbs") == (True, None)  # the state root is shared: its cache beside it
    assert env_placement("ssh") == (False, "~/.cache/merlin/envs")  # each host its own
    assert env_placement("local") == (True, None)


@pytest.mark.parametrize("value", ["relative/envs", "envs"])
def test_a_relative_env_cache_is_refused_in_one_line_before_anything_starts(tmp_path: Path, value: str) -> None:
    root = tmp_path / "state"
    res = run_cli("ray", "cluster", "start", "--kind", "slurm", "--nodes", "2", "--env-cache", value, "--state-root", str(root))
    assert res.returncode == 2, res.stdout + res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--env-cache" in lines[0] and "$TMPDIR/merlin-envs" in lines[0], res.stderr
    assert not (root / "clusters").exists() or not any((root / "clusters").iterdir())


def test_local_kind_refuses_env_cache(tmp_path: Path) -> None:
    res = run_cli("ray", "cluster", "start", "--env-cache", "/x", "--state-root", str(tmp_path / "s"))
    assert res.returncode == 2 and "--env-cache" in res.stderr and "Traceback" not in res.stderr


def test_launcher_takes_the_spec_inline_and_expands_the_cache_on_the_node(tmp_path: Path, wheelhouse: Path) -> None:
    """What an SSH host runs: no spec file, no state root; ``$VAR`` in --cache expands there."""
    import os
    import subprocess

    from merlin.envs.argv import launcher_argv
    from merlin.ledger.paths import Layout

    layout = Layout(tmp_path / "state")
    argv = launcher_argv(layout, "r-1", 1, runtime_for(wheelhouse, "mlnprobe==2.0"), cache="$NODE_SCRATCH/merlin-envs", inline=True)
    assert "--spec-inline" in argv and "--report" not in argv and str(layout.root) not in " ".join(argv[argv.index("--spec-inline") :])
    code = "import mlnprobe, sys; print(mlnprobe.__version__, sys.prefix)"
    res = subprocess.run(
        [*argv, "python", "-c", code], capture_output=True, text=True, env={**os.environ, "NODE_SCRATCH": str(tmp_path / "scratch")}, timeout=300
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("2.0 " + str(tmp_path / "scratch" / "merlin-envs" / "envs")), res.stdout
