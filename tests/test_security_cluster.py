"""Issue 9 section 1: a local cluster is not an open door.

Real clusters on free ports, started in the test and stopped in a finally:
token auth is on by default, every socket the cluster's processes listen on is
bound to loopback (measured with psutil), and a job POST without the token is
refused on every HTTP port the cluster opened, the dashboard agent's
``/api/job_agent/jobs/`` included.
"""

from __future__ import annotations

import http.client
import json
import stat
import urllib.request
from pathlib import Path

import pytest

from cli_runner import run_cli
from merlin.clusters.exposure import is_loopback
from merlin.clusters.net import free_ports
from merlin.controlplane import ControlPlane
from ray_fixtures import OBJECT_STORE

pytestmark = [pytest.mark.ray, pytest.mark.slow]

JOB_PATHS = ("/api/jobs/", "/api/job_agent/jobs/")


def start(root: Path, name: str, *extra: str):
    port, dash = free_ports(2)
    return run_cli("ray", "cluster", "start-local", "--name", name, "--port", str(port), "--dashboard-port", str(dash),
                   "--num-cpus", "1", "--object-store-memory", str(OBJECT_STORE), "--state-root", str(root), *extra,
                   "--json", timeout=240)


def post_job(port: int, path: str, marker: Path) -> int | None:
    """POST a job with no token; the HTTP status, or None if the port does not speak HTTP/1 (gRPC)."""
    body = json.dumps({"entrypoint": f"touch {marker}"})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        return conn.getresponse().status
    except (http.client.HTTPException, OSError):
        return None
    finally:
        conn.close()


def test_default_cluster_is_token_protected_and_loopback_only(ray_cluster, ray_cp: ControlPlane, tmp_path: Path) -> None:
    """Measured on the session cluster: it is started with the defaults (token auth,
    loopback), so a head of its own would only cost the suite another Ray start."""
    root = ray_cluster.state_root
    name = ray_cluster.name
    rec = json.loads(Path(ray_cluster.record_path).read_text())
    # token auth by default, token generated once, 0600 in a 0700 directory of the state root
    assert rec["auth"]["mode"] == "token"
    token_file = Path(rec["auth"]["token_file"])
    assert root in token_file.parents
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700

    status = run_cli("ray", "cluster", "status", "--name", name, "--state-root", str(root), "--json")
    assert status.returncode == 0, status.stderr
    assert "without token authentication" not in status.stderr and "reachable from other machines" not in status.stderr
    st = json.loads(status.stdout)
    sockets = st["sockets"]
    ports = rec["ports"]
    listening = {s["port"] for s in sockets}
    # the services that matter are there, and measured: GCS, jobs API, the agent's HTTP job API, the raylet
    for key in ("gcs", "dashboard", "dashboard_agent_listen", "node_manager", "object_manager", "runtime_env_agent"):
        assert ports[key] in listening, (key, sockets)
    # every listening socket of every cluster process is on loopback
    assert all(is_loopback(s["bound_to"]) for s in sockets), sockets
    assert st["exposed"] == []

    # no token: every HTTP port refuses a job; gRPC ports do not speak HTTP/1 at all
    marker = tmp_path / "pwned"
    http_ports = {}
    for port in sorted(listening):
        codes = {path: post_job(port, path, marker) for path in JOB_PATHS}
        if any(c is not None for c in codes.values()):
            http_ports[port] = codes
    assert ports["dashboard"] in http_ports and ports["dashboard_agent_listen"] in http_ports, http_ports
    metrics_ports = {ports[k] for k in ("metrics_export", "autoscaler_metrics", "dashboard_metrics")}
    for port, codes in http_ports.items():
        for path, code in codes.items():
            if port in metrics_ports:  # Prometheus endpoints: GET /metrics only (read-only), no job API
                assert code == 405, (port, path, code)
            else:
                assert code in (401, 403), (port, path, code)
    assert set(http_ports) - metrics_ports == {ports["dashboard"], ports["dashboard_agent_listen"], ports["runtime_env_agent"]}
    assert http_ports[ports["dashboard_agent_listen"]]["/api/job_agent/jobs/"] == 401
    assert not marker.exists()

    # merlin's own client sends the token: a run goes through
    run = ray_cp.submit(["echo", "with-token"], target="sec", workflow="auth", engine="ray", wait=True, timeout=120)
    assert run.status.value == "succeeded", run.message
    assert "with-token" in ray_cp.logs(run.run_id)
    # and the token itself authorises an HTTP call (so the 401s above were about the token)
    req = urllib.request.Request(rec["address"] + "/api/version", headers={"Authorization": f"Bearer {token_file.read_text().strip()}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200


@pytest.mark.ray_own_head  # starts a head of its own
def test_auth_none_is_an_explicit_opt_out_with_a_warning(cluster_root: Path) -> None:
    root = cluster_root
    res = start(root, "open", "--auth", "none")
    try:
        assert res.returncode == 0, res.stderr
        rec = json.loads(res.stdout)["cluster"]
        assert rec["auth"]["mode"] == "disabled" and rec["auth"]["token_file"] is None
        warning = " ".join(res.stderr.split())
        assert "auth none: Ray token authentication is OFF" in warning
        assert f"jobs API on port {rec['ports']['dashboard']}" in warning and "dashboard agent's job API" in warning
        # the opt-out is real: the jobs API answers without a token (on loopback only)
        with urllib.request.urlopen(rec["address"] + "/api/version", timeout=5) as resp:
            assert resp.status == 200
        status = run_cli("ray", "cluster", "status", "--name", "open", "--state-root", str(root))
        assert status.returncode == 0 and "without token authentication" in status.stderr
    finally:
        ControlPlane(root).stop_cluster("open", grace=3.0)


def test_token_flags_conflict_with_auth_none(tmp_path: Path) -> None:
    res = run_cli("ray", "cluster", "start-local", "--auth", "none", "--token-env", "X", "--state-root", str(tmp_path / "s"))
    assert res.returncode == 2 and "drop --auth none" in res.stderr
    bad = run_cli("ray", "cluster", "start-local", "--auth", "maybe", "--state-root", str(tmp_path / "s"))
    assert bad.returncode == 2 and "'maybe' is not one of 'token', 'none'" in bad.stderr and bad.stderr.count("\n") == 1  # choices, as --help lists them
