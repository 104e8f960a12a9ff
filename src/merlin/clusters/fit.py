"""Does a run's resource request fit its cluster at all?

Ray keeps a job whose entrypoint asks for more than the cluster owns
``PENDING`` forever, without a word. merlin compares the request with the
cluster's recorded totals before submitting and says so in the run's message.
"""

from __future__ import annotations

from typing import Any, Mapping


def requested_resources(request: Any) -> dict[str, float]:
    """``num_cpus``/``num_gpus``/``resources`` of a run request as Ray resource names."""
    wanted: dict[str, float] = {}
    if getattr(request, "num_cpus", None):
        wanted["CPU"] = float(request.num_cpus)
    if getattr(request, "num_gpus", None):
        wanted["GPU"] = float(request.num_gpus)
    for key, value in (getattr(request, "resources", None) or {}).items():
        if value:
            wanted[key] = float(value)
    return wanted


def shortfalls(wanted: Mapping[str, float], total: Mapping[str, float]) -> list[str]:
    """One phrase per resource the cluster cannot provide, e.g. ``GPU 1 (cluster has 0)``."""
    out = []
    for key in sorted(wanted):
        have = float(total.get(key, 0.0))
        if wanted[key] > have:
            out.append(f"{key} {wanted[key]:g} (cluster has {have:g})")
    return out


def pending_explanation(request: Any, cluster_name: str, total: Mapping[str, float], run_id: str) -> str | None:
    """A message for a run Ray will never start on this cluster, or None if it fits."""
    if not total:
        return None  # totals unknown: say nothing rather than guess
    missing = shortfalls(requested_resources(request), total)
    if not missing:
        return None
    return (
        f"pending: Ray cluster '{cluster_name}' can never start this run: it asks for {', '.join(missing)}. "
        f"Cancel it with `merlin ray jobs cancel {run_id}`, then start a cluster that has them "
        f"(e.g. `merlin ray cluster start-local --name big --num-gpus N --resource KEY=N`) and "
        f"`merlin ray jobs retry {run_id} --cluster big`"
    )
