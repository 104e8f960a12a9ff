"""Local Ray clusters that merlin starts, observes and stops (see docs/ray.md)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: what a kind records among its options for itself, not as a start option (an SSH cluster's handshake dirs)
BOOKKEEPING = ("remote_dir", "remote_dirs")


def start_step(name: str, record: object = None) -> dict:
    """The next step that (re)starts cluster ``name`` as it was recorded: a local head keeps
    its ports and resources, another kind (slurm, pbs, ssh) its kind and start options."""
    from merlin.clusters.base import DEFAULT_KIND
    from merlin.nextsteps import Action, step

    if record is None:
        return step(Action.START_CLUSTER, name=name)
    kind = getattr(record, "kind", DEFAULT_KIND)
    if kind != DEFAULT_KIND:
        options = {k: v for k, v in (getattr(record, "options", None) or {}).items() if v not in (None, "", [], ()) and k not in BOOKKEEPING}
        return step(Action.START_CLUSTER, name=name, kind=kind, options=options or None)
    ports = getattr(record, "ports", None)
    requested = getattr(record, "requested", None) or {}
    host = getattr(record, "host", None)
    return step(
        Action.START_CLUSTER,
        name=name,
        host=host if host not in (None, "127.0.0.1") else None,
        port=getattr(ports, "gcs", None),
        dashboard_port=getattr(ports, "dashboard", None),
        num_cpus=requested.get("num_cpus"),
        num_gpus=requested.get("num_gpus"),
        resources=requested.get("resources") or None,
    )


#: How a cluster ended (``ClusterRecord.stop_reason``) when a person or its own idle rule ended it:
#: such a cluster is started again only by a person, never by a run's retry.
ENDED_ON_PURPOSE = ("stopped by merlin", "idle")


def start_args(record: object) -> dict:
    """The keyword arguments of the facade's ``start_cluster(kind, name, **args)`` that start
    ``record``'s cluster again as it was recorded: :func:`start_step`'s (a local head's ports and
    resources; another kind's start options), plus what a printed step leaves to the defaults (a
    local head's auth and remote binding). What the retry keeper starts a cluster with."""
    from merlin.clusters.base import DEFAULT_KIND

    args = {k: v for k, v in start_step(getattr(record, "name", ""), record)["args"].items() if k not in ("name", "kind")}
    args.update(args.pop("options", None) or {})
    auth = getattr(record, "auth", None)
    if getattr(record, "kind", DEFAULT_KIND) == DEFAULT_KIND:
        if auth is not None:
            args.update(auth="token" if auth.mode == "token" else "none", token_file=auth.token_file, token_env=auth.token_env)
        if getattr(record, "allow_remote", False):
            args["allow_remote"] = True  # a head on a routable address, as it was started
    return {k: v for k, v in args.items() if v is not None}


#: a local head's own processes: while either runs, the head is not dead (Ray's monitors may outlive them)
HEAD_PROCESSES = ("gcs_server", "raylet")


def head_gone(processes: Iterable[Any]) -> bool | None:
    """Whether a local head merlin started here is dead, from its recorded processes (``ClusterProcess``
    records, or their JSON dicts): True when every recorded GCS and raylet is gone, None when the
    record names neither. One ``/proc`` read each: cheap enough to ask before any HTTP call, which
    a dead GCS's dashboard can hold for its whole timeout."""
    from merlin.procid import alive

    def field(p: Any, key: str) -> Any:
        return p.get(key) if isinstance(p, dict) else getattr(p, key, None)

    head = [(field(p, "pid"), field(p, "start_ticks")) for p in processes if field(p, "name") in HEAD_PROCESSES]
    if not head:
        return None
    return not any(alive(pid, start) for pid, start in head)
