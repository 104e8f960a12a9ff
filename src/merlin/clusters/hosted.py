"""Inventory items attached to a node become Ray custom resources of that node's raylet.

merlin writes the inventory's ``host -> {pool: items}`` map beside a cluster's
handshake files (``hosted_items.json``); each node's helper
(:mod:`merlin.clusters.slurm_node`) picks the hosts that name it -- its Slurm
node name or ssh host, its NodeAddr, the machine's host names -- and passes
one unit per item, named by its pool, to ``ray start --resources``. A run
leased on that pool asks for the same ``entrypoint_resources`` and lands
there. This module reads back what Ray reports per node, for the record.
"""

from __future__ import annotations

from typing import Any

#: what Ray gives every node by itself; anything else on a node is a custom resource merlin passed
_RAY_OWN = {"CPU", "GPU", "memory", "object_store_memory"}


def node_custom_resources(alive: list[dict[str, Any]], names: dict[str, str]) -> dict[str, dict[str, float]]:
    """Node name (its address when unnamed) -> the custom resources Ray reports on it
    (the inventory items merlin attached), from ``/api/v0/nodes`` entries."""
    out: dict[str, dict[str, float]] = {}
    for n in alive:
        custom = {
            k: float(v)
            for k, v in (n.get("resources_total") or {}).items()
            if k not in _RAY_OWN and not k.startswith(("node:", "accelerator_type:")) and isinstance(v, (int, float))
        }
        if custom:
            ip = n.get("node_ip", "")
            out[names.get(ip, ip)] = custom
    return out
