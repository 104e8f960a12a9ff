"""``cluster start-local`` on an active cluster: the options typed on this command line
that the cluster was not started with, and the restart that would apply them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from merlin.cli.common import invoked


def start_differences(ctx: Any, rec: Any, asked: dict[str, Any]) -> list[str]:
    """Options given on this command line that the active cluster was not started with
    (``--num-cpus 1 (cluster has 2)``); defaults the user did not type are not compared."""
    def typed(key: str) -> bool:  # compared by name: typer may carry its own copy of click's ParameterSource
        names = {"resources": ["resource"], "port": ["port", "old_port"]}.get(key, [key])  # --gcs-port, or its old name --port
        return any(getattr(ctx.get_parameter_source(n), "name", "DEFAULT") not in ("DEFAULT", "DEFAULT_MAP") for n in names)

    given = {k for k in asked if typed(k)}
    requested = getattr(rec, "requested", None) or {}
    have = {
        "host": rec.host, "port": rec.ports.gcs, "dashboard_port": rec.ports.dashboard,
        "num_cpus": requested.get("num_cpus", rec.resources.get("CPU")), "num_gpus": requested.get("num_gpus", rec.resources.get("GPU", 0)),
        "resources": requested.get("resources") or {}, "object_store_memory": requested.get("object_store_memory", rec.resources.get("object_store_memory")),
        "auth": rec.auth.mode, "port_range": requested.get("port_range"),
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
            flag = {"resources": "--resource", "port": "--gcs-port"}.get(key) or "--" + key.replace("_", "-")
            shown = ", ".join(f"{k}={v:g}" for k, v in sorted((want or {}).items())) if key == "resources" else want
            had = ", ".join(f"{k}={v:g}" for k, v in sorted(got.items())) or "none" if key == "resources" else ("unset" if got is None else got)
            out.append(f"{flag} {shown} (cluster has {had})")
    return out


def restart_steps(name: str, state_root: Path | None) -> list[dict[str, Any]]:
    """``cluster stop`` then this very command line again: the restart the user asked for."""
    import sys

    from merlin.cli.nextsteps import ARGV
    from merlin.nextsteps import Action, step

    me = invoked().split()
    stop = [*me, "ray", "cluster", "stop", *([] if name == "default" else ["--name", name]), *(["--state-root", str(state_root)] if state_root else [])]
    return [step(Action.RUN_AGAIN, argv=stop), step(Action.RUN_AGAIN, argv=[*me, *(ARGV or sys.argv[1:])])]

