"""Ray over SSH for real: Debian's sshd on 127.0.0.1 (a free port) with a throwaway
host key and user key in a temp dir, started and stopped by the fixture."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from merlin.errors import BadInput
from tests.slurm_support import OBJECT_STORE, slurm_turn, wait_for  # noqa: F401  (fixture)

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


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
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\nAuthorizedKeysFile {d / 'authorized_keys'}\n"
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
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
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
