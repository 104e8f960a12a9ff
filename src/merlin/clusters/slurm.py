"""Ray on a Slurm allocation: ``merlin ray cluster start --kind slurm``.

merlin writes its own batch script into the cluster's state dir and submits
it with ``sbatch --parsable``. Inside the allocation the head runs on the
first node (in the batch step) and one ``srun --overlap`` step per other node
starts a worker; every Ray process runs under ``ray start --block`` (through
:mod:`merlin.clusters.slurm_node`), so ``scancel`` ends all of it. Observation
is one ``squeue`` call plus one call to the head's API (see
:mod:`merlin.clusters.batch`).
"""

from __future__ import annotations

import re
import shlex
from datetime import datetime
from pathlib import Path
from typing import Any

from merlin.clusters.base import not_taken
from merlin.clusters.batch import BatchClusters, SchedJob
from merlin.errors import BadInput, Blocked

#: squeue's cheap parseable form: id|state|reason|nodelist|end time
SQUEUE_FORMAT = "%i|%T|%r|%N|%e"
PENDING = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SUSPENDED", "CONFIGURING"}
RUNNING = {"RUNNING", "RESIZING", "SIGNALING", "STAGE_OUT"}
# COMPLETING counts as ended: the allocation is being torn down
ENDED = {
    "COMPLETING", "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL",
    "DEADLINE", "OUT_OF_MEMORY", "REVOKED", "SPECIAL_EXIT", "STOPPED",
}  # fmt: skip
INSTALL_HINT = "install Slurm's client tools (Debian: `apt-get install slurm-client`) and point SLURM_CONF at the cluster's slurm.conf"
#: the kind's options: key, the sbatch directive it becomes
OPTIONS = (
    ("cpus_per_node", "--cpus-per-task"),
    ("gpus_per_node", "--gpus-per-node"),
    ("mem", "--mem"),
    ("time", "--time"),
    ("partition", "--partition"),
    ("account", "--account"),
    ("qos", "--qos"),
)
_SAFE = re.compile(r"^[A-Za-z0-9_.:,=+/@%\-\[\]]+$")


def expand_hostlist(text: str) -> list[str]:
    """``n[1-3,7],gpu01`` -> ``['n1', 'n2', 'n3', 'n7', 'gpu01']`` (Slurm's compressed node lists)."""
    out: list[str] = []
    for part in re.findall(r"[^,\[]+(?:\[[^\]]*\])?[^,]*", text or ""):
        m = re.match(r"^([^\[]*)\[([^\]]*)\](.*)$", part)
        if not m:
            if part and part != "(null)":
                out.append(part)
            continue
        prefix, ranges, suffix = m.groups()
        for r in ranges.split(","):
            if "-" in r:
                lo, hi = r.split("-", 1)
                width = len(lo) if lo.startswith("0") else 0
                out.extend(f"{prefix}{i:0{width}d}{suffix}" for i in range(int(lo), int(hi) + 1))
            else:
                out.append(f"{prefix}{r}{suffix}")
    return out


def _slurm_time(text: str) -> datetime | None:
    if not text or text in ("N/A", "Unknown", "None"):
        return None
    try:
        return datetime.fromisoformat(text).astimezone()  # squeue prints local time without a zone
    except ValueError:
        return None


def _job(job_id: str, state: str, reason: str, nodes: str, end: str | None) -> SchedJob:
    state = state.split()[0] if state else "UNKNOWN"
    phase = (
        "pending" if state in PENDING else "running" if state in RUNNING
        else "ending" if state == "COMPLETING" else "ended" if state in ENDED else "pending"
    )  # fmt: skip
    return SchedJob(
        job_id=job_id,
        state=state,
        phase=phase,
        reason="" if reason in ("None", "(null)") else reason,
        nodes=expand_hostlist(nodes),
        end_time=_slurm_time(end) if phase == "running" and end else None,
        walltime_hit=state in ("TIMEOUT", "DEADLINE") or reason == "TimeLimit",
        cancelled=state in ("CANCELLED", "PREEMPTED", "REVOKED"),
    )


def parse_squeue_lines(text: str) -> dict[str, SchedJob]:
    """``squeue -h -o '%i|%T|%r|%N|%e'`` output -> job id -> :class:`SchedJob`."""
    out = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) >= 5:
            out[fields[0]] = _job(*fields[:5])
    return out




def _check_value(key: str, value: Any) -> str:
    text = str(value)
    if not _SAFE.match(text):
        raise BadInput(f"`{key}` {text!r}: use letters, digits and : , = + / @ % - _ . only", argument=key)
    return text


def render_sbatch(*, name: str, nodes: int, state_dir: Path, node_cmd: list[str], options: dict[str, Any]) -> str:
    """merlin's batch script: head in the batch step on the first node, one ``srun --overlap``
    step per other node for a worker, and ``wait`` so the job lives as long as Ray does."""
    directives = [
        f"--job-name=merlin-{name}",
        f"--nodes={nodes}",
        "--ntasks-per-node=1",
        f"--output={state_dir}/job-%j.out",
        "--open-mode=append",
    ]
    for key, flag in OPTIONS:
        if options.get(key) not in (None, ""):
            directives.append(f"{flag}={options[key]}")
    directives += list(options.get("sbatch_args") or [])
    node = " ".join(shlex.quote(a) for a in node_cmd)
    lines = [
        "#!/bin/bash",
        f"# Ray cluster '{name}' written by merlin (kept in its state dir; see docs/clusters.md).",
        *[f"#SBATCH {d}" for d in directives],
        "set -u",
        "unset RAY_ADDRESS RAY_AUTH_TOKEN",
        'mapfile -t HOSTS < <(scontrol show hostnames "$SLURM_JOB_NODELIST")',
        f"NODE=({node})",
        "# the head: in the batch step, on the first node",
        '"${NODE[@]}" head --index 0 --node "${HOSTS[0]}" &',
        "# one worker step per other node; --overlap so steps share the allocation",
        'for ((i = 1; i < ${#HOSTS[@]}; i++)); do',
        '  srun --overlap --nodes=1 --ntasks=1 --nodelist="${HOSTS[$i]}" --cpu-bind=none --kill-on-bad-exit=0 \\',
        '    "${NODE[@]}" worker --index "$i" --node "${HOSTS[$i]}" &',
        "done",
        "wait",
        "",
    ]
    return "\n".join(lines)


#: what Slurm's pending REASON means for a person (the ones people meet most), for ``jobs why``
REASON_HINTS = {
    "PartitionConfig": "the request exceeds what the partition allows (e.g. more nodes than it has): stop the cluster and start it with fewer nodes or another partition",
    "PartitionNodeLimit": "more nodes than the partition's limit: stop the cluster and start it with fewer nodes",
    "PartitionTimeLimit": "the time asked for is over the partition's limit: stop the cluster and start it with a shorter time",
    "Resources": "waiting for nodes to free up: it starts by itself",
    "Priority": "other jobs are ahead in the queue: it starts by itself",
    "QOSMaxJobsPerUserLimit": "your QOS allows no more running jobs: wait, or stop another cluster",
    "AssocGrpCpuLimit": "your account's CPU limit is reached: wait, or stop another cluster",
    "ReqNodeNotAvail": "a requested node is down or reserved (sinfo shows the nodes)",
}
DEFAULT_HINT = "wait, or stop it and start with a smaller request"


class SlurmBackend(BatchClusters):
    """``--kind slurm``."""

    kind = "slurm"
    install_hint = INSTALL_HINT
    scheduler = "Slurm"
    cancel_word = "scancel"

    def parse_options(self, options: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        nodes = options.pop("nodes", None)
        nodes = 1 if nodes is None else nodes
        try:
            nodes = int(nodes)
        except (TypeError, ValueError):
            raise BadInput(f"`nodes` {nodes!r}: expected a whole number of nodes", argument="nodes") from None
        if nodes < 1:
            raise BadInput(f"`nodes` {nodes}: expected at least 1", argument="nodes")
        opts: dict[str, Any] = {"object_store_memory": options.pop("object_store_memory", None)}
        for key, _sbatch_flag in OPTIONS:
            value = options.pop(key, None)
            if value not in (None, ""):
                opts[key] = _check_value(key, value)
        extra = []
        for arg in options.pop("sbatch_args", None) or ():
            if "\n" in arg or not arg.startswith("-"):
                raise BadInput(f"`sbatch_args` {arg!r}: expected one sbatch option (one word that starts with -, as sbatch spells it)", argument="sbatch_args")
            extra.append(arg)
        opts["sbatch_args"] = extra
        options.pop("idle_timeout", None)
        if options:
            raise not_taken("slurm", options)
        return nodes, opts

    def render_script(self, **kwargs: Any) -> str:
        return render_sbatch(**kwargs)

    def submit_script(self, script: Path, state_dir: Path) -> str:
        res = self._run(["sbatch", "--parsable", str(script)], cwd=str(state_dir))
        if res.returncode != 0:
            first = (res.stderr.strip().splitlines() or ["(no message)"])[-1]
            raise BadInput(f"sbatch refused the job: {first} (script: {script})")
        return res.stdout.strip().split(";")[0]

    def query(self, job_id: str) -> SchedJob | None:
        res = self._run(["squeue", "-h", "-t", "all", "-j", str(job_id), "-o", SQUEUE_FORMAT])
        if res.returncode != 0:
            if "invalid job id" in res.stderr.lower():
                return None  # purged from slurmctld's memory: long ended
            raise Blocked(f"squeue failed: {res.stderr.strip().splitlines()[-1] if res.stderr.strip() else res.returncode}")
        return parse_squeue_lines(res.stdout).get(str(job_id))

    def hold_conditions(self, record: Any, observed_at: str) -> list[dict[str, Any]]:
        """``jobs why``'s scheduler layer: a queued allocation and Slurm's pending REASON."""
        from merlin.clusters.why import scheduler_queued

        words = (record.scheduler_reason or "").split()
        hint = REASON_HINTS.get(words[0].strip("()") if words else "", DEFAULT_HINT)
        return scheduler_queued(record, observed_at, self.scheduler, hint, ["squeue", "-j", str(record.scheduler_job_id), "-o", "%R"])

    def cancel(self, job_id: str) -> None:
        res = self._run(["scancel", str(job_id)])
        if res.returncode != 0 and "invalid job id" not in res.stderr.lower():
            raise Blocked(f"scancel {job_id} failed: {res.stderr.strip()}")
