"""``merlin ray jobs ...``: submit, list, follow, cancel, retry, watch runs and ask why one waits.

Data goes to stdout, messages to stderr. Exit codes: 0 ok, 1 the run failed,
2 bad input, 3 blocked, 4 not found. Nothing heavy is imported at module level:
the listing path reads JSON files and renders, without Ray or pydantic.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from merlin.cli.common import (
    clock_time,
    control_plane,
    exit_for_run,
    invoked,
    key_values,
    record_json,
    said,
    say,
    say_next,
    short_time,
    status_styled,
    where,
)
from merlin.cli.options import (
    JsonOpt,
    RecordFormatOpt,
    StateRootOpt,
    cluster_option,
    duration_option,
    engine_names,
    engine_option,
    output_mode,
    output_option,
    upstream_format,
)
from merlin.cli.runs_table import runs_table, runs_text

app = typer.Typer(help="Submit, list, follow, cancel and retry runs.", no_args_is_help=True)


@app.command("why")
def jobs_why(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix of one)."),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """Every condition holding a run back (leases, cluster, Ray, the scheduler, then the run), with evidence and the next steps.

    A held slot says who holds it, since when and until when. `--json` prints the gateway's runs_why
    document: {run_id, status, message, held, conditions, next_steps}."""
    from merlin.cli.nextsteps import condition_lines
    from merlin.cli.output import emit_json
    from merlin.controlplane import ControlPlane

    doc = ControlPlane(state_root).why(run_id, document=True)  # the gateway's runs_why, its steps as actions
    if json:
        emit_json(doc)
        return
    if not doc["conditions"]:
        say(f"run {doc['run_id']} ({doc['status']}): nothing holds it back")
    for c in doc["conditions"]:
        sys.stdout.write("".join(line + "\n" for line in condition_lines(c, sys.argv[1:])))


def _engine_help() -> str:
    from merlin.engines.registry import names

    return f"One of {', '.join(names())} (local: a supervised process group; ray: Ray Jobs)."


def environment_line(d: dict[str, Any]) -> str:
    """``inherited``; ``<env id> (cache hit|built)``; or what was asked, not built yet."""
    if not d.get("environment"):
        return "inherited"
    att = (d.get("attempts") or [{}])[-1]
    if att.get("env_id"):
        how = {"hit": "cache hit", "built": "built"}.get(att.get("env_cache") or "", "")
        return f"{att['env_id']} ({how}; {d['environment']})" if how else f"{att['env_id']} ({d['environment']})"
    return f"{d['environment']} (not built yet)"


def usage_line(usage: dict[str, Any] | None) -> str:
    """The last attempt's resource use for a person: ``wall 1.2s, CPU 0.8s, peak RSS 42.0 MiB`` ("" if not measured)."""
    if not usage:
        return ""
    from merlin.units import human_bytes

    parts = []
    if isinstance(usage.get("wall_s"), (int, float)):
        parts.append(f"wall {usage['wall_s']:.1f}s")
    if isinstance(usage.get("cpu_s"), (int, float)):
        parts.append(f"CPU {usage['cpu_s']:.2f}s")
    if isinstance(usage.get("max_rss_bytes"), (int, float)):
        parts.append(f"peak RSS {human_bytes(usage['max_rss_bytes'])}")
    return ", ".join(parts)


def _print_run(rec: Any, reason: dict[str, Any] | None = None) -> None:
    """A run for a person: key facts (and the first reason it is not running), then its attempts."""
    from merlin.cli.output import out

    d = record_json(rec)
    grid: list[tuple[str, Any]] = []
    grid.append(("run", d["run_id"]))
    grid.append(("status", status_styled(d["status"])))
    if d.get("outcome"):
        grid.append(("outcome", d["outcome"]))
    grid.append(("target / workflow", f"{d['target']} / {d['workflow']}"))
    cl = d.get("cluster") or {}
    grid.append(("engine", d["engine"] + (f" (cluster {cl.get('name')} {cl.get('address') or ''})" if cl else "")))
    import shlex

    grid.append(("command", shlex.join(d["command"])))
    grid.append(("target dir", d["target_dir"]))
    grid.append(("created / updated", f"{short_time(d['created_at'])} / {short_time(d['updated_at'])}"))
    grid.append(("observed", short_time(d.get("observed_at"))))
    grid.append(("message", d.get("message") or "-"))
    grid.append(("environment", environment_line(d)))
    used = usage_line((d.get("attempts") or [{}])[-1].get("usage"))
    if used:
        grid.append(("resource use", used))
    from merlin.cli.runs_table import attempt_row, print_replicas

    grid += attempt_row(d)
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

    pairs(grid, out(), fold=("message", "waiting on", "leases"))
    if d["attempts"]:
        from merlin.cli.tables import GIVE, Column, build, show

        columns = [Column(h) for h in ("#", "submission", "status", "start UTC", "end UTC", "exit")] + [Column("error", GIVE)]
        rows = []
        for a in d["attempts"]:
            err = " ".join(x for x in (a.get("error_type") or "", (a.get("error_message") or "")[:120]) if x)
            rows.append([
                str(a["number"]),
                a.get("submission_id") or "-",
                status_styled(a["status"]),
                clock_time(a.get("start_time")),
                clock_time(a.get("end_time")),
                "-" if a.get("exit_code") is None else str(a["exit_code"]),
                err or "-",
            ])
        show(build(columns, rows, out().width), out())
        print_replicas(d["attempts"][-1])


@app.command("submit", context_settings={"allow_interspersed_args": False})
def jobs_submit(
    ctx: typer.Context,
    command: list[str] = typer.Argument(..., help="The command, after `--`.", show_default=False),
    target: str = typer.Option(..., "--target", help="Target name (becomes part of the run id)."),
    workflow: str = typer.Option(..., "--workflow", help="Workflow name."),
    engine: str = engine_option(_engine_help()),
    target_dir: Path | None = typer.Option(None, "--target-dir", help="Directory indexed as artifacts (default: runs/<id>/target)."),
    num_cpus: float | None = typer.Option(None, "--num-cpus", help="CPUs reserved for the entrypoint (ray)."),
    num_gpus: float | None = typer.Option(None, "--num-gpus", help="GPUs reserved for the entrypoint (ray)."),
    memory: str | None = typer.Option(
        None, "--memory", metavar="SIZE", help="The most memory the command may use, e.g. 512MiB or 4GiB: merlin ends it past that (MEMORY_LIMIT); Ray also reserves it on the node."
    ),
    resource: list[str] | None = typer.Option(None, "--resource", help="Custom resource KEY=N (repeatable, ray)."),
    env: list[str] | None = typer.Option(None, "--env", help="Environment K=V for the command (repeatable). Secret-looking names are redacted in records."),
    wait: bool = typer.Option(False, "--wait", help="Wait until the run ends; exit 1 if it did not succeed."),
    cluster: str | None = cluster_option(),
    lease: list[str] | None = typer.Option(
        None, "--lease", help="Hardware it needs, POOL[:COUNT][,k=v...] (repeatable: a gang). The run waits for the lease, then starts by itself."
    ),
    time_: float | None = duration_option(
        None, "--time", help="How long the run needs (e.g. 2h or [D-]HH:MM:SS); warns when the cluster's allocation ends sooner, ignored (with a warning) where the engine has no walltime."
    ),
    requirements: Path | None = typer.Option(None, "--requirements", help="requirements.txt the run's environment installs (read now, frozen into the run; docs/environments.md)."),
    lock: Path | None = typer.Option(None, "--lock", help="A uv.lock (beside its pyproject.toml) or pylock.toml the environment installs."),
    with_: list[str] | None = typer.Option(None, "--with", help="A package for the run's environment (repeatable), e.g. numpy==2.1."),
    python: str | None = typer.Option(None, "--python", help="Python X.Y of the run's environment (default: this one's)."),
    working_dir: Path | None = typer.Option(None, "--working-dir", help="Directory snapshotted now; the run runs in a copy of it (limit $MERLIN_WORKING_DIR_LIMIT, default 512MiB)."),
    secret_env: list[str] | None = typer.Option(None, "--secret-env", help="An environment variable passed from this environment at launch, never recorded (repeatable)."),
    index_url: list[str] | None = typer.Option(None, "--index-url", help="Package index of the environment (repeatable: the first is the default)."),
    find_links: list[str] | None = typer.Option(None, "--find-links", help="A directory (or page) of wheels for the environment (repeatable)."),
    no_index: bool = typer.Option(False, "--no-index", help="The environment installs from --find-links only."),
    env_file: Path | None = typer.Option(None, "--env-file", help="runtime.yaml: the same fields as YAML (flags given here win)."),
    retries: int = typer.Option(0, "--retries", help="Retry by itself this many times after the command fails (exits non-zero)."),
    retries_infra: int = typer.Option(0, "--retries-infra", help="Retry by itself this many times after the infrastructure loses the run (node, head, supervisor...)."),
    retry_backoff: float | None = duration_option(None, "--retry-backoff", help="Wait before the first automatic retry (default 10s), doubling for each later one."),
    replicas: int | None = typer.Option(None, "--replicas", help="A gang: start this many processes together or not at all (docs/retries.md)."),
    placement: str | None = typer.Option(None, "--placement", help="Where a gang's replicas go: pack (few nodes) or spread (one per node)."),
    name: str | None = typer.Option(
        None, "--name", help="Job name: while a run of this name is live, submitting it again prints that run instead of starting a second one."
    ),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """Record a run and hand it to an engine: `merlin ray jobs submit --target T --workflow W -- CMD ARGS...`."""
    params = dict(locals())  # every parameter, as Typer converted it
    del params["ctx"]
    from merlin.cli.jobs_submit import submit
    from merlin.cli.options import typed as given

    # the body both parsers call: tests/test_submit_fast_path.py keeps the parameters in step
    submit(**params, typed=frozenset(p for p in params if given(ctx, p)))


#: the choices as help shows them, without importing the ledger on --help (tests/test_cli_help.py
#: checks them against RunStatus and merlin.control.find.SORT_FIELDS)
STATUS_CHOICES = "blocked|waiting|pending|running|succeeded|failed|cancelled|lost"
SORT_CHOICES = "created|updated|status|target|engine|cluster|run_id"


@app.command("list")
def jobs_list(
    status: list[str] | None = typer.Option(None, "--status", help="Only runs with this status (repeatable).", metavar=STATUS_CHOICES),
    target: list[str] | None = typer.Option(None, "--target", help="Only runs of this target (repeatable)."),
    cluster: list[str] | None = cluster_option("Only runs sent to this cluster (repeatable).", configured=False),
    engine: list[str] | None = typer.Option(None, "--engine", help="Only runs of this engine (repeatable).", metavar="|".join(engine_names())),
    since: float | None = duration_option(None, "--since", help="Only runs created at most this long ago (e.g. 1h, 2d)."),
    until: float | None = duration_option(None, "--until", help="Only runs created at least this long ago (e.g. 30m)."),
    sort: str | None = typer.Option(None, "--sort", help="Order by this field (created and updated: newest first; default: created).", metavar=SORT_CHOICES),
    refresh: bool = typer.Option(False, "--refresh", help="Ask the engines about every active run first, however long it takes (Ray: each run by its id over one connection, or one list of the cluster's jobs when more than 32 are active)."),
    limit: int | None = typer.Option(None, "--limit", help="Newest N runs (table default 50, JSON default all; 0 = all)."),
    output: str | None = output_option(),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """Runs in the ledger, newest first; filter them by status, target, cluster, engine and age.

    The table fits the terminal: columns drop in a fixed order (docs/views.md), run ids are never cut, and the
    active runs shown are asked about within 0.3 s (a row not refreshed in time says `stale` and its age)."""
    from merlin.cli.output import message
    from merlin.safety import check_number

    check_number(limit, "--limit", minimum=0, integer=True)  # -1 would be a Python slice, not a count
    mode = output_mode(output, json)

    cp = control_plane(state_root)
    filters: dict[str, Any] = dict(targets=target or (), clusters=cluster or (), engines=engine or (), since=since, until=until, sort=sort)
    entries = cp.list_entries(status=status, refresh=refresh, **filters)
    swept = cp.sweep()
    if swept:
        message(f"swept SIGKILL debris: {swept.summary()} (`{invoked()} ray doctor` checks the whole state root)")
        entries = cp.list_entries(status=status, **filters) if swept.completed else entries
    total = len(entries)
    n = limit if limit is not None else (0 if mode == "json" else 50)
    if mode == "json":
        from merlin.cli.output import write_json_array
        from merlin.ledger.index import record_bytes

        write_json_array(record_bytes(entries, n))
        return
    if n:
        entries = entries[:n]
    rows = [d for d, _raw in entries]
    if mode == "name":
        from merlin.cli.runs_table import runs_names

        sys.stdout.write(runs_names(rows))
        return
    if not rows:
        narrowed = status or any(v not in (None, ()) for v in filters.values())
        message("no runs recorded" + (" that match" if narrowed else "") + f" in {where(cp)}; submit one with `{invoked()} ray jobs submit`")
        return
    if not refresh:
        rows = _fresh(cp, rows, status)
    from merlin.cli.output import out

    console = out()
    wide = mode == "wide"
    if len(rows) > 100 or wide:  # long listings: plain columns, same layout (see runs_text); wide: nothing cut, no fitting
        sys.stdout.write(runs_text(rows, console.width, colour=console.is_terminal and not console.no_color, wide=wide))
    else:
        from merlin.cli.tables import show

        show(runs_table(rows, console.width), console)
    if len(rows) < total:
        message(f"{len(rows)} of {total} runs shown; --limit 0 shows all")
    if refresh:  # the engines were asked anyway: say what else runs on the clusters shown
        _foreign(cp, rows)
    stale = sum(1 for d in rows if d.get("_stale") is not None)
    if stale:
        message(f"{stale} active run(s) not answered by their engine within {FRESH_BUDGET:g}s are marked stale; --refresh waits for the answer")


def _foreign(cp: Any, rows: list[dict[str, Any]]) -> None:
    """One line per cluster of the rows shown that runs jobs merlin did not submit (Ray's own CLI or SDK)."""
    from merlin.cli.nextsteps import ARGV, command
    from merlin.cli.output import message
    from merlin.controlplane import jobs_shown
    from merlin.nextsteps import Action, step

    names = {c.get("name") if isinstance(c, dict) else c for d in rows if (c := d.get("cluster"))}
    for name in sorted(n for n in names if n):
        jobs = cp.foreign_jobs(name)
        if jobs:
            message(f"cluster '{name}' also runs {len(jobs)} Ray job(s) merlin did not submit: {jobs_shown(jobs)}; "
                    f"`{command(step(Action.CLUSTER_STATUS, name=name), ARGV)}` counts them, and `cluster stop` refuses while they run")


#: how long `jobs list` waits for the engines to answer about the active runs it shows (seconds)
FRESH_BUDGET = 0.3
_AFTER_WAIT = 0.12  # marking the stale rows, and the exit of a process whose thread still waits on the engine


def _fresh(cp: Any, rows: list[dict[str, Any]], status: list[str] | None) -> list[dict[str, Any]]:
    """The rows, with the active runs of engines that do not report their own status asked about
    within FRESH_BUDGET (a thread; what it learns later is recorded for the next look). A row the
    engine did not answer for in time keeps its record and is marked ``_stale`` (seconds since it
    was last observed)."""
    import threading
    import time

    from merlin.clock import parse

    start = time.time()
    active = [d for d in rows if d.get("status") in ("pending", "running") and not _self_reporting(cp, d.get("engine"))]
    if not active:
        return rows
    ids = [d["run_id"] for d in active]
    done = threading.Event()

    def ask() -> None:
        try:
            cp.refresh(ids)
        except Exception:  # a view's courtesy: the rows stay as recorded, marked stale
            return
        done.set()

    threading.Thread(target=ask, name="merlin-list-refresh", daemon=True).start()
    # the budget counts from the start (the engine's imports included), less what the view needs after the wait
    fresh = done.wait(max(0.0, FRESH_BUDGET - _AFTER_WAIT - (time.time() - start)))
    out = []
    for d in rows:
        if d["run_id"] not in ids:
            out.append(d)
            continue
        if fresh:
            d = cp.ledger.read_raw(d["run_id"])
            if status and d.get("status") not in status:
                continue
        else:
            seen = parse(d.get("observed_at") or d.get("updated_at"))
            d = dict(d, _stale=start - (seen or start))
        out.append(d)
    return out


def _self_reporting(cp: Any, engine: str | None) -> bool:
    try:
        return bool(cp.engine(engine).reports_own_status)
    except Exception:  # an engine this merlin does not know: nothing to ask
        return True


@app.command("status")
def jobs_status(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix of one)."),
    no_refresh: bool = typer.Option(False, "--no-refresh", help="Read the ledger only; do not ask the engine."),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
    fmt: str = RecordFormatOpt,
) -> None:
    """One run, after asking its engine."""
    from merlin.cli.output import emit_json

    cp = control_plane(state_root)
    if upstream_format(fmt):
        emit_json(cp.upstream_record("run", run_id))
        return
    rec = cp.status_json(run_id, refresh=not no_refresh)
    if json:
        emit_json(rec)
    else:
        _print_run(rec, _first_reason(cp, rec))


def _first_reason(cp: Any, rec: Any) -> dict[str, Any] | None:
    """The first condition `jobs why` would list, for a run that is not running yet."""
    d = record_json(rec)
    if d.get("status") not in ("waiting", "pending", "blocked"):
        return None
    try:
        conds = cp.why(d["run_id"])
    except Exception:  # a reason is a courtesy here: `jobs why` reports its own errors
        return None
    return conds[0] if conds else None


@app.command("logs")
def jobs_logs(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix of one)."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Stream until the run ends."),
    attempt: int | None = typer.Option(None, "--attempt", help="Attempt number (default: latest)."),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """The run's output (stdout and stderr of the command)."""
    from merlin.cli.output import emit_json, message
    from merlin.safety import check_number

    check_number(attempt, "--attempt", minimum=1, integer=True)

    cp = control_plane(state_root)
    run_id = cp.resolve_run_id(run_id)
    if follow and not json:
        for chunk in cp.follow(run_id):
            sys.stdout.write(chunk)
            sys.stdout.flush()
        rec = cp.get(run_id)
        message(f"run {run_id} {said(rec.status.value, rec.message)}")
        say_next(rec)
        return
    text = cp.logs(run_id, attempt)
    hint = cp.task_logs_hint(run_id)
    if json:
        rec = cp.get(run_id)
        emit_json({"run_id": run_id, "attempt": attempt or len(rec.attempts), "status": rec.status.value, "logs": text,
                   "task_logs": str(cp.task_logs(run_id)) if hint else None})
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
        if hint:
            message(hint)


@app.command("cancel")
def jobs_cancel(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix of one)."),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """Stop a run (local: its whole process group; ray: stop_job)."""
    from merlin.cli.output import emit_json, message

    cp = control_plane(state_root)
    run_id = cp.resolve_run_id(run_id)
    before = cp.get(run_id).status.value
    rec = cp.cancel(run_id)
    if json:
        emit_json(rec.model_dump(mode="json"))
    elif before != "blocked" and rec.status.is_terminal() and before == rec.status.value:
        message(f"run {run_id} had already ended ({rec.status.value}); nothing to cancel")
    else:
        message(f"run {run_id}: {rec.message}")
        say_next(rec)


@app.command("retry")
def jobs_retry(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix of one)."),
    env: list[str] | None = typer.Option(None, "--env", help="Environment K=V (needed again for redacted secrets)."),
    cluster: str | None = cluster_option("Send the new attempt to another cluster (ray; default: the run's own).", configured=False),
    wait: bool = typer.Option(False, "--wait", help="Wait until the run ends; exit 1 if it did not succeed."),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """A new attempt of a blocked, failed, cancelled or lost run."""
    from merlin.cli.output import emit_json, message

    cp = control_plane(state_root)
    rec = cp.retry(run_id, env=key_values(env, "--env", False), cluster=cluster)
    if wait and (not rec.status.is_terminal() or rec.retry_keeper) and rec.status.value != "blocked":
        from merlin.cli.waiting import announce, wait_for_run

        if not json:
            announce(rec)
        rec = wait_for_run(cp, rec, quiet=json)
    if json:
        emit_json(rec.model_dump(mode="json"))
    elif rec.status.value == "succeeded" or (not wait and rec.status.value != "blocked"):
        message(f"run {rec.run_id} attempt {len(rec.attempts)}: {rec.message}")
        say_next(rec)
    exit_for_run(rec, waited=wait)


@app.command("watch")
def jobs_watch(
    run_ids: list[str] | None = typer.Argument(None, help="Runs to watch (default: every active run: waiting, pending or running)."),
    interval: float = duration_option("1s", "--interval", help="Time between refreshes (e.g. 1s, 0.5s)."),
    timeout: float | None = duration_option(None, "--timeout", help="Give up after this long (e.g. 30s, 10m)."),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """A live table until every shown run is terminal."""
    import time

    from merlin.cli.output import emit_json, message, out
    from merlin.safety import check_number

    check_number(interval, "--interval", minimum=0, above_minimum=True, maximum=3600)
    check_number(timeout, "--timeout", minimum=0)

    cp = control_plane(state_root)
    ids = list(run_ids or []) or [d["run_id"] for d in cp.list_runs(status=["waiting", "pending", "running"])]
    if not ids:
        message(f"no waiting, pending or running runs to watch in {where(cp)}")
        if json:
            emit_json([])
        return
    ids = [cp.resolve_run_id(rid) for rid in ids]  # unknown ids fail fast (exit 4), prefixes become ids

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

            show(runs_table(current))
    else:
        from rich.live import Live

        with Live(runs_table(current), console=out(), refresh_per_second=4) as live:
            while not done(current) and (deadline is None or time.monotonic() < deadline):
                time.sleep(interval)
                current = rows()
                live.update(runs_table(current))
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
        raise RunFailed("watch: " + "; ".join(f"run {r['run_id']} {said(r['status'], r.get('message') or '')}" for r in bad))


__import__("merlin.cli.jobs_history_cmd", fromlist=["register"]).register(app)  # jobs events, jobs prune
