"""Ray over SSH for real: Debian's sshd on 127.0.0.1 (a free port) with a throwaway
host key and user key in a temp dir, started and stopped by the fixture."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from merlin.errors import BadInput
from tests.slurm_support import OBJECT_STORE, slurm_turn, wait_for  # noqa: F401  (fixture)

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
#: sshd listens on these loopback addresses: 127.0.0.1 for a lone head; a head on .2 with workers on .3 and .4
#: (a head on 127.0.0.1 cannot take workers: Ray keeps such a node single-machine)
ADDRESSES = ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4")


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[dict]:
    if not Path(SSHD).exists() or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        pytest.skip("openssh-server/openssh-client not installed (see .ci/run)")
    from merlin.clusters.net import free_ports

    d = tmp_path / "sshd"
    d.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_key")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "user_key")], check=True)
    shutil.copy(d / "user_key.pub", d / "authorized_keys")
    (port,) = free_ports(1)
    (d / "sshd_config").write_text(
        f"Port {port}\n{''.join(f'ListenAddress {a}' + chr(10) for a in ADDRESSES)}HostKey {d / 'host_key'}\nAuthorizedKeysFile {d / 'authorized_keys'}\n"
        f"PidFile {d / 'sshd.pid'}\nUsePAM no\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\nAllowTcpForwarding local\nX11Forwarding no\nPrintMotd no\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stdout=subprocess.DEVNULL, stderr=open(d / "sshd.log", "wb"))

    def listening() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0 or proc.poll() is not None

    wait_for(listening, 20, what="sshd listening")
    assert proc.poll() is None, (d / "sshd.log").read_text()
    host_pub = (d / "host_key.pub").read_text().split()
    (d / "known_hosts").write_text("".join(f"[{a}]:{port} {host_pub[0]} {host_pub[1]}\n" for a in ADDRESSES))
    (d / "empty_known_hosts").write_text("")
    try:
        yield {"port": port, "identity_file": str(d / "user_key"), "known_hosts": str(d / "known_hosts"), "dir": d}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_unknown_host_key_is_refused_in_one_line(sshd: dict, tmp_path: Path):
    from merlin.clusters.ssh import SshBackend
    from merlin.ledger.store import Ledger

    b = SshBackend(Ledger(tmp_path / "state"))
    with pytest.raises(BadInput) as exc:
        b.start("s", host="127.0.0.1", port=sshd["port"], identity_file=sshd["identity_file"], known_hosts=str(sshd["dir"] / "empty_known_hosts"))
    msg = exc.value.message if hasattr(exc.value, "message") else str(exc.value)
    assert "Host key verification failed" in msg and "\n" not in msg
    assert Ledger(tmp_path / "state").read_cluster("s") is None  # nothing started, nothing recorded


@pytest.mark.slow
@pytest.mark.xdist_group("slurm")
def test_head_over_ssh_tunnel_run_stop_no_leftovers(slurm_turn: None, sshd: dict, tmp_path: Path):
    pytest.importorskip("ray")
    from merlin.clusters import procs
    from merlin.clusters.auth import headers_for
    from merlin.clusters.net import get_json, probe
    from merlin.clusters.ssh import SshBackend
    from merlin.controlplane import ControlPlane
    from merlin.ledger.store import Ledger

    root = tmp_path / "state"
    b = SshBackend(Ledger(root))
    opts = {k: sshd[k] for k in ("port", "identity_file", "known_hosts")}
    try:
        rec, started = b.start("remote", host="127.0.0.1", object_store_memory=OBJECT_STORE, **opts)
        assert started and rec.status == "active", rec.message
        assert rec.kind == "ssh" and "-L 127.0.0.1:" in rec.tunnel_command and "StrictHostKeyChecking=yes" in rec.tunnel_command
        tunnel = next(p for p in rec.processes if p.name == "tunnel")
        head = next(p for p in rec.processes if p.name.startswith("remote-head"))
        assert procs.alive(tunnel.pid, tunnel.start_ticks) and procs.alive(head.pid, head.start_ticks)
        assert procs.proc_info(head.pid).sid == head.pid  # the head's helper leads its own session
        assert probe(rec.address).state == "auth"  # token auth through the tunnel
        # the head stays on loopback (Ray would otherwise rewrite 127.0.0.1 to the machine's address)
        nodes = get_json(rec.address, "/api/v0/nodes?limit=10&detail=true", headers_for(rec.auth, rec.name))["data"]["result"]["result"]
        assert [n["node_ip"] for n in nodes if n["state"] == "ALIVE"] == ["127.0.0.1"]
        cp = ControlPlane(root)
        run = cp.submit(["python3", "-c", "print('over-ssh')"], target="ssh", workflow="smoke", engine="ray", cluster="remote")
        done = cp.wait(run.run_id, timeout=180)
        assert done.status.value == "succeeded", done.message
        assert "over-ssh" in cp.logs(run.run_id)
        members = {p.pid for p in procs.all_procs() if rec.temp_dir in procs.cmdline(p.pid)} | procs.descendants({head.pid})
        stopped = b.stop(rec, grace=3.0)
        assert stopped.status == "stopped", stopped.message
        assert not procs.alive(tunnel.pid, tunnel.start_ticks) and not procs.alive(head.pid, head.start_ticks)
        assert [p for p in members if procs.alive(p)] == []
        assert not Path(rec.temp_dir).exists()
        assert not Path(rec.state_dir).exists()  # the remote handshake dir and its token copy
    finally:
        signal.alarm(0)
        rec = Ledger(root).read_cluster("remote")
        if rec is not None and rec.status != "stopped":
            b.stop(rec, grace=2.0)


@pytest.mark.slow
@pytest.mark.xdist_group("slurm")
def test_workers_over_ssh_join_the_head_run_a_job_and_stop_leaves_no_recorded_process(slurm_turn: None, sshd: dict, tmp_path: Path):
    """--workers h1,h2: a head on 127.0.0.2 and two workers on .3 and .4, all sshd "hosts" on
    loopback, each node with its own handshake dir, temp dir and node IP; 1+2 Ray nodes, a run,
    and a stop that ends every recorded pid."""
    pytest.importorskip("ray")
    from merlin.clusters import procs
    from merlin.clusters.auth import headers_for
    from merlin.clusters.net import get_json
    from merlin.clusters.ssh import SshBackend
    from merlin.controlplane import ControlPlane
    from merlin.ledger.store import Ledger

    root = tmp_path / "state"
    b = SshBackend(Ledger(root))
    opts = {k: sshd[k] for k in ("port", "identity_file", "known_hosts")}
    try:
        rec, started = b.start("three", host="127.0.0.2", workers="127.0.0.3,127.0.0.4", object_store_memory=OBJECT_STORE, **opts)
        assert started and rec.status == "active", rec.message
        assert rec.nodes == ["127.0.0.2", "127.0.0.3", "127.0.0.4"] and rec.requested["nodes"] == 3
        nodes = get_json(rec.address, "/api/v0/nodes?limit=10&detail=true", headers_for(rec.auth, rec.name))["data"]["result"]["result"]
        assert sorted(n["node_ip"] for n in nodes if n["state"] == "ALIVE") == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
        assert len(set(rec.node_temp_dirs)) == 3 and len(set(rec.options["remote_dirs"])) == 3
        recorded = [p for p in rec.processes]
        assert sorted(p.name for p in recorded) == ["remote-head@127.0.0.2", "remote-worker@127.0.0.3", "remote-worker@127.0.0.4", "tunnel"]
        assert all(procs.alive(p.pid, p.start_ticks) for p in recorded)
        cp = ControlPlane(root)
        run = cp.submit(["python3", "-c", "print('three-nodes')"], target="ssh", workflow="smoke", engine="ray", cluster="three")
        done = cp.wait(run.run_id, timeout=180)
        assert done.status.value == "succeeded", done.message
        members = {p.pid for p in procs.all_procs() if any(d in procs.cmdline(p.pid) for d in rec.node_temp_dirs)}
        members |= procs.descendants({p.pid for p in recorded})
        assert len(members) >= 6, "three raylets and their agents at the least"
        stopped = b.stop(rec, grace=3.0)
        assert stopped.status == "stopped" and "not ended" not in stopped.message, stopped.message
        assert [p.pid for p in recorded if procs.alive(p.pid, p.start_ticks)] == []
        assert [p for p in members if procs.alive(p)] == []
        assert not any(Path(d).exists() for d in rec.node_temp_dirs + rec.options["remote_dirs"])
    finally:
        signal.alarm(0)
        rec = Ledger(root).read_cluster("three")
        if rec is not None and rec.status != "stopped":
            b.stop(rec, grace=2.0)


def test_a_head_on_127_0_0_1_with_workers_is_refused_before_anything_starts(tmp_path: Path):
    from merlin.clusters.ssh import SshBackend
    from merlin.ledger.store import Ledger

    with pytest.raises(BadInput) as exc:
        SshBackend(Ledger(tmp_path / "state")).start("s", host="127.0.0.1", workers="127.0.0.3")
    assert "`workers`" in str(exc.value) and "127.0.0.2" in str(exc.value) and exc.value.argument == "host"
    assert Ledger(tmp_path / "state").read_cluster("s") is None


@pytest.mark.slow
@pytest.mark.xdist_group("slurm")
def test_a_run_whose_ssh_head_is_killed_is_retried_on_the_head_its_keeper_starts_again(slurm_turn: None, sshd: dict, tmp_path: Path):
    """Issue 17, on SSH: SIGKILL of the head's GCS and raylet on its host under a run with a preemption
    budget. A look asks the host over ssh (``merlin.clusters.ssh alive``): its GCS and raylet are gone,
    so the run is lost, and its keeper starts the cluster again as recorded (what was left of it ended
    first: the tunnel, the helper's remains) and retries the run there. Before, an SSH head that did
    not answer was waited for, and the run stayed ``running`` ("could not observe")."""
    pytest.importorskip("ray")
    import sys

    from merlin.clusters import procs
    from merlin.controlplane import ControlPlane
    from merlin.ledger import RunStatus

    root = tmp_path / "state"
    cp = ControlPlane(root)
    opts = {k: sshd[k] for k in ("port", "identity_file", "known_hosts")}
    try:
        rec, started = cp.start_cluster("ssh", "sk", host="127.0.0.1", object_store_memory=OBJECT_STORE, **opts)
        assert started and rec.status == "active", rec.message
        marker = tmp_path / "started"
        code = "import pathlib, sys, time; p = pathlib.Path(sys.argv[1]); first = not p.exists(); p.write_text('x'); time.sleep(600 if first else 0)"
        run = cp.submit([sys.executable, "-c", code, str(marker)], target="demo", workflow="sk", engine="ray", cluster="sk",
                        max_retries_preemption=1, retry_backoff=0.5)  # fmt: skip
        wait_for(lambda: cp.status(run.run_id).status == RunStatus.RUNNING and marker.exists(), 180, what="the first attempt to run")
        # the head's host is this machine (loopback): its GCS and raylet are the ones naming its temp dir
        head = [p for p in procs.all_procs() if p.name in ("gcs_server", "raylet") and rec.temp_dir in procs.cmdline(p.pid)]
        assert sorted(p.name for p in head) == ["gcs_server", "raylet"], head
        procs.signal_pids([p.pid for p in head], signal.SIGKILL)
        done = cp.wait(run.run_id, timeout=300)
        assert done.status == RunStatus.SUCCEEDED, (done.message, [(a.status, a.error_message) for a in done.attempts])
        assert [a.status for a in done.attempts] == [RunStatus.LOST, RunStatus.SUCCEEDED]
        assert done.attempts[0].failure_class == "infrastructure", done.attempts[0]
        causes = [e.cause for e in cp.events(run.run_id)]
        assert any(c.startswith("automatic retry after lost") and "GCS and raylet are gone" in c for c in causes), causes
        again = cp.ledger.read_cluster("sk")
        assert again.status.value == "active" and not {p.pid for p in again.processes} & {p.pid for p in rec.processes}, "a fresh head and tunnel"
        assert not any(procs.alive(p.pid, p.start_ticks) for p in rec.processes if p.name == "tunnel"), "the old tunnel ended"
        assert any("the retry keeper starts it again as recorded" in c for c in causes), causes
    finally:
        signal.alarm(0)
        from merlin.clusters.ssh import SshBackend
        from merlin.ledger.store import Ledger

        last = Ledger(root).read_cluster("sk")
        if last is not None and last.status != "stopped":
            SshBackend(Ledger(root)).stop(last, grace=2.0)


def test_what_a_lost_run_left_on_another_host_is_found_over_ssh_and_ended(sshd: dict, tmp_path: Path):
    """Issue 20: a run's processes on a host that is not this machine are searched for there (``python -m
    merlin.clusters.ssh orphans``, over ssh) by the ``MERLIN_RUN_ID`` in their environment, and ended; the
    processes of other runs stay; a host that does not answer is named, not waited for."""
    import sys
    from types import SimpleNamespace

    from merlin.clusters.ssh import SshBackend
    from merlin.ledger.store import Ledger

    opts = {k: sshd[k] for k in ("port", "identity_file", "known_hosts")}
    b = SshBackend(Ledger(tmp_path / "state"))

    def start_on(host: str, run_id: str) -> int:
        cmd = f"MERLIN_RUN_ID={run_id} setsid sleep 600 </dev/null >/dev/null 2>&1 & echo $!"
        return int(b.run(opts, host, cmd, timeout=30).stdout.decode().strip())

    lost, other = start_on("127.0.0.3", "lost-run-1"), start_on("127.0.0.4", "other-run-1")
    try:
        rec = SimpleNamespace(nodes=["127.0.0.3", "127.0.0.4", "127.0.0.9"], options={**opts, "python": sys.executable}, state_dir=str(tmp_path))
        ended, stuck = b.end_run_processes(rec, ["lost-run-1"], grace=1.0, timeout=10.0)
        # found where it runs (the hosts are asked at once, and both are this machine here: either may find it)
        assert ended in ([f"127.0.0.3:{lost}"], [f"127.0.0.4:{lost}"], [f"127.0.0.3:{lost}", f"127.0.0.4:{lost}"]), (ended, stuck)
        assert len(stuck) == 1 and stuck[0].startswith("127.0.0.9: ssh 127.0.0.9 failed"), stuck  # sshd does not listen there
        wait_for(lambda: not psutil.pid_exists(lost) or psutil.Process(lost).status() == psutil.STATUS_ZOMBIE, 10, what="the lost run's process to end")
        assert psutil.Process(other).status() != psutil.STATUS_ZOMBIE  # another run's process stays
    finally:
        for pid in (lost, other):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
