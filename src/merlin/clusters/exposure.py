"""What a cluster listens on, measured (psutil), and which of it other machines can reach.

Ray binds some services wherever its node IP says and some on fixed defaults;
merlin does not guess: it asks the kernel for the listening sockets of the
cluster's own processes and names each by the port recorded for it.
"""

from __future__ import annotations

import ipaddress
from typing import Any

#: What each recorded port is (ClusterPorts field -> service name, as docs/ray.md's table).
SERVICES = {
    "gcs": "GCS (gRPC)",
    "dashboard": "dashboard + jobs API (HTTP)",
    "client_server": "Ray Client server (gRPC)",
    "dashboard_agent_listen": "dashboard agent HTTP (job agent API)",
    "dashboard_agent_grpc": "dashboard agent gRPC",
    "metrics_export": "metrics export (Prometheus HTTP)",
    "runtime_env_agent": "runtime env agent (HTTP)",
    "node_manager": "raylet node manager (gRPC)",
    "object_manager": "object manager (gRPC)",
    "autoscaler_metrics": "autoscaler metrics (Prometheus HTTP)",
    "dashboard_metrics": "dashboard metrics (Prometheus HTTP)",
}


def is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip.removeprefix("::ffff:")).is_loopback
    except ValueError:
        return False


def listening_sockets(record: Any, pids: set[int]) -> list[dict[str, Any]]:
    """Every TCP socket the cluster's processes listen on, as the kernel reports it."""
    import psutil

    ports = getattr(record, "ports", None)
    by_port = {getattr(ports, k): v for k, v in SERVICES.items() if ports is not None and getattr(ports, k, None)}
    found: dict[tuple[int, str], dict[str, Any]] = {}
    for pid in sorted(pids):
        try:
            proc = psutil.Process(pid)
            conns = proc.net_connections(kind="inet")
            name = proc.name()
        except (psutil.Error, OSError):
            continue
        for c in conns:
            if c.status != psutil.CONN_LISTEN:
                continue
            ip, port = c.laddr.ip, c.laddr.port
            found.setdefault((port, ip), {"port": port, "bound_to": ip, "service": by_port.get(port, f"{name} (unrecorded port)"), "pid": pid})
    return sorted(found.values(), key=lambda s: (s["port"], s["bound_to"]))


def exposed(sockets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in sockets if not is_loopback(s["bound_to"])]


def exposure_warning(name: str, exposed_sockets: list[dict[str, Any]]) -> str:
    listed = ", ".join(f"{s['service']} on {s['bound_to']}:{s['port']}" for s in exposed_sockets)
    return f"cluster '{name}': reachable from other machines: {listed} (see docs/ray.md, 'What listens where')"
