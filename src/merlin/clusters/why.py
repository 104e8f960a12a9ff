"""The scheduler layer of ``merlin ray jobs why``: a run whose cluster's allocation
is still queued in Slurm or PBS is held back by the scheduler, and the
scheduler says why (Slurm's pending REASON, PBS's ``comment``).

Reads only the cluster record as the backend's last observation left it
(``cluster_status`` observes just before), so it costs no scheduler call.
"""

from __future__ import annotations

from typing import Any

SCHEDULERS = {"slurm": "Slurm", "pbs": "PBS"}

#: next steps for the pending reasons people meet most (Slurm's names; PBS's comment is free text)
REASON_HINTS = {
    "PartitionConfig": "the request exceeds what the partition allows (e.g. more nodes than it has): stop the cluster and start it with fewer --nodes or another --partition",
    "PartitionNodeLimit": "more nodes than the partition's limit: stop the cluster and start it with fewer --nodes",
    "PartitionTimeLimit": "--time is over the partition's limit: stop the cluster and start it with a shorter --time",
    "Resources": "waiting for nodes to free up: it starts by itself",
    "Priority": "other jobs are ahead in the queue: it starts by itself",
    "QOSMaxJobsPerUserLimit": "your QOS allows no more running jobs: wait, or stop another cluster",
    "AssocGrpCpuLimit": "your account's CPU limit is reached: wait, or stop another cluster",
    "ReqNodeNotAvail": "a requested node is down or reserved: `sinfo` shows the nodes",
}


def scheduler_conditions(record: Any, observed_at: str) -> list[dict[str, Any]]:
    """One ``scheduler_queued`` condition while a Slurm/PBS allocation waits; else none."""
    kind = getattr(record, "kind", "local")
    status = str(getattr(record.status, "value", record.status))
    if kind not in SCHEDULERS or status != "queued":
        return []
    who = SCHEDULERS[kind]
    reason = record.scheduler_reason or "no reason reported yet"
    words = reason.split()
    hint = REASON_HINTS.get(words[0].strip("()") if words else "", "wait, or stop it and start with a smaller request")
    job = record.scheduler_job_id
    look = f"squeue -j {job} -o %R" if kind == "slurm" else f"qstat -f {job}"
    return [
        {
            "layer": "scheduler",
            "code": "scheduler_queued",
            "message": f"cluster {record.name}: {who} job {job} is still queued: {reason}",
            "evidence": {"cluster": record.name, "kind": kind, "job_id": job, "reason": record.scheduler_reason, "requested": dict(record.requested or {})},
            "observed_at": observed_at,
            "next_step": f"{hint} (`{look}`; `merlin ray cluster stop --name {record.name}` gives up the request)",
        }
    ]
