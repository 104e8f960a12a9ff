"""Does a run's resource request fit its cluster at all?

Ray keeps a job whose entrypoint asks for more than the cluster owns
``PENDING`` forever, without a word. merlin compares the request with the
cluster's recorded totals before submitting and says so in the run's message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from merlin.units import amount


def requested_resources(request: Any) -> dict[str, float]:
    """``num_cpus``/``num_gpus``/``memory``/``resources`` of a run request as Ray resource names."""
    wanted: dict[str, float] = {}
    if getattr(request, "num_cpus", None):
        wanted["CPU"] = float(request.num_cpus)
    if getattr(request, "num_gpus", None):
        wanted["GPU"] = float(request.num_gpus)
    if getattr(request, "memory", None):
        wanted["memory"] = float(request.memory)
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
            out.append(f"{key} {amount(key, wanted[key])} (cluster has {amount(key, have)})")
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
        f"Cancel it, start a cluster that has them, and retry it there"
    )


def pending_steps(request: Any, cluster_name: str, total: Mapping[str, float], run_id: str) -> list[dict[str, Any]]:
    """Next steps for a run that does not fit (see :func:`pending_explanation`); [] if it fits."""
    if pending_explanation(request, cluster_name, total, run_id) is None:
        return []
    from merlin.nextsteps import Action, step

    wanted = requested_resources(request)
    custom = {k: v for k, v in wanted.items() if k not in ("CPU", "GPU")}
    return [
        step(Action.CANCEL, run_id=run_id),
        step(Action.START_CLUSTER, name="big", num_cpus=wanted.get("CPU"), num_gpus=wanted.get("GPU"), resources=custom or None),
        step(Action.RETRY, run_id=run_id, cluster="big"),
    ]
