"""``merlin ray ...``: cluster lifecycle, runs (jobs) and artifacts (see docs/ray.md).

Every command takes ``--state-root`` and ``--json``. Data goes to stdout,
messages to stderr. Exit codes: 0 ok, 1 the run failed, 2 bad input,
3 blocked, 4 not found. Nothing heavy is imported at module level: the
listing path reads JSON files and renders, without Ray or pydantic.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(help="Ray control plane: clusters, runs (jobs) and artifacts.", no_args_is_help=True)
cluster_app = typer.Typer(help="Start, inspect and stop local Ray clusters.", no_args_is_help=True)
jobs_app = typer.Typer(help="Submit, list, follow, cancel and retry runs.", no_args_is_help=True)
artifacts_app = typer.Typer(help="List and fetch the files a run produced.", no_args_is_help=True)
app.add_typer(cluster_app, name="cluster")
cluster_app.command("start")(__import__("merlin.cli.cluster_cmd", fromlist=["cluster_start"]).cluster_start)  # hpc: --kind local|slurm|pbs|ssh
app.add_typer(jobs_app, name="jobs")
app.add_typer(artifacts_app, name="artifacts")
app.add_typer(__import__("merlin.cli.resources_cmd", fromlist=["app"]).app, name="resources")
jobs_app.command("why")(__import__("merlin.cli.resources_cmd", fromlist=["jobs_why"]).jobs_why)

StateRootOpt = typer.Option(
    None, "--state-root", help="Ledger directory (default: $MERLIN_STATE_ROOT or build/generated/ray).", show_default=False
)
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")
ClusterNameOpt = typer.Option("default", "--name", help="Cluster name (records: cluster/bootstrap.json for 'default', cluster/<name>.json otherwise).")

_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "blocked": "yellow",
    "running": "cyan",
    "pending": "blue",
    "cancelled": "magenta",
    "lost": "magenta",
    "active": "green",
    "unreachable": "red",
    "stopped": "dim",
    "absent": "dim",
    "failed_cluster": "red",
    "starting": "blue",
}


def _say(text: str) -> None:
    """A plain message line on stderr without building a Rich console (hot paths:
    submit, retry). Same bytes Rich would print for an unstyled line."""
    import sys

    sys.stderr.write(text.rstrip("\n") + "\n")
    sys.stderr.flush()


def _cp(state_root: Path | None):
    from merlin.controlplane import ControlPlane
    from merlin.errors import BadInput

    cp = ControlPlane(state_root)
    if cp.root.exists() and not cp.root.is_dir():  # every command, listing or not, says so (exit 2)
        raise BadInput(f"state root {cp.root} is not a directory; pass --state-root DIR (or set $MERLIN_STATE_ROOT to one)")
    return cp


def _where(cp: Any) -> str:
    """The absolute state root, for messages that found nothing: the default root is relative to the
    current directory, so from another directory the ledger is silently a different (empty) one."""
    return f"{Path(cp.root).resolve()} (the state root; --state-root or $MERLIN_STATE_ROOT picks another)"


def _pairs(values: list[str] | None, flag: str, number: bool) -> dict[str, Any]:
    from merlin.errors import BadInput

    out: dict[str, Any] = {}
    for item in values or []:
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise BadInput(f"{flag} {item!r}: expected KEY={'N' if number else 'VALUE'}")
        if number:
            from merlin.safety import check_number

            try:
                out[key] = float(val)
            except ValueError:
                raise BadInput(f"{flag} {item!r}: {val!r} is not a number") from None
            check_number(out[key], f"{flag} {key}")
        else:
            out[key] = val
    return out


def _short_time(value: Any) -> str:
    if not value:
        return "-"
    text = str(value)
    return text[:19].replace("T", " ") + ("Z" if len(text) > 19 else "")


def _clock(value: Any) -> str:
    """HH:MM:SS (UTC) of an ISO time: attempts share the run's date, shown above."""
    text = str(value or "")
    return text[11:19] if len(text) >= 19 else "-"


def _styled(text: str, key: str | None = None) -> Any:
    from merlin.cli.output import styled

    return styled(text, _STYLE.get(key or text, ""))


def _steps(rec: Any) -> list[dict[str, Any]]:
    """A record's next steps as plain dicts (records are pydantic; ClusterState holds dicts)."""
    return [s.model_dump() if hasattr(s, "model_dump") else s for s in getattr(rec, "next_steps", None) or []]


def _say_next(rec: Any) -> None:
    from merlin.cli.nextsteps import say_next

    say_next(_steps(rec))


def _me() -> str:
    from merlin.cli.nextsteps import invoked_as

    return invoked_as()


def _default_engine() -> str:
    from merlin.engines.registry import DEFAULT_ENGINE

    return DEFAULT_ENGINE


def _engine_help() -> str:
    from merlin.engines.registry import names

    return f"One of {', '.join(names())} (local: a supervised process group; ray: Ray Jobs)."


def _record_json(rec: Any) -> dict[str, Any]:
    return rec.model_dump(mode="json") if hasattr(rec, "model_dump") else rec


def _exit_for_run(rec: Any, *, waited: bool) -> None:
    """Blocked runs exit 3; with --wait, a run that did not succeed exits 1."""
    from merlin.errors import Blocked, RunFailed

    status = rec.status.value
    if status == "blocked":
        raise Blocked(f"run {rec.run_id} is blocked: {rec.message.removeprefix('blocked: ')}", next_steps=_steps(rec))
    if waited and status in ("failed", "cancelled", "lost"):
        raise RunFailed(f"run {rec.run_id} {_said(status, rec.message)}", next_steps=_steps(rec))


def _print_run(rec: Any, reason: dict[str, Any] | None = None) -> None:
    """A run for a person: key facts (and the first reason it is not running), then its attempts."""
    from merlin.cli.output import out

    d = _record_json(rec)
    grid: list[tuple[str, Any]] = []
    grid.append(("run", d["run_id"]))
    grid.append(("status", _styled(d["status"])))
    if d.get("outcome"):
        grid.append(("outcome", d["outcome"]))
    grid.append(("target / workflow", f"{d['target']} / {d['workflow']}"))
    cl = d.get("cluster") or {}
    grid.append(("engine", d["engine"] + (f" (cluster {cl.get('name')} {cl.get('address') or ''})" if cl else "")))
    import shlex

    grid.append(("command", shlex.join(d["command"])))
    grid.append(("target dir", d["target_dir"]))
    grid.append(("created / updated", f"{_short_time(d['created_at'])} / {_short_time(d['updated_at'])}"))
    grid.append(("observed", _short_time(d.get("observed_at"))))
    grid.append(("message", d.get("message") or "-"))
    if d.get("leases"):
        grid.append(("leases", ", ".join(d["leases"]) + (f" (items {', '.join(d['lease_items'])})" if d.get("lease_items") else "")))
    from merlin.cli.nextsteps import ARGV, command

    if reason is not None:
        from merlin.nextsteps import Action, step

        grid.append(("waiting on", f"{reason['layer']}/{reason['code']}: {reason['message']}"))
        grid.append(("all reasons", command(step(Action.WHY, run_id=d["run_id"]), ARGV)))
    for st in d.get("next_steps") or []:
        grid.append(("next", command(st, ARGV)))
    from merlin.cli.tables import pairs

    pairs(grid, out())
    if d["attempts"]:
        from merlin.cli.tables import GIVE, Column, build, show

        columns = [Column(h) for h in ("#", "submission", "status", "start UTC", "end UTC", "exit")] + [Column("error", GIVE)]
        rows = []
        for a in d["attempts"]:
            err = " ".join(x for x in (a.get("error_type") or "", (a.get("error_message") or "")[:120]) if x)
            rows.append([
                str(a["number"]),
                a.get("submission_id") or "-",
                _styled(a["status"]),
                _clock(a.get("start_time")),
                _clock(a.get("end_time")),
                "-" if a.get("exit_code") is None else str(a["exit_code"]),
                err or "-",
            ])
        show(build(columns, rows, out().width), out())


_RUN_COLUMNS: list[tuple[str, Any, int]] = [  # (header, cell function, nominal width used to choose the column set)
    ("RUN ID", lambda d: d.get("run_id", "?"), 40),
    ("STATUS", lambda d: d.get("status", "?"), 9),
    ("OUTCOME", lambda d: d.get("outcome") or "-", 17),
    ("UPDATED", lambda d: _short_time(d.get("updated_at")), 20),
    ("ENGINE", lambda d: d.get("engine", "?"), 6),
    ("TRIES", lambda d: str(len(d.get("attempts") or [])), 5),
    ("TARGET", lambda d: d.get("target", "?"), 16),
    ("WORKFLOW", lambda d: d.get("workflow", "?"), 16),
]
_ALWAYS = 3  # RUN ID, STATUS and OUTCOME at every width (a run waiting for an operator must not read only "succeeded")
_MESSAGE_FLOOR = 20


def _run_columns(width: int) -> list[tuple[str, Any, int]]:
    """The columns shown at ``width``: decided by the width alone (nominal widths), never by the
    data, so the same terminal always shows the same columns."""
    keep = list(_RUN_COLUMNS[:_ALWAYS])
    used = sum(w + 3 for _h, _f, w in keep) + _MESSAGE_FLOOR
    for col in _RUN_COLUMNS[_ALWAYS:]:
        if used + col[2] + 3 > width:
            break
        keep.append(col)
        used += col[2] + 3
    return keep


def _run_layout(rows: list[dict[str, Any]], width: int) -> tuple[list[tuple[str, Any, int]], dict[str, int], int, int]:
    """Columns fitted to ``width``: every shown column whole (ids are never cut), then the two
    text columns that give way: WAITING-ON (what a waiting run waits on; on terminals of at least
    _WAITING_FROM columns) and the message (at least a few characters; the line grows past the
    terminal before an id is cut). Returns (columns, widths, waiting-on width or 0, message width)."""
    from merlin.cli.output import neutralise

    keep = _run_columns(width)
    widths = {h: max([len(h), *(len(neutralise(str(fn(d)))) for d in rows)]) for h, fn, _w in keep}
    rest = width - sum(widths[h] + 3 for h, _f, _w in keep)
    waiting = 0
    if width >= _WAITING_FROM:
        longest = max([len(_WAITING), *(len(_waiting_on(d)) for d in rows)])
        waiting = min(longest, max(len(_WAITING), rest - _MESSAGE_FLOOR - 3))
        rest -= waiting + 3
    return keep, widths, waiting, max(rest, 12)


_WAITING = "WAITING-ON"
_WAITING_FROM = 100


def _waiting_on(d: dict[str, Any]) -> str:
    return (d.get("waiting_on") or "").replace("\n", " ") if d.get("status") == "waiting" else ""


def _runs_table(rows: list[dict[str, Any]], width: int | None = None) -> Any:
    """The runs table for people (Rich), fitted to the terminal."""
    from rich.table import Table

    from merlin.cli.output import out

    keep, widths, waiting, message_width = _run_layout(rows, width or out().width)
    t = Table(show_edge=False, pad_edge=False)
    for h, _fn, _p in keep:
        t.add_column(h, no_wrap=True, overflow="ignore", width=widths[h])  # whole: as wide as the longest value
    if waiting:
        t.add_column(_WAITING, no_wrap=True, overflow="ellipsis", width=waiting)  # gives way: cut
    t.add_column("MESSAGE", no_wrap=True, overflow="ellipsis", width=message_width)  # gives way: cut
    for d in rows:
        cells = [_styled(fn(d)) if h == "STATUS" else fn(d) for h, fn, _p in keep]
        if waiting:
            cells.append(_waiting_on(d))
        t.add_row(*cells, (d.get("message") or "").replace("\n", " "))
    return t


def _runs_text(rows: list[dict[str, Any]], width: int, colour: bool) -> str:
    """The same columns as plain fixed-width text: Rich needs ~0.5 ms a row, which
    makes a 1,000-run listing slower than Ray's own; this takes ~5 us a row."""
    keep, widths, waiting, message_width = _run_layout(rows, width)
    ansi = {"green": "32", "red": "31", "yellow": "33", "cyan": "36", "blue": "34", "magenta": "35", "dim": "2"}

    from merlin.cli.output import neutralise

    def fit(text: str, w: int) -> str:
        text = neutralise(text)  # outside text (messages, targets) never reaches the terminal raw
        return text.ljust(w) if len(text) <= w else text[: max(w - 1, 0)] + "\u2026"

    head = [*(fit(h, widths[h]) for h, _f, _p in keep)] + ([fit(_WAITING, waiting)] if waiting else [])
    lines = ["   ".join([*head, "MESSAGE"])]
    for d in rows:
        cells = []
        for h, fn, _p in keep:
            cell = fit(str(fn(d)), widths[h])
            code = ansi.get(_STYLE.get(cell.strip(), "")) if colour and h == "STATUS" else None
            cells.append(f"\x1b[{code}m{cell}\x1b[0m" if code else cell)
        if waiting:
            cells.append(fit(_waiting_on(d), waiting))
        cells.append(fit((d.get("message") or "").replace("\n", " "), message_width).rstrip())
        lines.append("   ".join(cells))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- clusters


@cluster_app.command("start-local")
def cluster_start_local(
    ctx: typer.Context,
    name: str = ClusterNameOpt,
    host: str = typer.Option("127.0.0.1", "--host", help="Address the jobs API binds to. Non-loopback needs --allow-remote."),
    allow_remote: bool = typer.Option(False, "--allow-remote", help="Allow a non-loopback --host (anyone reaching it can run code)."),
    port: int = typer.Option(6379, "--port", help="Ray GCS port."),
    dashboard_port: int = typer.Option(8265, "--dashboard-port", help="Jobs API / dashboard port."),
    num_cpus: int | None = typer.Option(None, "--num-cpus", help="CPUs Ray may schedule (default: all)."),
    num_gpus: int | None = typer.Option(None, "--num-gpus", help="GPUs Ray may schedule (default: detected)."),
    resource: list[str] | None = typer.Option(None, "--resource", help="Custom resource KEY=N (repeatable)."),
    object_store_memory: int | None = typer.Option(None, "--object-store-memory", help="Object store size in bytes (default: Ray's, 30% of RAM)."),
    auth: str = typer.Option("token", "--auth", help="token (default): Ray token authentication (RAY_AUTH_MODE=token); none: no authentication (prints what becomes reachable).", metavar="token|none"),
    token_file: Path | None = typer.Option(None, "--token-file", help="Token file (mode 0600). Default: generated once per cluster under the state root."),
    token_env: str | None = typer.Option(None, "--token-env", help="Read the token from this environment variable instead."),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """Start a local Ray head bound to 127.0.0.1 with its own temp directory, and record it."""
    from merlin.cli.output import emit_json, message, warn
    from merlin.safety import check_number

    check_number(port, "--port", minimum=1, maximum=65535, integer=True)
    check_number(dashboard_port, "--dashboard-port", minimum=1, maximum=65535, integer=True)
    check_number(num_cpus, "--num-cpus", integer=True)
    check_number(num_gpus, "--num-gpus", integer=True)
    check_number(object_store_memory, "--object-store-memory", minimum=0, above_minimum=True, integer=True)

    cp = _cp(state_root)
    rec, started = cp.start_local_cluster(
        name,
        host=host,
        port=port,
        dashboard_port=dashboard_port,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        resources=_pairs(resource, "--resource", True),
        object_store_memory=object_store_memory,
        auth=auth,
        token_file=token_file,
        token_env=token_env,
        allow_remote=allow_remote,
        progress=lambda m: message(m),
        warn=warn,
    )
    asked = {"host": host, "port": port, "dashboard_port": dashboard_port, "num_cpus": num_cpus, "num_gpus": num_gpus,
             "resources": _pairs(resource, "--resource", True) or None, "object_store_memory": object_store_memory, "auth": auth}
    differences = [] if started else _start_differences(ctx, rec, asked)
    steps = _restart_steps(name, state_root) if differences else []
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
    _print_cluster(rec, "active")


def _start_differences(ctx: Any, rec: Any, asked: dict[str, Any]) -> list[str]:
    """Options given on this command line that the active cluster was not started with
    (``--num-cpus 1 (cluster has 2)``); defaults the user did not type are not compared."""
    def typed(key: str) -> bool:  # compared by name: typer may carry its own copy of click's ParameterSource
        source = ctx.get_parameter_source("resource" if key == "resources" else key)
        return getattr(source, "name", "DEFAULT") not in ("DEFAULT", "DEFAULT_MAP")

    given = {k for k in asked if typed(k)}
    requested = getattr(rec, "requested", None) or {}
    have = {
        "host": rec.host, "port": rec.ports.gcs, "dashboard_port": rec.ports.dashboard,
        "num_cpus": requested.get("num_cpus", rec.resources.get("CPU")), "num_gpus": requested.get("num_gpus", rec.resources.get("GPU", 0)),
        "resources": requested.get("resources") or {}, "object_store_memory": requested.get("object_store_memory", rec.resources.get("object_store_memory")),
        "auth": rec.auth.mode,
    }
    out = []
    for key in asked:
        if key not in given:
            continue
        want, got = asked[key], have[key]
        if key == "resources":
            got = {k: v for k, v in (got or {}).items() if k in (want or {})}
            same = {k: float(v) for k, v in (want or {}).items()} == {k: float(v) for k, v in got.items()}
        elif key == "auth":
            same = (want if want != "none" else "disabled") == got
        elif isinstance(want, (int, float)) and isinstance(got, (int, float)):
            same = float(want) == float(got)
        else:
            same = want == got
        if not same:
            flag = "--resource" if key == "resources" else "--" + key.replace("_", "-")
            shown = ", ".join(f"{k}={v:g}" for k, v in sorted((want or {}).items())) if key == "resources" else want
            had = ", ".join(f"{k}={v:g}" for k, v in sorted(got.items())) or "none" if key == "resources" else ("unset" if got is None else got)
            out.append(f"{flag} {shown} (cluster has {had})")
    return out


def _restart_steps(name: str, state_root: Path | None) -> list[dict[str, Any]]:
    """``cluster stop`` then this very command line again: the restart the user asked for."""
    import sys

    from merlin.cli.nextsteps import ARGV
    from merlin.nextsteps import Action, step

    me = _me().split()
    stop = [*me, "ray", "cluster", "stop", *([] if name == "default" else ["--name", name]), *(["--state-root", str(state_root)] if state_root else [])]
    return [step(Action.RUN_AGAIN, argv=stop), step(Action.RUN_AGAIN, argv=[*me, *(ARGV or sys.argv[1:])])]


def _print_cluster(rec: Any, state: str, note: str = "") -> None:
    from rich.table import Table

    from merlin.cli.output import out

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("cluster", rec.name)
    grid.add_row("state", _styled(state))
    grid.add_row("jobs API", rec.address)
    grid.add_row("dashboard", rec.dashboard_url)
    grid.add_row("GCS", rec.gcs_address or "-")
    grid.add_row("Ray", rec.ray_version or "-")
    from merlin.cli.tables import resource_text

    grid.add_row("resources", resource_text(rec.resources))
    grid.add_row("processes", f"{len(rec.processes)} recorded (session {rec.session_id})")
    auth = rec.auth.mode + (f" (token from {'$' + rec.auth.token_env if rec.auth.token_env else rec.auth.token_file})" if rec.auth.mode == "token" else "")
    grid.add_row("auth", auth)
    grid.add_row("temp dir", rec.temp_dir)
    if rec.kind != "local":  # hpc: scheduler-backed kinds
        from merlin.cli.cluster_cmd import scheduler_rows

        for key, value in scheduler_rows(rec):
            grid.add_row(key, value)
    if note:
        grid.add_row("note", note)
    out().print(grid)


@cluster_app.command("status")
def cluster_status(name: str = ClusterNameOpt, state_root: Path | None = StateRootOpt, json: bool = JsonOpt) -> None:
    """Ask the live cluster: exit 0 active, 3 recorded but not active (stopped, unreachable, ...), 4 no such cluster."""
    from merlin.cli.output import emit_json, warn
    from merlin.errors import Blocked, NotFound

    st = _cp(state_root).cluster_status(name)
    if json:
        emit_json(st.to_json())
    elif st.record is not None:
        _print_cluster(st.record, st.state, st.message)
        from merlin.clusters.exposure import exposure_warning

        if st.exposed:
            warn(exposure_warning(name, st.exposed))
        if st.record.auth.mode != "token":
            warn(f"cluster '{name}' runs without token authentication: any local user can submit jobs that run as you")
    if st.state == "absent":  # like `cluster stop`: an unknown cluster is not found (4), not blocked
        raise NotFound(f"cluster '{name}': {st.message}", next_steps=st.next_steps)
    if st.state != "active":
        raise Blocked(f"cluster '{name}' is {_said(st.state, st.message)}", f"cluster_{st.state}", next_steps=st.next_steps)


@cluster_app.command("stop")
def cluster_stop(
    name: str = ClusterNameOpt,
    grace: float = typer.Option(5.0, "--grace", help="Seconds between SIGTERM and SIGKILL."),
    force: bool = typer.Option(False, "--force", help="Stop it although runs are active on it: they are recorded as cancelled (cluster stopped), their logs kept."),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """Stop this cluster's processes only (never `ray stop`, which ends every Ray on the machine). Refused while runs are active on it, unless --force."""
    from merlin.cli.output import emit_json, message
    from merlin.errors import Blocked
    from merlin.safety import check_number

    check_number(grace, "--grace", maximum=3600)

    cp = _cp(state_root)
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
        message(f"cluster '{name}' {_said('stopped', rec.message)}" if rec.message.startswith("stopped") else f"cluster '{name}': {rec.message}")


@cluster_app.command("list")
def cluster_list(state_root: Path | None = StateRootOpt, json: bool = JsonOpt) -> None:
    """Every recorded cluster with its live state."""
    from rich.table import Table

    from merlin.cli.output import emit_json, message, out

    cp = _cp(state_root)
    states = cp.list_clusters()
    if json:
        emit_json([s.to_json() for s in states])
        return
    if not states:
        message(f"no clusters recorded in {_where(cp)}; start one with `{_me()} ray cluster start-local`")
        return
    t = Table(show_edge=False)
    for col in ("NAME", "STATE", "JOBS API", "RAY", "AUTH", "STARTED", "MESSAGE"):
        t.add_column(col)
    for s in states:
        r = s.record
        t.add_row(s.name, _styled(s.state), r.address, r.ray_version or "-", r.auth.mode, _short_time(r.started_at.isoformat() if r.started_at else None), s.message)
    out().print(t)


# -------------------------------------------------------------------- jobs


@jobs_app.command("submit", context_settings={"allow_interspersed_args": False})
def jobs_submit(
    command: list[str] = typer.Argument(..., help="The command, after `--`.", show_default=False),
    target: str = typer.Option(..., "--target", help="Target name (becomes part of the run id)."),
    workflow: str = typer.Option(..., "--workflow", help="Workflow name."),
    engine: str = typer.Option(_default_engine(), "--engine", help=_engine_help()),
    target_dir: Path | None = typer.Option(None, "--target-dir", help="Directory indexed as artifacts (default: runs/<id>/target)."),
    num_cpus: float | None = typer.Option(None, "--num-cpus", help="CPUs reserved for the entrypoint (ray)."),
    num_gpus: float | None = typer.Option(None, "--num-gpus", help="GPUs reserved for the entrypoint (ray)."),
    resource: list[str] | None = typer.Option(None, "--resource", help="Custom resource KEY=N (repeatable, ray)."),
    env: list[str] | None = typer.Option(None, "--env", help="Environment K=V for the command (repeatable). Secret-looking names are redacted in records."),
    wait: bool = typer.Option(False, "--wait", help="Wait until the run ends; exit 1 if it did not succeed."),
    cluster: str | None = typer.Option(None, "--cluster", help="Cluster name for --engine ray (default: default)."),
    lease: list[str] | None = typer.Option(
        None, "--lease", help="Hardware it needs, POOL[:COUNT][,k=v...] (repeatable: a gang). The run waits for the lease, then starts by itself."
    ),
    time_: str | None = typer.Option(None, "--time", help="How long the run needs (MIN or [D-]HH:MM:SS); warns when the cluster's allocation ends sooner."),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """Record a run and hand it to an engine: `merlin ray jobs submit --target T --workflow W -- CMD ARGS...`."""
    import sys

    from merlin.cli.output import emit_json
    from merlin.safety import check_number

    check_number(num_cpus, "--num-cpus")
    check_number(num_gpus, "--num-gpus")

    cp = _cp(state_root)
    if time_ is not None:
        _warn_short_allocation(cp, engine, cluster or "default", time_)
    rec = cp.submit(
        command,
        target=target,
        workflow=workflow,
        engine=engine,
        target_dir=target_dir,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        resources=_pairs(resource, "--resource", True),
        env=_pairs(env, "--env", False),
        cluster=cluster,
        source="cli",
        leases=lease or (),
    )
    announced = False
    if wait and not rec.status.is_terminal() and rec.status.value != "blocked":
        from merlin.cli.waiting import announce, wait_for_run

        if not json:
            announce(rec)
            announced = True
        rec = wait_for_run(cp, rec, quiet=json)
    if json:
        emit_json(rec.model_dump(mode="json"))
    else:
        if rec.status.value == "succeeded" or (not wait and rec.status.value != "blocked"):
            _say(f"run {rec.run_id}: {rec.message}")
            _say_next(rec)
        if not announced:
            sys.stdout.write(rec.run_id + "\n")
    _exit_for_run(rec, waited=wait)


def _warn_short_allocation(cp: Any, engine: str, cluster: str, run_time: str) -> None:
    """`jobs submit --time`: warn (not refuse) when the cluster's walltime ends first."""
    from merlin.cli.output import warn
    from merlin.clusters.walltime import parse_duration, short_of_time

    seconds = parse_duration(run_time)
    if not cp.engine(engine).uses_cluster:
        return
    record = cp.ledger.read_cluster(cluster)
    text = short_of_time(record, seconds) if record is not None else None
    if text:
        warn(text)


def _write_json_array(records: Iterable[bytes]) -> None:
    """Stream stored records (canonical JSON, redacted when written) to stdout as one
    JSON array, in ~1 MiB writes: no re-serialising, no 50 MiB string in memory."""
    import sys

    sys.stdout.flush()
    write = sys.stdout.buffer.write
    buf = bytearray(b"[")
    sep = b"\n"
    for raw in records:
        buf += sep
        buf += raw.rstrip(b"\n")
        sep = b",\n"
        if len(buf) >= 1 << 20:
            write(buf)
            buf.clear()
    buf += b"\n]\n"  # "[\n]\n" when empty, as before
    write(buf)
    sys.stdout.buffer.flush()


@jobs_app.command("list")
def jobs_list(
    status: list[str] | None = typer.Option(None, "--status", help="Only runs with this status (repeatable)."),
    refresh: bool = typer.Option(False, "--refresh", help="Ask the engines first (one list_jobs per Ray cluster)."),
    limit: int | None = typer.Option(None, "--limit", help="Newest N runs (table default 50, JSON default all; 0 = all)."),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """Runs in the ledger, newest first."""
    from merlin.cli.output import message
    from merlin.safety import check_number

    check_number(limit, "--limit", minimum=0, integer=True)  # -1 would be a Python slice, not a count

    cp = _cp(state_root)
    entries = cp.list_entries(status=status, refresh=refresh)
    swept = cp.sweep()
    if swept:
        message(f"swept SIGKILL debris: {swept.summary()} (`{_me()} ray doctor` checks the whole state root)")
        entries = cp.list_entries(status=status) if swept.completed else entries
    total = len(entries)
    n = limit if limit is not None else (0 if json else 50)
    if json:
        from merlin.ledger.index import record_bytes

        _write_json_array(record_bytes(entries, n))
        return
    if n:
        entries = entries[:n]
    rows = [d for d, _raw in entries]
    if not rows:
        message("no runs recorded" + (" with that status" if status else "") + f" in {_where(cp)}; submit one with `{_me()} ray jobs submit`")
        return
    from merlin.cli.output import out

    console = out()
    if len(rows) > 100:  # long listings: plain columns, same layout (see _runs_text)
        import sys

        sys.stdout.write(_runs_text(rows, console.width, colour=console.is_terminal and not console.no_color))
    else:
        from merlin.cli.tables import show

        show(_runs_table(rows, console.width), console)
    if len(rows) < total:
        message(f"{len(rows)} of {total} runs shown; --limit 0 shows all")


@app.command("doctor")
def doctor(
    min_age: float = typer.Option(60.0, "--min-age", help="Leave alone anything that changed less than this many seconds ago (it may be being written)."),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """Sweep SIGKILL debris: complete (as lost) or remove run directories without a record, remove stale temp files."""
    from merlin.cli.output import emit_json, message
    from merlin.safety import check_number

    check_number(min_age, "--min-age", minimum=0)
    report = _cp(state_root).sweep(everything=True, min_age=min_age)
    if json:
        emit_json(report.to_json())
        return
    message(f"doctor: {report.summary()}" + (f"; {len(report.deferred)} too recent to judge" if report.deferred else ""))


@jobs_app.command("status")
def jobs_status(
    run_id: str = typer.Argument(..., help="Run id."),
    no_refresh: bool = typer.Option(False, "--no-refresh", help="Read the ledger only; do not ask the engine."),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """One run, after asking its engine."""
    from merlin.cli.output import emit_json

    cp = _cp(state_root)
    rec = cp.status_json(run_id, refresh=not no_refresh)
    if json:
        emit_json(rec)
    else:
        _print_run(rec, _first_reason(cp, rec))


def _first_reason(cp: Any, rec: Any) -> dict[str, Any] | None:
    """The first condition `jobs why` would list, for a run that is not running yet."""
    d = _record_json(rec)
    if d.get("status") not in ("waiting", "pending", "blocked"):
        return None
    try:
        conds = cp.why(d["run_id"])
    except Exception:  # a reason is a courtesy here: `jobs why` reports its own errors
        return None
    return conds[0] if conds else None


@jobs_app.command("logs")
def jobs_logs(
    run_id: str = typer.Argument(..., help="Run id."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Stream until the run ends."),
    attempt: int | None = typer.Option(None, "--attempt", help="Attempt number (default: latest)."),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """The run's output (stdout and stderr of the command)."""
    import sys

    from merlin.cli.output import emit_json, message
    from merlin.safety import check_number

    check_number(attempt, "--attempt", minimum=1, integer=True)

    cp = _cp(state_root)
    if follow and not json:
        for chunk in cp.follow(run_id):
            sys.stdout.write(chunk)
            sys.stdout.flush()
        rec = cp.get(run_id)
        message(f"run {run_id} {_said(rec.status.value, rec.message)}")
        _say_next(rec)
        return
    text = cp.logs(run_id, attempt)
    hint = cp.task_logs_hint(run_id)
    if json:
        rec = cp.get(run_id)
        emit_json({"run_id": run_id, "attempt": attempt or len(rec.attempts), "status": rec.status.value, "logs": text,
                   "task_logs": str(Path(rec.target_dir) / "logs") if hint else None})
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
        if hint:
            message(hint)


@jobs_app.command("cancel")
def jobs_cancel(
    run_id: str = typer.Argument(..., help="Run id."),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """Stop a run (local: its whole process group; ray: stop_job)."""
    from merlin.cli.output import emit_json, message

    cp = _cp(state_root)
    before = cp.get(run_id).status.value
    rec = cp.cancel(run_id)
    if json:
        emit_json(rec.model_dump(mode="json"))
    elif before != "blocked" and rec.status.is_terminal() and before == rec.status.value:
        message(f"run {run_id} had already ended ({rec.status.value}); nothing to cancel")
    else:
        message(f"run {run_id}: {rec.message}")
        _say_next(rec)


@jobs_app.command("retry")
def jobs_retry(
    run_id: str = typer.Argument(..., help="Run id."),
    env: list[str] | None = typer.Option(None, "--env", help="Environment K=V (needed again for redacted secrets)."),
    cluster: str | None = typer.Option(None, "--cluster", help="Send the new attempt to another cluster (ray)."),
    wait: bool = typer.Option(False, "--wait", help="Wait until the run ends; exit 1 if it did not succeed."),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """A new attempt of a blocked, failed, cancelled or lost run."""
    from merlin.cli.output import emit_json, message

    cp = _cp(state_root)
    rec = cp.retry(run_id, env=_pairs(env, "--env", False), cluster=cluster)
    if wait and not rec.status.is_terminal() and rec.status.value != "blocked":
        from merlin.cli.waiting import announce, wait_for_run

        if not json:
            announce(rec)
        rec = wait_for_run(cp, rec, quiet=json)
    if json:
        emit_json(rec.model_dump(mode="json"))
    elif rec.status.value == "succeeded" or (not wait and rec.status.value != "blocked"):
        message(f"run {rec.run_id} attempt {len(rec.attempts)}: {rec.message}")
        _say_next(rec)
    _exit_for_run(rec, waited=wait)


@jobs_app.command("watch")
def jobs_watch(
    run_ids: list[str] | None = typer.Argument(None, help="Runs to watch (default: every pending or running run)."),
    interval: float = typer.Option(1.0, "--interval", help="Seconds between refreshes."),
    timeout: float | None = typer.Option(None, "--timeout", help="Give up after this many seconds."),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """A live table until every shown run is terminal."""
    import time

    from merlin.cli.output import emit_json, message, out
    from merlin.safety import check_number

    check_number(interval, "--interval", minimum=0, above_minimum=True, maximum=3600)
    check_number(timeout, "--timeout", minimum=0)

    cp = _cp(state_root)
    ids = list(run_ids or []) or [d["run_id"] for d in cp.list_runs(status=["pending", "running"])]
    if not ids:
        message(f"no pending or running runs to watch in {_where(cp)}")
        if json:
            emit_json([])
        return
    for rid in ids:
        cp.get(rid)  # unknown ids fail fast (exit 4)

    def rows() -> list[dict[str, Any]]:
        cp.refresh(ids)
        return [cp.ledger.read_raw(rid) for rid in ids]

    def done(rs: list[dict[str, Any]]) -> bool:
        from merlin.ledger.status import RunStatus

        return all(RunStatus(r["status"]).is_terminal() for r in rs)

    deadline = None if timeout is None else time.monotonic() + timeout
    current = rows()
    if json or not out().is_terminal:
        while not done(current) and (deadline is None or time.monotonic() < deadline):
            time.sleep(interval)
            current = rows()
        if json:
            emit_json(current)
        else:
            from merlin.cli.tables import show

            show(_runs_table(current))
    else:
        from rich.live import Live

        with Live(_runs_table(current), console=out(), refresh_per_second=4) as live:
            while not done(current) and (deadline is None or time.monotonic() < deadline):
                time.sleep(interval)
                current = rows()
                live.update(_runs_table(current))
    _watch_exit(current, timeout)


def _watch_exit(current: list[dict[str, Any]], timeout: float | None) -> None:
    """Exit 124 (as timeout(1) does) if a run is still going, 1 if a watched run did not succeed."""
    from merlin.cli.output import message
    from merlin.errors import RunFailed
    from merlin.ledger.status import RunStatus

    going = [r["run_id"] for r in current if not RunStatus(r["status"]).is_terminal()]
    if going:
        message(f"watch: --timeout {timeout:g}s passed; still going: {', '.join(going)}")
        raise typer.Exit(124)
    bad = [r for r in current if r["status"] in ("failed", "cancelled", "lost")]
    if bad:
        raise RunFailed("watch: " + "; ".join(f"run {r['run_id']} {_said(r['status'], r.get('message') or '')}" for r in bad))


def _said(status: str, text: str) -> str:
    """``failed (exit code 7)``, not ``failed: failed (exit code 7)``: the status word once."""
    text = (text or "").strip()
    if not text or text == status:
        return status
    first = text.split(None, 1)[0].rstrip(":;,.(")
    return text if first == status else f"{status}: {text}"


# -------------------------------------------------------------- artifacts


@artifacts_app.command("list")
def artifacts_list(run_id: str = typer.Argument(..., help="Run id."), state_root: Path | None = StateRootOpt, json: bool = JsonOpt) -> None:
    """Files of the run's target directory, as indexed when it ended."""
    from merlin.cli.output import emit_json, message, out

    idx = _cp(state_root).artifacts(run_id)
    if json:
        emit_json(idx.model_dump(mode="json"))
        return
    if not idx.files:
        message(f"run {run_id}: no files in {idx.target_dir}")
        return
    from merlin.cli.tables import Column, build, show

    columns = [Column(h) for h in ("NAME", "KIND", "SIZE", "SHA256")]  # NAME is what `artifacts fetch` takes: never cut
    rows = [[f.name, f.kind, str(f.size), f.sha256[:16] if f.sha256 else "-"] for f in idx.files]
    show(build(columns, rows, out().width), out())
    message(f"{len(idx.files)} files, {idx.total_size} bytes in {idx.target_dir}" + (f" (truncated: {idx.truncated_reason or 'limit reached'})" if idx.truncated else ""))


@artifacts_app.command("fetch")
def artifacts_fetch(
    run_id: str = typer.Argument(..., help="Run id."),
    name: str = typer.Argument(..., help="Artifact name as listed (relative path)."),
    to: Path = typer.Option(..., "--to", help="Destination directory."),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """Copy one artifact into DIR and verify its sha256."""
    from merlin.cli.output import emit_json, message

    cp = _cp(state_root)
    dest = cp.fetch_artifact(run_id, name, to)
    hashed = any(f.name == name and f.sha256 for f in cp.artifacts(run_id).files)
    if json:
        emit_json({"run_id": run_id, "name": name, "path": str(dest), "verified": hashed})
    else:
        message(f"fetched {name} -> {dest} " + ("(sha256 verified)" if hashed else "(size checked; the index holds no sha256 for it)"))
        typer.echo(str(dest))
