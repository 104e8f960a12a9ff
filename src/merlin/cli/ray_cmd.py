"""``merlin ray ...``: the Ray control plane's command groups, one module each (see docs/ray.md).

- ``cluster``: clusters_cmd.py (start any kind, start-local, status, stop, list)
- ``jobs``: jobs_cmd.py (submit, list, status, logs, cancel, retry, watch, why)
- ``artifacts``: artifacts_cmd.py (list, fetch)
- ``resources``: resources_cmd.py (the lease book)
- ``doctor``: here, hidden: the sweep alone, as before ``merlin doctor --sweep`` (cli/doctor_cmd.py)

Every command takes ``--state-root`` and ``--json`` (cli/options.py). Data goes
to stdout, messages to stderr. Exit codes: 0 ok, 1 the run failed, 2 bad input,
3 blocked, 4 not found. The groups import only Typer at module level.
"""

from __future__ import annotations

from pathlib import Path

import typer

from merlin.cli.common import control_plane
from merlin.cli.lazy import LazyGroup
from merlin.cli.options import JsonOpt, StateRootOpt, duration_option

# The groups, each imported only when used: `ray jobs submit` loads jobs_cmd alone.
RAY_GROUPS: dict[str, tuple[str, str]] = {
    "cluster": ("merlin.cli.clusters_cmd", "Start, inspect and stop local Ray clusters."),
    "jobs": ("merlin.cli.jobs_cmd", "Submit, list, follow, cancel and retry runs."),
    "artifacts": ("merlin.cli.artifacts_cmd", "List and fetch the files a run produced."),
    "resources": ("merlin.cli.resources_cmd", "Hardware inventory and leases: define, list, reserve, renew, release, queue."),
}


class RayGroup(LazyGroup):
    LAZY = RAY_GROUPS
    LAZY_FIRST = False  # `merlin ray --help` lists doctor, then the groups


app = typer.Typer(help="Ray control plane: clusters, runs (jobs) and artifacts.", no_args_is_help=True, cls=RayGroup)


@app.callback()
def _group() -> None:  # a group, not its one eager command (Typer collapses a one-command app)
    pass


@app.command("doctor", hidden=True)
def doctor(
    min_age: float = duration_option("60s", "--min-age", help="Leave alone anything that changed less than this long ago (it may be being written)."),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """Sweep SIGKILL debris (kept for old scripts: `merlin doctor --sweep` checks the environment and sweeps)."""
    from merlin.cli.output import emit_json, message
    from merlin.safety import check_number

    check_number(min_age, "--min-age", minimum=0)
    report = control_plane(state_root).sweep(everything=True, min_age=min_age)
    if json:
        emit_json(report.to_json())
        return
    message(f"doctor: {report.summary()}" + (f"; {len(report.deferred)} too recent to judge" if report.deferred else ""))

