"""``merlin ray ...``: cluster lifecycle, jobs and artifacts (see issue 4)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Ray control plane: clusters, runs (jobs) and artifacts.", no_args_is_help=True)
