"""``merlin doctor``: the environment checks (control/doctor.py), one line each; ``--sweep`` also sweeps SIGKILL debris.

Registered on the root app by :func:`register`; everything it needs is imported inside the command.
"""

from __future__ import annotations

from pathlib import Path

import typer

from merlin.cli.options import JsonOpt, StateRootOpt, duration_option

#: how each status is shown (fixed width: the names line up)
MARKS = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}


def doctor(
    sweep: bool = typer.Option(False, "--sweep", help="Also sweep SIGKILL debris: complete (as lost) or remove run directories without a record, remove stale temp files."),
    min_age: float = duration_option("60s", "--min-age", help="With --sweep: leave alone anything that changed less than this long ago (it may be being written)."),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """Check Python and the venv, Ray, the state root (permissions, disk), the default ports, every active cluster
    (reachable, token) and the programs its kind needs, and uv. One line per check: ok, warn or FAIL with the fix.
    Exit 0 when nothing fails, 1 when a check fails.
    """
    from merlin.cli.common import control_plane
    from merlin.cli.nextsteps import ARGV, command
    from merlin.cli.output import emit_json, message, neutralise
    from merlin.safety import check_number

    check_number(min_age, "--min-age", minimum=0)
    cp = control_plane(state_root)
    report = cp.doctor()
    swept = cp.sweep(everything=True, min_age=min_age) if sweep else None
    if json:
        doc = report.to_json()
        if swept is not None:
            doc["sweep"] = swept.to_json()
        emit_json(doc)
    else:
        width = max((len(c.name) for c in report.checks), default=0)
        lines = []
        for c in report.checks:
            line = f"{MARKS[c.status]}  {c.name:<{width}}  {c.message}"
            fixes = [c.fix] if c.fix else []
            fixes += [f"`{command(s, ARGV)}`" for s in c.next_steps]
            if c.status != "ok" and fixes:
                line += "; fix: " + ", then ".join(fixes)
            lines.append(neutralise(line))
        typer.echo("\n".join(lines))
        if swept is not None:
            message(f"sweep: {swept.summary()}" + (f"; {len(swept.deferred)} too recent to judge" if swept.deferred else ""))
    if report.status == "fail":
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
