"""``merlin ray jobs events`` and ``merlin ray jobs prune``: a run's history, and removing old runs.

Registered on the ``jobs`` group by ``jobs_cmd.py``. Imports Typer only at module level.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from merlin.cli.common import control_plane
from merlin.cli.options import JsonOpt, StateRootOpt, duration_option


def _event_line(ev: dict[str, Any]) -> str:
    """``2026-12-07 00:46:05Z  transition  pending -> running  #1  local supervisor started the command``"""
    from merlin.cli.common import short_time
    from merlin.cli.output import neutralise

    move = ""
    if ev.get("to_status"):
        move = f"{ev.get('from_status') or '-'} -> {ev['to_status']}"
    detail = ev.get("detail") or {}
    extra = detail.get("message") or detail.get("submission_id") or ""
    words = [short_time(ev.get("time")), f"{ev.get('event', '?'):<11}", f"{move:<22}", f"#{ev['attempt']}" if ev.get("attempt") else "  ", ev.get("cause") or ""]
    line = "  ".join(words) + (f" ({extra})" if extra and extra not in (ev.get("cause") or "") else "")
    return neutralise(line.rstrip())


def jobs_events(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix of one)."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new events until the run ends."),
    interval: float = duration_option("1s", "--interval", help="With --follow: time between looks (e.g. 1s, 0.5s)."),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """A run's history from its events.jsonl: each transition and fact, with its time and cause (--json: the events;
    with --follow, one JSON object per line)."""
    import time

    from merlin.cli.output import emit_json
    from merlin.safety import check_number

    check_number(interval, "--interval", minimum=0, above_minimum=True, maximum=3600)
    cp = control_plane(state_root)
    rid = cp.resolve_run_id(run_id)
    events = _dicts(cp.events(rid))
    if json and not follow:
        emit_json(events)
        return

    def show(batch: list[dict[str, Any]]) -> None:
        import json as _json

        for ev in batch:
            sys.stdout.write((_json.dumps(ev, sort_keys=True) if json else _event_line(ev)) + "\n")
        sys.stdout.flush()

    show(events)
    seen = len(events)
    while follow:
        ended = cp.status(rid).status.is_terminal()
        events = _dicts(cp.events(rid))
        show(events[seen:])
        seen = len(events)
        if ended:
            break
        time.sleep(interval)


def _dicts(events: list[Any]) -> list[dict[str, Any]]:
    """The facade's typed events as the JSON lines events.jsonl holds."""
    return [e.model_dump(mode="json", exclude_none=True) for e in events]


def jobs_prune(
    older_than: float | None = duration_option(None, "--older-than", help="Remove runs that ended more than this long ago (e.g. 30d; default: the config's retention.older_than)."),
    status: list[str] | None = typer.Option(
        None, "--status", help="Only runs with this status (repeatable; default: the config's retention.status, else every ended status).",
        metavar="blocked|succeeded|failed|cancelled|lost",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be removed; remove nothing."),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """Remove old runs that have ended, and say what that freed. Never an active run, one a live lease names,
    or one being written (its lock held)."""
    from merlin.cli import config
    from merlin.cli.output import emit_json, message
    from merlin.errors import BadInput
    from merlin.units import human_bytes

    if older_than is None:
        configured = config.value("retention.older_than")
        if configured is None:
            raise BadInput("prune: give --older-than (e.g. 30d), or set older_than under [retention] in merlin.toml (see docs/config.md)")
        from merlin.durations import parse_duration

        older_than = parse_duration(configured, "older_than")
    statuses = list(status or config.value("retention.status") or [])
    report = control_plane(state_root).prune_runs(older_than, statuses, dry_run=dry_run)
    if json:
        emit_json(report.to_json())
        return
    verb = "would remove" if dry_run else "removed"
    for rid in report.removed:
        sys.stdout.write(rid + "\n")
    for rid, why in report.kept.items():
        message(f"kept {rid}: {why}")
    message(f"prune: {verb} {len(report.removed)} run{'s' if len(report.removed) != 1 else ''}, {'would free' if dry_run else 'freed'} {human_bytes(report.freed_bytes)}")


def register(app: typer.Typer) -> None:
    app.command("events")(jobs_events)
    app.command("prune")(jobs_prune)
