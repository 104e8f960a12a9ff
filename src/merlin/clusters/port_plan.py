"""Every port a local Ray head opens, chosen before ``ray start``: freely, or inside an assigned range.

Ray 2.60 opens eleven ports of its own (GCS, dashboard, client server, the raylet's
node manager, the object manager, the dashboard agent's HTTP and gRPC ports, the
runtime env agent, metrics export, and the autoscaler's and dashboard's Prometheus
endpoints, these two set through ``AUTOSCALER_METRIC_PORT`` and
``DASHBOARD_METRIC_PORT``) and one per worker process (drivers and job
supervisors included) from ``--min-worker-port``..``--max-worker-port``, by
default 10002-19999. With ``port_range`` all of them go inside LO-HI: the fixed
ones on the first free ports, the workers on the longest free run left, which
must hold :data:`MIN_WORKER_PORTS`; a range too small or too busy is refused
before anything starts, saying how many ports it needs.
"""

from __future__ import annotations

import re
from typing import Any

from merlin.clusters.net import free_ports, port_free
from merlin.errors import BadInput

#: the ports of a Ray node that `ray start` takes as options (a Slurm node's block places these too: slurm_node.py)
NODE_PORTS = (
    "gcs",
    "dashboard",
    "client_server",
    "dashboard_agent_listen",
    "dashboard_agent_grpc",
    "metrics_export",
    "runtime_env_agent",
    "node_manager",
    "object_manager",
)
#: ClusterPorts fields of the ports Ray opens once per head, in the order they are placed
SERVICE_PORTS = (*NODE_PORTS, "autoscaler_metrics", "dashboard_metrics")
#: the fewest worker ports a range must leave (each worker, driver and job supervisor holds one)
MIN_WORKER_PORTS = 16
#: the smallest range merlin accepts
PORTS_NEEDED = len(SERVICE_PORTS) + MIN_WORKER_PORTS

_RANGE = re.compile(r"^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$")


def parse_port_range(text: str) -> tuple[int, int]:
    """``"20000-20100"`` -> (20000, 20100); every malformed or too small range is a ``BadInput`` naming ``port_range``."""
    match = _RANGE.match(str(text))
    if not match:
        raise BadInput(f"`port_range` {text!r}: expected LO-HI, e.g. 20000-20063", argument="port_range")
    lo, hi = int(match.group(1)), int(match.group(2))
    if not 1024 <= lo <= hi <= 65535:
        raise BadInput(f"`port_range` {text!r}: expected 1024 <= LO <= HI <= 65535", argument="port_range")
    if hi - lo + 1 < PORTS_NEEDED:
        raise BadInput(
            f"`port_range` {lo}-{hi} has {hi - lo + 1} ports; a Ray head needs at least {PORTS_NEEDED} "
            f"({len(SERVICE_PORTS)} for its services, {MIN_WORKER_PORTS} for its workers): e.g. {lo}-{lo + PORTS_NEEDED - 1}",
            argument="port_range",
        )
    return lo, hi


def choose_ports(port: int | None, dashboard_port: int | None, port_range: str | None) -> dict[str, Any]:
    """The ports of a new head, as ClusterPorts fields (``min_worker``/``max_worker`` only with a range)."""
    if port_range is None:
        port = 6379 if port is None else port
        dashboard_port = 8265 if dashboard_port is None else dashboard_port
        aux = free_ports(len(SERVICE_PORTS) - 2, avoid={port, dashboard_port})
        return dict(zip(SERVICE_PORTS, [port, dashboard_port, *aux], strict=True))
    lo, hi = parse_port_range(port_range)
    given = {"gcs": port, "dashboard": dashboard_port}
    for key, value in given.items():
        if value is not None and not lo <= value <= hi:
            which = "port" if key == "gcs" else "dashboard_port"
            raise BadInput(f"`{which}` {value} is outside `port_range` {lo}-{hi}; drop it or choose one inside", argument=which, related="port_range")
    taken = {v for v in given.values() if v is not None}
    free = [p for p in range(lo, hi + 1) if p in taken or port_free(p)]
    spare = iter(p for p in free if p not in taken)
    chosen: dict[str, Any] = {}
    for key in SERVICE_PORTS:
        value = given.get(key) or next(spare, None)
        if value is None:
            break
        chosen[key] = value
    used = set(chosen.values())
    best: list[int] = []
    run: list[int] = []
    for p in range(lo, hi + 2):
        if p <= hi and p in free and p not in used:
            run.append(p)
            continue
        if len(run) > len(best):
            best = run
        run = []
    busy = hi - lo + 1 - len(free)
    if len(chosen) < len(SERVICE_PORTS) or len(best) < MIN_WORKER_PORTS:
        raise BadInput(
            f"`port_range` {lo}-{hi}: {busy} of its ports are in use, and a Ray head needs {PORTS_NEEDED} free ones "
            f"({len(SERVICE_PORTS)} for its services and a run of {MIN_WORKER_PORTS} for its workers); "
            f"choose a wider or quieter range",
            argument="port_range",
        )
    chosen["min_worker"], chosen["max_worker"] = best[0], best[-1]
    return chosen


def ray_start_flags(ports: Any) -> list[str]:
    """``ray start`` flags placing every port recorded in ``ports`` (the two metrics ports go by environment)."""
    flags = [
        f"--ray-client-server-port={ports.client_server}",
        f"--dashboard-agent-listen-port={ports.dashboard_agent_listen}",
        f"--dashboard-agent-grpc-port={ports.dashboard_agent_grpc}",
        f"--metrics-export-port={ports.metrics_export}",
        f"--runtime-env-agent-port={ports.runtime_env_agent}",
        f"--node-manager-port={ports.node_manager}",
        f"--object-manager-port={ports.object_manager}",
    ]
    if getattr(ports, "min_worker", None):
        flags += [f"--min-worker-port={ports.min_worker}", f"--max-worker-port={ports.max_worker}"]
    return flags
