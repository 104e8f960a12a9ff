"""Local Ray clusters that merlin starts, observes and stops (see docs/ray.md)."""


def start_step(name: str, record: object = None) -> dict:
    """The next step that (re)starts cluster ``name`` as it was recorded: a local head keeps
    its ports and resources, another kind (slurm, pbs, ssh) its kind and start options."""
    from merlin.clusters.base import DEFAULT_KIND
    from merlin.nextsteps import Action, step

    if record is None:
        return step(Action.START_CLUSTER, name=name)
    kind = getattr(record, "kind", DEFAULT_KIND)
    if kind != DEFAULT_KIND:
        options = {k: v for k, v in (getattr(record, "options", None) or {}).items() if v not in (None, "", [], ())}
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
