"""``merlin ray artifacts ...``: list and fetch the files a run produced."""

from __future__ import annotations

from pathlib import Path

import typer

from merlin.cli.common import control_plane
from merlin.cli.options import JsonOpt, RecordFormatOpt, StateRootOpt, upstream_format

app = typer.Typer(help="List and fetch the files a run produced.", no_args_is_help=True)


@app.command("list")
def artifacts_list(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix of one)."), state_root: Path | None = StateRootOpt, json: bool = JsonOpt, fmt: str = RecordFormatOpt
) -> None:
    """Files of the run's target directory, as indexed when it ended."""
    from merlin.cli.output import emit_json, message, out

    if upstream_format(fmt):
        emit_json(control_plane(state_root).upstream_record("artifacts", run_id))
        return
    idx = control_plane(state_root).artifacts(run_id)
    if json:
        emit_json(idx.model_dump(mode="json"))
        return
    if not idx.files:
        message(f"run {idx.run_id}: no files in {idx.target_dir}")
        return
    from merlin.cli.tables import Column, build, show

    columns = [Column(h) for h in ("NAME", "KIND", "SIZE", "SHA256")]  # NAME is what `artifacts fetch` takes: never cut
    rows = [[f.name, f.kind, str(f.size), f.sha256[:16] if f.sha256 else "-"] for f in idx.files]
    show(build(columns, rows, out().width), out())
    message(f"{len(idx.files)} files, {idx.total_size} bytes in {idx.target_dir}" + (f" (truncated: {idx.truncated_reason or 'limit reached'})" if idx.truncated else ""))


@app.command("fetch")
def artifacts_fetch(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix of one)."),
    name: str = typer.Argument(..., help="Artifact name as listed (relative path)."),
    to: Path = typer.Option(..., "--to", help="Destination directory."),
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """Copy one artifact into DIR and verify its sha256."""
    from merlin.cli.output import emit_json, message

    cp = control_plane(state_root)
    run_id = cp.resolve_run_id(run_id)
    dest = cp.fetch_artifact(run_id, name, to)
    hashed = any(f.name == name and f.sha256 for f in cp.artifacts(run_id).files)
    if json:
        emit_json({"run_id": run_id, "name": name, "path": str(dest), "verified": hashed})
    else:
        message(f"fetched {name} -> {dest} " + ("(sha256 verified)" if hashed else "(size checked; the index holds no sha256 for it)"))
        typer.echo(str(dest))

