"""``merlin sweep ...``: one command over many inputs, throttled, retried, summarised (docs/sweeps.md).

Data goes to stdout, messages to stderr. ``sweep summary`` exits 0 only if every item succeeded.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from merlin.cli.common import control_plane, key_values, say
from merlin.cli.options import JsonOpt, StateRootOpt, cluster_option, engine_option, typed

app = typer.Typer(help="Sweeps: one command over many inputs, throttled, retried, summarised.", no_args_is_help=True)


@app.command("submit")
def sweep_submit(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The sweep's name (the same name and inputs adopts the sweep)."),
    command: list[str] = typer.Argument(..., help="The command, after `--`; the words input, index and name in braces are replaced inside each word (docs/sweeps.md).", show_default=False),
    inputs: str | None = typer.Option(None, "--inputs", help="A glob of input files (quote it), e.g. 'configs/*.yaml'."),
    inputs_file: Path | None = typer.Option(None, "--inputs-file", help="A file of inputs, one a line (# comments and blank lines skipped)."),
    range_: str | None = typer.Option(None, "--range", help="Integers A-B (inclusive), e.g. 0-199."),
    parallel: int = typer.Option(4, "--parallel", min=1, max=10000, help="At most this many items at once."),
    lease: list[str] | None = typer.Option(None, "--lease", help="Hardware each item needs, POOL[:COUNT] (the lease's free slots throttle the sweep too)."),
    retries: int = typer.Option(0, "--retries", min=0, max=100, help="Retries of an item whose command fails."),
    retries_infra: int = typer.Option(0, "--retries-infra", min=0, max=100, help="Retries of an item the infrastructure loses."),
    memory: str | None = typer.Option(
        None, "--memory", metavar="SIZE", help="The most memory each item's command may use, e.g. 512MiB or 4GiB: merlin ends it past that (MEMORY_LIMIT); Ray also reserves it on the node."
    ),
    engine: str = engine_option("Engine of every item's run."),
    cluster: str | None = cluster_option(),
    env: list[str] | None = typer.Option(None, "--env", help="Environment K=V for every item (repeatable)."),
    requirements: Path | None = typer.Option(None, "--requirements", help="requirements.txt the items' environment installs (docs/environments.md)."),
    lock: Path | None = typer.Option(None, "--lock", help="A uv.lock (beside its pyproject.toml) or pylock.toml the items' environment installs."),
    with_: list[str] | None = typer.Option(None, "--with", help="A package for the items' environment (repeatable)."),
    python: str | None = typer.Option(None, "--python", help="Python X.Y of the items' environment."),
    working_dir: Path | None = typer.Option(None, "--working-dir", help="Directory snapshotted now; each item runs in a copy of it."),
    secret_env: list[str] | None = typer.Option(None, "--secret-env", help="An environment variable passed from this environment to each item at launch, never recorded (repeatable)."),
    index_url: list[str] | None = typer.Option(None, "--index-url", help="Package index of the items' environment (repeatable: the first is the default)."),
    find_links: list[str] | None = typer.Option(None, "--find-links", help="A directory (or page) of wheels for the items' environment (repeatable)."),
    no_index: bool = typer.Option(False, "--no-index", help="The items' environment installs from --find-links only."),
    env_file: Path | None = typer.Option(None, "--env-file", help="runtime.yaml: the environment's fields as YAML (flags given here win)."),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """Record a sweep (one run per input) and start its driver; the same NAME and inputs adopts it."""
    from merlin.cli.jobs_submit import runtime_from_flags

    cp = control_plane(state_root)
    if cluster is not None and not typed(ctx, "cluster") and not cp.engine(engine).uses_cluster:
        cluster = None
    values = cp.sweeps("inputs", inputs=inputs, inputs_file=inputs_file, range_=range_)
    view = cp.sweeps(
        "submit", name, command=command, inputs=values, parallel=parallel, leases=lease or (), retries=retries,
        retries_infra=retries_infra, engine=engine, cluster=cluster, env=key_values(env, "--env", False), memory=memory,
        runtime=runtime_from_flags(env_file, requirements_file=requirements, lock_file=lock, packages=with_, python=python, working_dir=working_dir,
                                   secret_env=secret_env, index_url=index_url, find_links=find_links, no_index=no_index),
    )  # fmt: skip
    from merlin.cli.config import keep_retention

    keep_retention(cp)
    if json:
        from merlin.cli.output import emit_json

        emit_json(view)
        return
    verb = "adopted" if view["adopted"] else "submitted"
    say(f"sweep {name}: {verb}, {view['total']} items, at most {view['parallel']} at once")
    _say_steps(view["next_steps"])
    sys.stdout.write(name + "\n")


def _say_steps(steps: list[dict[str, Any]]) -> None:
    """The view's next steps as commands, keeping what chose the place (``--state-root``)."""
    from merlin.cli.nextsteps import say_next

    say_next(steps)


@app.command("status")
def sweep_status(name: str = typer.Argument(..., help="The sweep."), state_root: Path | None = StateRootOpt, json: bool = JsonOpt) -> None:
    """Counts by state, slots in use, throughput, ETA, failures with their last log line (restarts a dead driver)."""
    cp = control_plane(state_root)
    v = cp.sweeps("status", name)
    if json:
        from merlin.cli.output import emit_json

        emit_json(v)
        return
    c = v["counts"]
    eta = "" if v["eta_s"] is None else f", ETA {v['eta_s']:.0f}s"
    out = [
        f"sweep {v['name']}: {v['state']}, {v['total']} items",
        "  " + ", ".join(f"{k} {n}" for k, n in c.items() if n),
        f"  slots in use {v['slots_in_use']}/{v['parallel']}, {v['throughput_per_min']:g} items/min{eta}",
    ]
    for f in v["failures"][:20]:
        out.append(f"  {f['state']} [{f['index']}] {f['input']}: {f['last_line']}  (run {f['run_id']})")
    sys.stdout.write("\n".join(out) + "\n")
    _say_steps([s for s in v["next_steps"] if s["action"] != "sweep_status"])  # (this command is the status)


@app.command("summary")
def sweep_summary(
    name: str = typer.Argument(..., help="The sweep."),
    csv: bool = typer.Option(False, "--csv", help="CSV: one row per input."),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """One row per input: status, attempts, duration, exit code, the fields of its result.json, resource use. Exit 0 only if every item succeeded."""
    cp = control_plane(state_root)
    s = cp.sweeps("summary", name)
    flat = [_flat(r) for r in s["rows"]]
    if json:
        from merlin.cli.output import emit_json

        emit_json(s)
    else:
        cols: list[str] = []
        for r in flat:
            cols += [k for k in r if k not in cols]
        if csv:
            import csv as csvmod

            w = csvmod.DictWriter(sys.stdout, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
            w.writeheader()
            w.writerows(flat)
        else:
            sys.stdout.write("\t".join(cols) + "\n")
            for r in flat:
                sys.stdout.write("\t".join("" if r.get(c) is None else str(r.get(c)) for c in cols) + "\n")
    raise typer.Exit(0 if s["ok"] else 1)


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k != "result"}
    out.update({f"result.{k}": v for k, v in (row.get("result") or {}).items()})
    return out


@app.command("retry")
def sweep_retry(
    name: str = typer.Argument(..., help="The sweep."),
    failed: bool = typer.Option(False, "--failed", help="New attempts for the failed and lost items."),
    cancelled: bool = typer.Option(False, "--cancelled", help="New attempts for the cancelled items (resume a cancelled sweep)."),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """New runs for the sweep's failed items (`merlin sweep retry NAME --failed`), or its cancelled ones (`--cancelled`)."""
    from merlin.errors import BadInput

    if not failed and not cancelled:
        raise BadInput("say which items: --failed (the failed and lost ones), --cancelled (the cancelled ones), or both", argument="failed")
    v = control_plane(state_root).sweeps("retry", name, failed=failed, cancelled=cancelled)
    if json:
        from merlin.cli.output import emit_json

        emit_json(v)
        return
    say(f"sweep {name}: {len(v.get('retried', []))} items queued again")
    _say_steps(v["next_steps"])


@app.command("cancel")
def sweep_cancel(name: str = typer.Argument(..., help="The sweep."), state_root: Path | None = StateRootOpt, json: bool = JsonOpt) -> None:
    """Running items end, queued ones never start."""
    v = control_plane(state_root).sweeps("cancel", name)
    if json:
        from merlin.cli.output import emit_json

        emit_json(v)
        return
    say(f"sweep {name}: cancelled ({v['counts']['succeeded']} succeeded before)")


@app.command("list")
def sweep_list(state_root: Path | None = StateRootOpt, json: bool = JsonOpt) -> None:
    """Every sweep with its progress."""
    rows = control_plane(state_root).sweeps("list")
    if json:
        from merlin.cli.output import emit_json

        emit_json(rows)
        return
    for v in rows:
        done = v["total"] - v["counts"]["queued"] - v["slots_in_use"]
        sys.stdout.write(f"{v['name']}\t{v['state']}\t{done}/{v['total']}\t{v['counts']['succeeded']} succeeded\t{v['counts']['failed']} failed\n")
