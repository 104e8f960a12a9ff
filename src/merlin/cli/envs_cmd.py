"""``merlin envs ...``: run environments in the env cache (docs/environments.md).

``list``, ``show ENV_ID``, ``build SPEC`` (a runtime.yaml, as ``jobs submit --env-file``),
``prune [--older-than D] [--max-size SIZE]``. ``--cache DIR`` (or $MERLIN_ENV_CACHE)
names the cache; the default sits beside the state root. ``--json`` everywhere.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from merlin.cli.common import control_plane, say
from merlin.cli.options import JsonOpt, StateRootOpt, duration_option

app = typer.Typer(help="Run environments: list, show, build and prune the env cache.", no_args_is_help=True)

CacheOpt = typer.Option(None, "--cache", help="The env cache (default: $MERLIN_ENV_CACHE, else beside the state root).")


def _write(text: str) -> None:
    from merlin.cli.output import neutralise

    sys.stdout.write(neutralise(text))


def _size(n: Any) -> str:
    from merlin.units import human_bytes

    return human_bytes(n) if isinstance(n, (int, float)) else "-"


def _ago(t: Any) -> str:
    """A Unix time as its age, every unit (``used 1h30m5s ago``)."""
    from merlin.clock import since
    from merlin.durations import ago

    return ago(since(t) if isinstance(t, (int, float)) else None, exact=True)


@app.command("list")
def envs_list(cache: str | None = CacheOpt, state_root: Path | None = StateRootOpt, json: bool = JsonOpt) -> None:
    """The envs in the cache, most recently used first, then builds in progress or failed."""
    data = control_plane(state_root).envs("list", cache=cache)
    if json:
        from merlin.cli.output import emit_json

        emit_json(data)
        return
    say(f"env cache {data['cache']}")
    for e in data["envs"]:
        if e["state"] == "ready":
            what = ", ".join([*(e.get("packages") or []), *([f"requirements ({len(e['requirements'].splitlines())})"] if e.get("requirements") else [])]) or "-"
            users = f"  in use by {len(e['users'])}" if e.get("users") else ""
            _write(f"{e['env_id'][:12]}  ready     python {e.get('python') or '?'}  {_size(e.get('size'))}  used {_ago(e.get('last_used'))}  {what}{users}\n")
        else:
            _write(f"{e['env_id'][:12]}  {e['state']:<8}  {e.get('line') or ''}\n")


@app.command("show")
def envs_show(env_id: str = typer.Argument(..., help="Env id (or a unique prefix)."), cache: str | None = CacheOpt,
              state_root: Path | None = StateRootOpt, json: bool = JsonOpt) -> None:  # fmt: skip
    """One env: its spec, path, size, last use and the processes using it."""
    data = control_plane(state_root).envs("show", env_id=env_id, cache=cache)
    if json:
        from merlin.cli.output import emit_json

        emit_json(data)
        return
    for k in ("env_id", "state", "path", "python", "packages", "lockfile_name", "build_seconds", "size", "last_used", "users", "line", "error"):
        if data.get(k) not in (None, [], ""):
            v = _size(data[k]) if k == "size" else _ago(data[k]) if k == "last_used" else data[k]
            _write(f"{k:<14} {v}\n")
    if data.get("requirements"):
        _write("requirements:\n" + "".join(f"  {line}\n" for line in data["requirements"].splitlines()))


@app.command("build")
def envs_build(spec: Path = typer.Argument(..., help="runtime.yaml (the fields of `jobs submit --env-file`)."), cache: str | None = CacheOpt,
               state_root: Path | None = StateRootOpt, json: bool = JsonOpt) -> None:  # fmt: skip
    """Build (or find) the env of SPEC now, so the first run of it starts at once."""
    from merlin.cli.env_file import read_env_file

    data = control_plane(state_root).envs("build", runtime=read_env_file(spec), cache=cache)
    if json:
        from merlin.cli.output import emit_json

        emit_json(data)
        return
    say(f"env {data['env_id']}: {'already built (cache hit)' if data['cache'] == 'hit' else 'built in ' + str(data['seconds']) + 's'}")
    _write(data["path"] + "\n")


@app.command("prune")
def envs_prune(
    older_than: float | None = duration_option(None, "--older-than", help="Remove envs unused for longer than this (e.g. 7d)."),
    max_size: str | None = typer.Option(None, "--max-size", help="Then remove the least recently used until the cache fits, e.g. 20GiB."),
    cache: str | None = CacheOpt,
    state_root: Path | None = StateRootOpt,
    json: bool = JsonOpt,
) -> None:
    """Evict envs least recently used first, never one a live run uses; then prune uv's cache."""
    data = control_plane(state_root).envs("prune", older_than=older_than, max_size=max_size, cache=cache)
    if json:
        from merlin.cli.output import emit_json

        emit_json(data)
        return
    for r in data["removed"]:
        _write(f"removed {r['env_id'][:12]} ({_size(r['size'])}, used {_ago(r['last_used'])})\n")
    for k in data["kept_in_use"]:
        _write(f"kept {k[:12]}: in use\n")
    say(f"freed {_size(data['freed'])}; the cache's envs now take {_size(data['size'])}")
