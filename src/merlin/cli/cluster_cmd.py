"""``merlin ray cluster start --kind local|slurm|pbs|ssh``: one command for every cluster kind.

Registered on ``merlin ray cluster`` by ray_cmd.py. ``start-local`` stays as
it was; ``--kind local`` is the same thing. Imports nothing heavy.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer

from merlin.errors import BadInput

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")


def parse_duration(text: str | None, flag: str) -> float | None:
    """``90``, ``30s``, ``60m``, ``2h``, ``1d`` -> seconds."""
    if text in (None, ""):
        return None
    m = _DURATION.match(str(text).strip())
    if not m:
        raise BadInput(f"{flag} {text!r}: expected a duration such as 30s, 60m or 2h")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def connection_lines(rec: Any) -> list[str]:
    """Dashboard URL, and the tunnel command when the head is elsewhere."""
    lines = []
    if rec.dashboard_url:
        lines.append(f"dashboard / jobs API: {rec.dashboard_url} (token: {rec.auth.token_file or '$' + str(rec.auth.token_env)})")
    if getattr(rec, "tunnel_command", None):
        lines.append(f"from another machine: {rec.tunnel_command}")
    return lines


def cluster_start(
    kind: str = typer.Option("local", "--kind", help="local, slurm, pbs or ssh."),
    name: str = typer.Option("default", "--name", help="Cluster name."),
    nodes: int | None = typer.Option(None, "--nodes", help="slurm: nodes to allocate (head on the first)."),
    cpus_per_node: int | None = typer.Option(None, "--cpus-per-node", help="slurm: CPUs per node (sbatch --cpus-per-task)."),
    gpus_per_node: int | None = typer.Option(None, "--gpus-per-node", help="slurm: GPUs per node."),
    mem: str | None = typer.Option(None, "--mem", help="slurm: memory per node, e.g. 16G."),
    time: str | None = typer.Option(None, "--time", help="slurm: walltime, e.g. 1:00:00."),
    partition: str | None = typer.Option(None, "--partition", help="slurm: partition."),
    account: str | None = typer.Option(None, "--account", help="slurm, pbs: account to charge."),
    qos: str | None = typer.Option(None, "--qos", help="slurm: QOS."),
    sbatch_arg: list[str] | None = typer.Option(None, "--sbatch-arg", help="slurm: one more sbatch option (repeatable)."),
    select: str | None = typer.Option(None, "--select", help="pbs: chunks, e.g. 2:ncpus=4."),
    walltime: str | None = typer.Option(None, "--walltime", help="pbs: walltime, e.g. 01:00:00."),
    queue: str | None = typer.Option(None, "--queue", help="pbs: queue."),
    host: str | None = typer.Option(None, "--host", help="ssh: host of the head."),
    jump: str | None = typer.Option(None, "--jump", help="ssh: jump host (ssh -J)."),
    user: str | None = typer.Option(None, "--user", help="ssh: remote user."),
    workers: str | None = typer.Option(None, "--workers", help="ssh: worker hosts h1,h2."),
    port: int | None = typer.Option(None, "--port", help="ssh: sshd port (default 22)."),
    idle_timeout: str | None = typer.Option(None, "--idle-timeout", help="Stop the cluster after no active run for this long (e.g. 60m)."),
    object_store_memory: int | None = typer.Option(None, "--object-store-memory", help="Object store bytes per node."),
    wait: bool = typer.Option(False, "--wait", help="Return once the cluster is active (default: once the scheduler accepted it)."),
    state_root: Path | None = typer.Option(None, "--state-root", help="Ledger directory (default: $MERLIN_STATE_ROOT or build/generated/ray).", show_default=False),
    json: bool = typer.Option(False, "--json", help="Print machine-readable JSON on stdout."),
) -> None:
    """Start a Ray cluster of any kind and record it; progress on stderr, connection info at the end."""
    import sys

    from merlin.cli.output import emit_json, message
    from merlin.controlplane import ControlPlane
    from merlin.safety import check_number

    check_number(nodes, "--nodes", minimum=1, integer=True)
    check_number(cpus_per_node, "--cpus-per-node", integer=True)
    check_number(gpus_per_node, "--gpus-per-node", integer=True)
    check_number(port, "--port", minimum=1, maximum=65535, integer=True)
    check_number(object_store_memory, "--object-store-memory", minimum=0, above_minimum=True, integer=True)

    given: dict[str, dict[str, Any]] = {
        "slurm": dict(nodes=nodes, cpus_per_node=cpus_per_node, gpus_per_node=gpus_per_node, mem=mem, time=time,
                      partition=partition, account=account, qos=qos, sbatch_args=list(sbatch_arg or [])),
        "pbs": dict(select=select, walltime=walltime, queue=queue, account=account),
        "ssh": dict(host=host, jump=jump, user=user, workers=workers, port=port),
    }  # fmt: skip
    if kind not in ("local", *given):
        raise BadInput(f"--kind {kind!r}: expected local, slurm, pbs or ssh")
    for other, opts in given.items():
        if other == kind:
            continue
        stray = [k for k, v in opts.items() if v not in (None, []) and not (k == "account" and kind in ("slurm", "pbs"))]
        if stray:
            flags = ", ".join("--sbatch-arg" if k == "sbatch_args" else "--" + k.replace("_", "-") for k in stray)
            raise BadInput(f"--kind {kind} does not take {flags} (those are --kind {other} options)")
    cp = ControlPlane(state_root)
    progress = (lambda m: message(m)) if (sys.stderr.isatty() or not json) else None
    if kind == "local":
        rec, started = cp.start_local_cluster(name, object_store_memory=object_store_memory, progress=progress)
    else:
        options = {k: v for k, v in given[kind].items() if v not in (None, [])}
        options["idle_timeout"] = parse_duration(idle_timeout, "--idle-timeout")
        options["object_store_memory"] = object_store_memory
        rec, started = cp.start_cluster(kind, name, wait=wait, progress=progress, **options)
    if json:
        emit_json({"started": started, "cluster": rec.model_dump(mode="json")})
        return
    state = "active" if rec.status in ("active", "running") else rec.status
    head = f"cluster '{rec.name}' ({rec.kind}) is {state}"
    if rec.scheduler_job_id:
        head += f" as job {rec.scheduler_job_id}"
    if rec.scheduler_reason:
        head += f" ({rec.scheduler_reason})"
    message(head if started else head + " (already started)")
    for line in connection_lines(rec):
        message(line)


def scheduler_rows(rec: Any) -> list[tuple[str, str]]:
    """Extra ``cluster status`` rows for slurm/pbs/ssh clusters, connection info last."""
    rows = [("kind", rec.kind)]
    if rec.scheduler_job_id:
        rows.append(("job", rec.scheduler_job_id))
    if rec.scheduler_reason:
        rows.append(("reason", f"{rec.scheduler_reason} (the scheduler's reason it is still queued)"))
    if rec.nodes:
        rows.append(("nodes", ", ".join(rec.nodes) + (f" (head {rec.head_address})" if rec.head_address else "")))
    for node, res in sorted((getattr(rec, "node_resources", None) or {}).items()):
        rows.append((f"on {node}", ", ".join(f"{k}={v:g}" for k, v in sorted(res.items())) + " (inventory items as Ray resources)"))
    if rec.walltime_end:
        rows.append(("walltime ends", rec.walltime_end.isoformat(timespec="seconds")))
    if rec.idle_timeout:
        rows.append(("idle timeout", f"{rec.idle_timeout:g}s"))
    if rec.stop_reason:
        rows.append(("ended", rec.stop_reason))
    if rec.lost_runs:
        rows.append(("lost runs", ", ".join(rec.lost_runs)))
    if rec.tunnel_command:
        rows.append(("tunnel", rec.tunnel_command))
    return rows
