"""``merlin ray cluster ...``: start (any kind), start-local, status, stop and list Ray clusters.

``start --kind local|slurm|pbs|ssh`` is one command for every cluster kind;
``start-local`` stays as it was (``--kind local`` is the same thing).
Imports nothing heavy at module level.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from merlin.cli.common import control_plane, invoked, key_values, said, short_time, status_styled, where
from merlin.cli.option_diff import restart_steps, start_differences
from merlin.cli.options import JsonOpt, StateRootOpt, choice_option, duration_option, from_config, hidden_alias, merged, output_mode, output_option
from merlin.errors import BadInput

app = typer.Typer(help="Start, inspect and stop local Ray clusters.", no_args_is_help=True)

ClusterNameOpt = typer.Option(
    "default", "--name", metavar="NAME", callback=from_config("cluster"),
    help="Cluster name (default: $MERLIN_CLUSTER, the config's cluster, or default; records: cluster/bootstrap.json for 'default', cluster/<name>.json otherwise).",
)
KINDS = ["local", "slurm", "pbs", "ssh"]


def connection_lines(rec: Any) -> list[str]:
    """Dashboard URL, and the tunnel command when the head is elsewhere."""
    lines = []
    if rec.dashboard_url:
        lines.append(f"dashboard / jobs API: {rec.dashboard_url} (token: {rec.auth.token_file or '$' + str(rec.auth.token_env)})")
    if getattr(rec, "tunnel_command", None):
        lines.append(f"from another machine: {rec.tunnel_command}")
    return lines


@app.command("start")
def cluster_start(
    kind: str = choice_option("local", "--kind", choices=KINDS, help="The kind of cluster: a local head, a Slurm or PBS allocation, or hosts over ssh."),
    name: str = typer.Option("default", "--name", help="Cluster name."),
    nodes: int | None = typer.Option(None, "--nodes", help="slurm: nodes to allocate (head on the first)."),
    cpus_per_node: int | None = typer.Option(None, "--cpus-per-node", help="slurm: CPUs per node (sbatch --cpus-per-task)."),
    gpus_per_node: int | None = typer.Option(None, "--gpus-per-node", help="slurm: GPUs per node."),
    mem: str | None = typer.Option(None, "--mem", help="slurm: memory per node, e.g. 16G."),
    time: float | None = duration_option(None, "--time", help="slurm: walltime, e.g. 2h or 1:00:00."),
    partition: str | None = typer.Option(None, "--partition", help="slurm: partition."),
    account: str | None = typer.Option(None, "--account", help="slurm, pbs: account to charge."),
    qos: str | None = typer.Option(None, "--qos", help="slurm: QOS."),
    sbatch_arg: list[str] | None = typer.Option(None, "--sbatch-arg", help="slurm: one more sbatch option (repeatable)."),
    select: str | None = typer.Option(None, "--select", help="pbs: chunks, e.g. 2:ncpus=4."),
    walltime: float | None = duration_option(None, "--walltime", help="pbs: walltime, e.g. 2h or 01:00:00."),
    queue: str | None = typer.Option(None, "--queue", help="pbs: queue."),
    host: str | None = typer.Option(None, "--host", help="ssh: host of the head."),
    jump: str | None = typer.Option(None, "--jump", help="ssh: jump host (ssh -J)."),
    user: str | None = typer.Option(None, "--user", help="ssh: remote user."),
    workers: str | None = typer.Option(None, "--workers", help="ssh: worker hosts h1,h2."),
    port: int | None = typer.Option(None, "--ssh-port", help="ssh: the sshd port to connect to (default 22)."),
    old_port: int | None = hidden_alias("--port"),
    idle_timeout: float | None = duration_option(None, "--idle-timeout", help="Stop the cluster after no active run for this long (e.g. 60m)."),
    object_store_memory: int | None = typer.Option(None, "--object-store-memory", help="Object store bytes per node."),
    env_cache: str | None = typer.Option(
        None, "--env-cache", help="slurm, pbs, ssh: run-environment cache as the nodes see it; ~ and $VARS expand on each node (docs/environments.md)."
    ),
    wait: bool = typer.Option(False, "--wait", help="Return once the cluster is active (default: once the scheduler accepted it)."),
    wait_timeout: float | None = duration_option(
        None, "--wait-timeout", help="slurm, pbs: with --wait, give up waiting after this long (default 10m); the allocation stays submitted."
    ),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """Start a Ray cluster of any kind and record it; progress on stderr, connection info at the end."""
    import sys

    from merlin.cli.output import emit_json, message
    from merlin.controlplane import ControlPlane
    from merlin.durations import clock
    from merlin.safety import check_number

    check_number(nodes, "--nodes", minimum=1, integer=True)
    check_number(cpus_per_node, "--cpus-per-node", integer=True)
    check_number(gpus_per_node, "--gpus-per-node", integer=True)
    port = merged(port, old_port, "--ssh-port", "--port")
    check_number(port, "--ssh-port", minimum=1, maximum=65535, integer=True)
    check_number(object_store_memory, "--object-store-memory", minimum=0, above_minimum=True, integer=True)

    given: dict[str, dict[str, Any]] = {
        "slurm": dict(nodes=nodes, cpus_per_node=cpus_per_node, gpus_per_node=gpus_per_node, mem=mem, time=None if time is None else clock(time),
                      partition=partition, account=account, qos=qos, sbatch_args=list(sbatch_arg or [])),
        "pbs": dict(select=select, walltime=None if walltime is None else clock(walltime, days=False), queue=queue, account=account),
        "ssh": dict(host=host, jump=jump, user=user, workers=workers, port=port),
    }  # fmt: skip
    if kind not in ("local", *given):
        raise BadInput(f"--kind {kind!r}: expected local, slurm, pbs or ssh")
    for other, opts in given.items():
        if other == kind:
            continue
        stray = [k for k, v in opts.items() if v not in (None, []) and not (k == "account" and kind in ("slurm", "pbs"))]
        if stray:
            flags = ", ".join({"sbatch_args": "--sbatch-arg", "port": "--ssh-port"}.get(k) or "--" + k.replace("_", "-") for k in stray)
            raise BadInput(f"--kind {kind} does not take {flags} (those are --kind {other} options)")
    if wait_timeout is not None and (kind not in ("slurm", "pbs") or not wait):
        raise BadInput(f"--wait-timeout bounds the --wait of a slurm or pbs start: add --wait{'' if kind in ('slurm', 'pbs') else ' and --kind slurm or pbs'}")
    check_number(wait_timeout, "--wait-timeout", minimum=0, above_minimum=True)
    cp = ControlPlane(state_root)
    progress = (lambda m: message(m)) if (sys.stderr.isatty() or not json) else None
    if kind == "local" and env_cache:
        raise BadInput("--kind local does not take --env-cache: a local cluster uses this host's cache ($MERLIN_ENV_CACHE, or merlin envs --cache)")
    if kind == "local":
        rec, started = cp.start_local_cluster(name, object_store_memory=object_store_memory, progress=progress)
    else:
        options = {k: v for k, v in given[kind].items() if v not in (None, [])}
        options["idle_timeout"] = idle_timeout
        options["object_store_memory"] = object_store_memory
        options["env_cache"] = env_cache
        if wait_timeout is not None:
            options["timeout"] = wait_timeout
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


@app.command("start-local")
def cluster_start_local(
    ctx: typer.Context,
    name: str = ClusterNameOpt,
    host: str = typer.Option("127.0.0.1", "--host", help="Address the jobs API binds to. Non-loopback needs --allow-remote."),
    allow_remote: bool = typer.Option(False, "--allow-remote", help="Allow a non-loopback --host (anyone reaching it can run code)."),
    port: int | None = typer.Option(None, "--gcs-port", help="The port Ray's GCS listens on (the cluster's address).  [default: 6379]"),
    old_port: int | None = hidden_alias("--port"),
    dashboard_port: int = typer.Option(8265, "--dashboard-port", help="Jobs API / dashboard port."),
    port_range: str | None = typer.Option(
        None, "--port-range", metavar="LO-HI",
        help="Put every port Ray opens (GCS, dashboard, agents, metrics, workers, ...) inside LO-HI; at least 27 ports. --gcs-port and --dashboard-port, if given, must be inside it.",
    ),
    num_cpus: int | None = typer.Option(None, "--num-cpus", help="CPUs Ray may schedule (default: all)."),
    num_gpus: int | None = typer.Option(None, "--num-gpus", help="GPUs Ray may schedule (default: detected)."),
    resource: list[str] | None = typer.Option(None, "--resource", help="Custom resource KEY=N (repeatable)."),
    object_store_memory: int | None = typer.Option(None, "--object-store-memory", help="Object store size in bytes (default: Ray's, 30% of RAM)."),
    auth: str = choice_option(
        "token", "--auth", choices=["token", "none"],
        help="token (default): Ray token authentication (RAY_AUTH_MODE=token); none: no authentication (prints what becomes reachable).",
    ),
    token_file: Path | None = typer.Option(None, "--token-file", help="Token file (mode 0600). Default: generated once per cluster under the state root."),
    token_env: str | None = typer.Option(None, "--token-env", help="Read the token from this environment variable instead."),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """Start a local Ray head bound to 127.0.0.1 with its own temp directory, and record it."""
    from merlin.cli.output import emit_json, message, warn
    from merlin.safety import check_number

    port = merged(port, old_port, "--gcs-port", "--port")
    port = 6379 if port is None else port
    check_number(port, "--gcs-port", minimum=1, maximum=65535, integer=True)
    check_number(dashboard_port, "--dashboard-port", minimum=1, maximum=65535, integer=True)
    check_number(num_cpus, "--num-cpus", integer=True)
    check_number(num_gpus, "--num-gpus", integer=True)
    check_number(object_store_memory, "--object-store-memory", minimum=0, above_minimum=True, integer=True)

    def typed(option: str) -> bool:
        return getattr(ctx.get_parameter_source(option), "name", "DEFAULT") not in ("DEFAULT", "DEFAULT_MAP")

    if port_range is not None:  # inside a range, ports not typed are chosen from it
        port = port if typed("port") or typed("old_port") else None
        dashboard_port = dashboard_port if typed("dashboard_port") else None  # type: ignore[assignment]
    cp = control_plane(state_root)
    try:
        rec, started = cp.start_local_cluster(
            name,
            host=host,
            port=port,
            dashboard_port=dashboard_port,
            port_range=port_range,
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            resources=key_values(resource, "--resource", True),
            object_store_memory=object_store_memory,
            auth=auth,
            token_file=token_file,
            token_env=token_env,
            allow_remote=allow_remote,
            progress=lambda m: message(m),
            warn=warn,
        )
    except KeyboardInterrupt:  # say what the interrupted start stopped, then exit 130 at the boundary
        st = cp.cluster_status(name, sockets=False)
        message(f"cluster '{name}': " + (st.message if st.state != "absent" else "interrupted before anything started; nothing to clean up"))
        raise
    asked = {"host": host, "port": port, "dashboard_port": dashboard_port, "num_cpus": num_cpus, "num_gpus": num_gpus,
             "resources": key_values(resource, "--resource", True) or None, "object_store_memory": object_store_memory, "auth": auth, "port_range": port_range}
    differences = [] if started else start_differences(ctx, rec, asked)
    steps = restart_steps(name, state_root) if differences else []
    if json:
        emit_json({"started": started, "cluster": rec.model_dump(mode="json"), "differences": differences, "next_steps": steps})
        return
    if differences:
        message(
            f"cluster '{rec.name}' is already active at {rec.address} with other options: {'; '.join(differences)}. "
            "It was left as it is; to run with the new options, stop it and start it again:"
        )
        from merlin.cli.nextsteps import say_next

        say_next(steps)
    elif not started:
        message(f"cluster '{rec.name}' is already active at {rec.address} (Ray {rec.ray_version}) with these options; nothing to do")
    print_cluster(rec, "active")


def print_cluster(rec: Any, state: str, note: str = "") -> None:
    from rich.table import Table

    from merlin.cli.output import out

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("cluster", rec.name)
    grid.add_row("state", status_styled(state))
    grid.add_row("jobs API", rec.address)
    grid.add_row("dashboard", rec.dashboard_url)
    grid.add_row("GCS", rec.gcs_address or "-")
    grid.add_row("Ray", rec.ray_version or "-")
    from merlin.cli.tables import resource_text

    grid.add_row("resources", resource_text(rec.resources))
    if rec.ports.min_worker:
        grid.add_row("ports", f"{rec.requested.get('port_range', '-')} (workers {rec.ports.min_worker}-{rec.ports.max_worker})")
    grid.add_row("processes", f"{len(rec.processes)} recorded (session {rec.session_id})")
    auth = rec.auth.mode + (f" (token from {'$' + rec.auth.token_env if rec.auth.token_env else rec.auth.token_file})" if rec.auth.mode == "token" else "")
    grid.add_row("auth", auth)
    grid.add_row("temp dir", rec.temp_dir)
    if rec.kind != "local":  # hpc: scheduler-backed kinds
        for key, value in scheduler_rows(rec):
            grid.add_row(key, value)
    if note:
        grid.add_row("note", note)
    out().print(grid)


@app.command("status")
def cluster_status(name: str = ClusterNameOpt, state_root: Path | None = StateRootOpt, json: bool = JsonOpt) -> None:
    """Ask the live cluster: exit 0 active, 3 recorded but not active (stopped, unreachable, ...), 4 no such cluster."""
    from merlin.cli.output import emit_json, warn
    from merlin.errors import Blocked, NotFound

    st = control_plane(state_root).cluster_status(name)
    if json:
        emit_json(st.to_json())
    elif st.record is not None:
        print_cluster(st.record, st.state, st.message)
        from merlin.clusters.exposure import exposure_warning

        if st.exposed:
            warn(exposure_warning(name, st.exposed))
        if st.record.auth.mode != "token":
            warn(f"cluster '{name}' runs without token authentication: any local user can submit jobs that run as you")
        if st.foreign_jobs:
            from merlin.cli.output import message
            from merlin.controlplane import jobs_shown

            message(f"{len(st.foreign_jobs)} active Ray job(s) merlin did not submit: {jobs_shown(st.foreign_jobs)}; `cluster stop` refuses while they run")
    if st.state == "absent":  # like `cluster stop`: an unknown cluster is not found (4), not blocked
        raise NotFound(f"cluster '{name}': {st.message}", next_steps=st.next_steps)
    if st.state != "active":
        raise Blocked(f"cluster '{name}' is {said(st.state, st.message)}", f"cluster_{st.state}", next_steps=st.next_steps)


@app.command("stop")
def cluster_stop(
    name: str = ClusterNameOpt,
    grace: float = duration_option("5s", "--grace", help="Time between SIGTERM and SIGKILL."),
    force: bool = typer.Option(False, "--force", help="Stop it although runs are active on it: they are recorded as cancelled (cluster stopped), their logs kept."),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """Stop this cluster's processes only (never `ray stop`, which ends every Ray on the machine). Refused while runs are active on it, unless --force."""
    from merlin.cli.output import emit_json, message
    from merlin.errors import Blocked
    from merlin.safety import check_number

    check_number(grace, "--grace", maximum=3600)

    cp = control_plane(state_root)
    try:
        rec = cp.stop_cluster(name, grace=grace, force=force, progress=lambda m: message(m))
    except Blocked as exc:
        if exc.cause != "cluster_has_runs":
            raise
        from merlin.cli.nextsteps import ARGV, command

        if not json:
            for s in exc.next_steps:
                message(f"  active: {s['args']['run_id']} (see it with `{command(s, ARGV)}`)")
        raise Blocked(f"{exc.message}: add --force", exc.cause) from None
    if json:
        emit_json(rec.model_dump(mode="json"))
    else:
        message(f"cluster '{name}' {said('stopped', rec.message)}" if rec.message.startswith("stopped") else f"cluster '{name}': {rec.message}")


@app.command("list")
def cluster_list(output: str | None = output_option(), state_root: Path | None = StateRootOpt, json: bool = JsonOpt) -> None:
    """Every recorded cluster with its live state.

    The table fits the terminal (columns drop in the order of docs/views.md; names and the jobs URL stay whole,
    the message is cut); -o wide shows every column whole, with absolute times."""
    from merlin.cli.output import emit_json, message, out

    mode = output_mode(output, json)
    cp = control_plane(state_root)
    states = cp.list_clusters()
    if mode == "json":
        emit_json([s.to_json() for s in states])
        return
    if mode == "name":
        sys.stdout.write("".join(f"{s.name}\n" for s in states))
        return
    if not states:
        message(f"no clusters recorded in {where(cp)}; start one with `{invoked()} ray cluster start-local`")
        return
    from merlin.cli.common import age
    from merlin.cli.tables import GIVE, Column, build, show

    wide = mode == "wide"
    columns = [Column("NAME"), Column("STATE"), Column("JOBS API", drop=3), Column("KIND", drop=6), Column("RAY", drop=5), Column("AUTH", drop=4),
               Column("STARTED", drop=7), Column("MESSAGE", GIVE, overflow="fold" if wide else "ellipsis", floor=12, drop=2)]
    rows = []
    for s in states:
        r = s.record
        started = r.started_at.isoformat() if r.started_at else None
        rows.append([s.name, status_styled(s.state), r.address, r.kind, r.ray_version or "-", r.auth.mode,
                     short_time(started) if wide else age(started), s.message.replace("\n", " ")])
    console = out()
    show(build(columns, rows, 10_000 if wide else console.width), console)



@app.command("env")
def cluster_env(
    name: str = typer.Argument("default", metavar="NAME", help="Cluster name."),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """Print the shell exports that point Ray's own tools at this cluster: eval "$(merlin ray cluster env NAME)".

    Then `ray job submit/list/logs/stop`, `ray status`, `JobSubmissionClient()` and
    `ray.init()` reach it with its token (see docs/ray.md, "Ray's own tools").
    """
    import shlex

    from merlin.cli.output import emit_json

    env = control_plane(state_root).cluster_env(name)
    if json:
        emit_json(env.to_json())
        return
    lines = [f"unset {var}" for var in env.unset]
    lines += [f"export {var}={shlex.quote(value)}" for var, value in env.variables.items()]
    lines += [f'export {var}="${{{ref}}}"' for var, ref in env.references.items()]
    if env.dashboard_url:
        token = f"when it asks for the token, paste the contents of {env.token_file}" if env.token_file else "it asks for the cluster's token"
        lines.append(f"# dashboard: {env.dashboard_url} ({token})")
    typer.echo("\n".join(lines))
