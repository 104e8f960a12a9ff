"""``merlin ray resources ...``: the lab's hardware inventory and leases on it (see docs/leases.md).

Exit codes: 0 ok, 2 bad input, 3 not grantable now (the request is recorded
as waiting) or the lease is gone, 4 not found. ``--json`` everywhere. The
commands talk to the lease book only; nothing heavy is imported.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from merlin.cli.common import say
from merlin.cli.nextsteps import invoked_as
from merlin.cli.options import JsonOpt, RecordFormatOpt, StateRootOpt, duration_option, output_mode, output_option, upstream_format
from merlin.nextsteps import Action, step


def _cmd(s: dict[str, Any]) -> str:
    """A step as the one renderer spells it, with this command's --state-root."""
    from merlin.cli.nextsteps import command

    return command(s, sys.argv[1:])

app = typer.Typer(help="Hardware inventory and leases: define, list, reserve, renew, release, queue.", no_args_is_help=True)

ReasonOpt = typer.Option("", "--reason", help="Why (recorded with your name).")



def _write(text: str) -> None:
    """Plain output whose text comes from records (reasons, names): control characters shown as
    visible escapes, never sent raw to the terminal."""
    from merlin.cli.output import neutralise

    sys.stdout.write(neutralise(text))

def _cp(state_root: Path | None) -> Any:
    from merlin.controlplane import ControlPlane

    return ControlPlane(state_root)


def _book(state_root: Path | None) -> Any:
    return _cp(state_root).leases


def _emit(data: Any) -> None:
    from merlin.cli.output import emit_json

    emit_json(data)


def _items(lease: dict[str, Any]) -> str:
    return ", ".join(f"{i}#{lease['tokens'].get(i, '?')}" for i in lease.get("items") or []) or "-"


def _bundles(lease: dict[str, Any]) -> str:
    from merlin.leases.policy import describe

    return describe(lease["bundles"])


def _short(value: Any) -> str:
    text = str(value or "")
    return text[:19].replace("T", " ") + "Z" if len(text) >= 19 else "-"


def _print_lease(lease: dict[str, Any]) -> None:
    o = lease["owner"]
    rows = [
        ("lease", lease["lease_id"]),
        ("state", lease["state"]),
        ("request", _bundles(lease)),
        ("items", _items(lease) + ("  (item#fencing token)" if lease.get("items") else "")),
        ("owner", f"{o['user']}@{o['host']}" + (f" pid {o['pid']}" if o.get("pid") else "") + (f" run {o['run_id']}" if o.get("run_id") else "")),
        ("priority", str(lease.get("priority", 0))),
        ("ttl", f"{lease['ttl_seconds']:g}s"),
        ("created", _short(lease.get("created_at"))),
        ("granted", _short(lease.get("granted_at"))),
        ("expires", _short(lease.get("expires_at"))),
        ("ended", _short(lease.get("ended_at"))),
        ("reason", lease.get("reason") or "-"),
    ]
    _write("".join(f"{k:<9} {v}\n" for k, v in rows if v not in ("-",) or k in ("items", "reason")))


@app.command("define")
def define(
    file: Path = typer.Argument(..., help="Inventory YAML (schema_version: 1, items: [{id, pool, labels, host}])."),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """Load an inventory YAML into the ledger (validated strictly; health set at run time is kept)."""
    from merlin.leases.inventory import load_inventory_file

    items = load_inventory_file(file)
    inv = _book(state_root).define(items, source=str(file.resolve()))
    if json:
        _emit(inv)
        return
    pools: dict[str, int] = {}
    for it in inv["items"]:
        pools[it["pool"]] = pools.get(it["pool"], 0) + 1
    say(f"defined {len(inv['items'])} item(s): " + ", ".join(f"{p} x{n}" for p, n in sorted(pools.items())))


@app.command("list")
def list_items(output: str | None = output_option(), state_root: Path | None = StateRootOpt, json: bool = JsonOpt) -> None:
    """Items with their health, holder and queue; then the waiting requests."""
    mode = output_mode(output, json)
    book = _book(state_root)
    items = book.items()
    queue = book.queue()
    if mode == "json":
        _emit({"items": items, "queue": queue})
        return
    if mode == "name":
        _write("".join(f"{it['id']}\n" for it in items))
        return
    if not items:
        say(f"no inventory yet: describe the hardware in a YAML file and run `{_cmd(step(Action.DEFINE_INVENTORY))}`")
        return
    from merlin.cli.output import out
    from merlin.cli.tables import GIVE, Column, build, show

    wide = mode == "wide"  # every column whole; the table fits the terminal otherwise (docs/views.md)
    columns = [Column("ITEM"), Column("POOL", drop=4), Column("LABELS", GIVE, overflow="fold" if wide else "ellipsis", floor=8, drop=6),
               Column("HOST", drop=5), Column("HEALTH"), Column("HOLDER", drop=2), Column("UNTIL", drop=3), Column("WAITING", drop=7)]
    rows = []
    for it in items:
        h = it["holder"]
        health = it["health"] + (" (drained)" if it.get("drained") else "")
        rows.append([
            it["id"], it["pool"], ",".join(f"{k}={v}" for k, v in sorted(it["labels"].items())) or "-", it.get("host") or "-", health,
            f"{h['user']}@{h['host']} {h['lease_id']}" if h else "-", _short(h["until"]) if h else "-", str(len(it["waiting"])),
        ])  # fmt: skip
    show(build(columns, rows, 10_000 if wide else out().width), out())
    if queue:
        say(f"{len(queue)} request(s) waiting; see `{_cmd(step(Action.LEASES_QUEUE))}`")


@app.command("reserve")
def reserve(
    bundles: list[str] = typer.Argument(..., help="POOL[:COUNT][,k=v...]; several form a gang (granted all at once or not at all)."),
    label: list[str] | None = typer.Option(None, "--label", help="k=v every bundle's items must carry (repeatable)."),
    priority: int = typer.Option(0, "--priority", help="Higher is served first; ties by age."),
    ttl: float = duration_option("15m", "--ttl", help="Expires unless renewed within this (90s, 15m, 2h)."),
    wait: bool = typer.Option(False, "--wait", help="Wait until granted."),
    timeout: float | None = duration_option(None, "--timeout", help="With --wait: give up after this long (the request stays queued)."),
    pid: int | None = typer.Option(None, "--pid", help="Bind the lease to this process: freed when it dies (e.g. --pid $$)."),
    run_id: str | None = typer.Option(None, "--run-id", help="Record the run this lease is for."),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """Request items; prints the lease id. Exit 3 when it is not grantable now (it stays queued)."""
    from merlin.errors import BadInput
    from merlin.leases.book import NotGranted, parse_bundle
    from merlin.safety import check_number

    check_number(priority, "--priority", minimum=None, integer=True)
    check_number(timeout, "--timeout")
    check_number(pid, "--pid", minimum=1, integer=True)

    labels: dict[str, str] = {}
    for pair in label or []:
        k, eq, v = pair.partition("=")
        if not eq or not k or not v:
            raise BadInput(f"--label {pair!r}: expected k=v")
        labels[k] = v
    parsed = [parse_bundle(b, labels) for b in bundles]
    book = _book(state_root)
    try:
        lease = book.reserve(parsed, priority=priority, ttl=ttl, wait=wait, timeout=timeout, pid=pid, run_id=run_id)
    except NotGranted as exc:
        lease = exc.lease
    if json:
        _emit(lease)
    else:
        _write(lease["lease_id"] + "\n")
    if lease["state"] != "granted":
        raise NotGranted(f"lease {lease['lease_id']} is waiting (not grantable now); see `{_cmd(step(Action.LEASE_WHY, lease_id=lease['lease_id']))}`", lease)
    if not json:
        from merlin.cli.nextsteps import quote, state_root_flag

        renew = " ".join([invoked_as(), "ray", "resources", "renew", lease["lease_id"], *map(quote, state_root_flag(sys.argv[1:]))])
        say(f"granted {_items(lease)} until {_short(lease['expires_at'])}; renew with `{renew}`")


@app.command("run", context_settings={"allow_interspersed_args": False})
def run(
    bundles: list[str] = typer.Argument(..., help="POOL[:COUNT][,k=v...] ... -- COMMAND [ARGS...] (options go before the bundles)."),
    ttl: float = duration_option("60s", "--ttl", help="Lease TTL; renewed every third of it while COMMAND runs."),
    priority: int = typer.Option(0, "--priority", help="Higher is served first; ties by age."),
    timeout: float | None = duration_option(None, "--timeout", help="Give up waiting after this long (exit 3; the request is withdrawn)."),
    state_root: Path | None = StateRootOpt,
) -> None:
    """Wait for a lease, run COMMAND with MERLIN_LEASE_ITEMS set, renew while it runs, release when it ends.

    Exits with COMMAND's exit code (128+N when a signal N ended it)."""
    import os
    import subprocess

    from merlin.errors import BadInput
    from merlin.leases.book import parse_bundle
    from merlin.leases.keeper import LeaseKeeper, lease_env

    if "--" not in sys.argv:
        raise BadInput(f"resources run: give the command after --, e.g. `{invoked_as()} ray resources run board:1 -- ./flash.sh`")
    split = next((n for n, b in enumerate(bundles) if not _looks_like_bundle(b)), len(bundles))
    wanted, command = bundles[:split], bundles[split:]
    if command[:1] == ["--"]:
        command = command[1:]
    if not wanted or not command:
        raise BadInput("resources run: expected POOL[:COUNT]... -- COMMAND [ARGS...]")
    parsed = [parse_bundle(b) for b in wanted]
    run_id = os.environ.get("MERLIN_RUN_ID") or None  # inside a merlin run: the lease names it (`jobs why`)
    keeper = LeaseKeeper(_book(state_root), parsed, ttl=ttl, priority=priority, timeout=timeout, run_id=run_id)
    with keeper as lease:
        say(f"lease {lease['lease_id']}: {_items(lease)}; running {' '.join(command)}")
        try:
            code = subprocess.call(command, env={**os.environ, **lease_env(lease)})
        except OSError as exc:
            raise BadInput(f"resources run: cannot run {command[0]!r}: {exc.strerror}") from None
    if keeper.lost is not None:
        say(f"warning: the lease ended while the command ran: {keeper.lost}")
    raise typer.Exit(code if code >= 0 else 128 - code)


def _looks_like_bundle(text: str) -> bool:
    import re

    return bool(re.match(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}(,[A-Za-z0-9_.:-]+=[^,]+)*$", text)) and "/" not in text


@app.command("renew")
def renew(
    lease_id: str = typer.Argument(..., help="Lease id."),
    ttl: float | None = duration_option(None, "--ttl", help="New TTL (default: the lease's own)."),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """Push the expiry out by the TTL. Exit 3 if the lease is gone (expired, revoked, released)."""
    lease = _book(state_root).renew(lease_id, ttl=ttl)
    if json:
        _emit(lease)
    else:
        say(f"lease {lease_id} {lease['state']}; expires {_short(lease.get('expires_at'))}")


@app.command("release")
def release(
    lease_id: str = typer.Argument(..., help="Lease id."),
    force: bool = typer.Option(False, "--force", help="Release someone else's lease (needs --reason)."),
    reason: str = ReasonOpt,
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """Give the items back; the next waiter is granted at once."""
    lease = _book(state_root).release(lease_id, force=force, reason=reason or None)
    if json:
        _emit(lease)
    else:
        say(f"lease {lease_id} {lease['state']}")


@app.command("cancel")
def cancel(lease_id: str = typer.Argument(..., help="Lease id."), state_root: Path | None = StateRootOpt, json: bool = JsonOpt) -> None:
    """Withdraw a waiting request."""
    lease = _book(state_root).cancel(lease_id)
    if json:
        _emit(lease)
    else:
        say(f"lease {lease_id} {lease['state']}")


@app.command("revoke")
def revoke(
    lease_id: str = typer.Argument(..., help="Lease id."),
    reason: str = typer.Option(..., "--reason", help="Why (recorded with your name; the holder is told at its next renewal)."),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """Take a lease away (admin)."""
    lease = _book(state_root).revoke(lease_id, reason)
    if json:
        _emit(lease)
    else:
        say(f"lease {lease_id} {lease['state']}")


@app.command("show")
def show(
    lease_id: str = typer.Argument(..., help="Lease id."),
    events: bool = typer.Option(False, "--events", help="Also print its event log."),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
    fmt: str = RecordFormatOpt,
) -> None:
    """One lease: owner, request, items with fencing tokens, times, the reason of its last change."""
    if upstream_format(fmt):
        _emit(_cp(state_root).upstream_record("lease", lease_id))
        return
    book = _book(state_root)
    lease = book.show(lease_id)
    evs = book.events(lease_id) if events else None
    if json:
        _emit(dict(lease, events=evs) if events else lease)
        return
    _print_lease(lease)
    for e in evs or []:
        _write(f"  {_short(e['time'])} #{e['seq']} {e['event']:<9} {e['by']}: {e['reason']}\n")


@app.command("queue")
def queue(state_root: Path | None = StateRootOpt, json: bool = JsonOpt) -> None:
    """Waiting requests in the order they will be served (runs a scheduling pass first)."""
    rows = _cp(state_root).lease_queue()
    if json:
        _emit([dict(lease, position=n) for n, lease in enumerate(rows, 1)])
        return
    if not rows:
        say("no request is waiting")
        return
    for n, lease in enumerate(rows, 1):
        o = lease["owner"]
        _write(f"{n:>3}. {lease['lease_id']}  {_bundles(lease)}  prio {lease['priority']}  {o['user']}@{o['host']}  since {_short(lease['created_at'])}\n")


@app.command("why")
def why(lease_id: str = typer.Argument(..., help="Lease id."), state_root: Path | None = StateRootOpt, json: bool = JsonOpt) -> None:
    """Every condition holding a waiting lease back, with evidence and the next step."""
    conds = _book(state_root).why(lease_id)
    if json:
        _emit(conds)
        return
    if not conds:
        say(f"lease {lease_id} is granted: nothing holds it back")
    from merlin.cli.nextsteps import condition_lines

    for c in conds:
        _write("".join(line + "\n" for line in condition_lines(c, sys.argv[1:], layer=False)))


@app.command("drain")
def drain(
    item: str = typer.Argument(..., help="Item id."),
    reason: str = ReasonOpt,
    undo: bool = typer.Option(False, "--undo", help="Accept new leases again."),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """Let current holders finish but grant no new lease on ITEM."""
    it = _book(state_root).drain(item, reason, undo=undo)
    if json:
        _emit(it)
    else:
        say(f"{item}: {'drained' if it['drained'] else 'accepting leases'}")


@app.command("health")
def health(
    item: str = typer.Argument(..., help="Item id."),
    state: str = typer.Argument(..., help="The item's health.", metavar="good|unknown|bad|maintenance|retired"),
    reason: str = ReasonOpt,
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """Record an item's health (only good items are granted)."""
    it = _book(state_root).set_health(item, state, reason)
    if json:
        _emit(it)
    else:
        say(f"{item}: {it['health']}")

