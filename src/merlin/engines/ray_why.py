"""Ray's own layer of ``merlin ray jobs why``: what Ray says about a job it keeps PENDING.

Asked only for a run handed to Ray and not running yet (``jobs status`` of a
running run never pays for it). Two HTTP requests, no Ray import: the job
(``GET /api/jobs/{id}``: its status and message, and whether its runtime_env
has something to set up) and the autoscaler's report (``GET
/api/cluster_status``: pending resource demands, pending placement groups,
the nodes' resources and usage). Nothing is guessed: each condition carries
what Ray said, when Ray reported it, and when merlin asked.

Codes: ``ray_job_pending`` (Ray's message, the run's entrypoint resources, the
demands Ray lists, the usage of what the run wants), ``ray_resource_infeasible``
(no node Ray reports could ever hold the entrypoint's resources),
``ray_runtime_env_setup`` (the job's runtime_env has fields to install).
"""

from __future__ import annotations

from typing import Any

from merlin.clock import iso
from merlin.conditions import condition
from merlin.engines.ray_api import ClusterLoad, JobInfo, Shape
from merlin.nextsteps import Action, step

LAYER = "ray"


def fits(shape: Shape, node: Shape) -> bool:
    return all(node.get(k, 0.0) >= v for k, v in shape.items() if v)


def infeasible(want: Shape, load: ClusterLoad) -> bool:
    """No node shape Ray reports holds ``want`` (Ray's own meaning of infeasible on a cluster that does not grow)."""
    return bool(want) and bool(load.nodes) and not any(fits(want, node) for node, _n in load.nodes)


def conditions(run_id: str, submission: str, job: JobInfo, load: ClusterLoad | None, want: Shape, observed_at: str, cluster: str) -> list[dict[str, Any]]:
    """The Ray layer for one run whose job Ray reports as ``job`` (only PENDING jobs hold anything)."""
    if job.status != "PENDING":
        return []
    said: dict[str, Any] = {"submission_id": submission, "ray_status": job.status, "ray_message": job.message, "entrypoint_resources": dict(want)}
    if load is not None:
        said.update(
            pending_demands=[{"shape": shape, "count": n} for shape, n in load.demands],
            pending_placement_groups=list(load.pg_demands),
            usage={k: {"used": load.usage[k][0], "total": load.usage[k][1]} for k in sorted(want) if k in load.usage},
            ray_reported_at=iso(load.reported_at) if load.reported_at else None,
        )
    out = []
    if load is not None and infeasible(want, load):
        nodes = [{"resources": node, "count": n} for node, n in load.nodes]
        out.append(condition(
            LAYER, "ray_resource_infeasible",
            f"Ray cannot place job {submission}: no node it reports has {_shape_text(want)}",
            {**said, "nodes": nodes}, observed_at,
            [step(Action.CANCEL, run_id=run_id), step(Action.CLUSTER_STATUS, name=cluster)],
            "it never starts here: cancel it and retry it on a cluster that has these resources",
        ))  # fmt: skip
    if job.runtime_env_setup:
        out.append(condition(
            LAYER, "ray_runtime_env_setup",
            f"Ray is setting up the runtime environment of job {submission} ({', '.join(job.runtime_env_setup)}): {job.message or 'no message'}",
            {**said, "runtime_env_fields": list(job.runtime_env_setup)}, observed_at,
            [step(Action.STATUS, run_id=run_id), step(Action.LOGS, run_id=run_id)],
            "it starts once Ray has installed them; a failure shows in the run's status",
        ))  # fmt: skip
    waiting = [d for d in said.get("pending_demands", []) if want and _overlaps(d["shape"], want)]
    detail = f"; Ray lists {sum(d['count'] for d in waiting)} pending demand(s) for {', '.join(_shape_text(d['shape']) for d in waiting)}" if waiting else ""
    busy = [f"{k} {u['used']:g}/{u['total']:g} in use" for k, u in said.get("usage", {}).items()]
    out.append(condition(
        LAYER, "ray_job_pending",
        f"Ray keeps job {submission} PENDING: {job.message or 'no message'}{detail}" + (f" ({', '.join(busy)})" if busy else ""),
        said, observed_at,
        [step(Action.STATUS, run_id=run_id), step(Action.CLUSTER_STATUS, name=cluster)],
        "Ray starts it when what it asks for is free",
    ))  # fmt: skip
    return out


def _overlaps(shape: Shape, want: Shape) -> bool:
    return any(k in want for k in shape)


def _shape_text(shape: Shape) -> str:
    from merlin.units import amount

    return ", ".join(f"{k} {amount(k, v)}" for k, v in sorted(shape.items())) or "nothing"
