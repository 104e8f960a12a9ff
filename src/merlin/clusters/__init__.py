"""Local Ray clusters that merlin starts, observes and stops (see docs/ray.md)."""


def name_flag(name: str) -> str:
    """The ``--name`` flag to repeat in a suggested command (nothing for the default cluster)."""
    return "" if name == "default" else f" --name {name}"


def start_step(name: str, record: object = None) -> dict:
    """The next step that (re)starts cluster ``name``, keeping the recorded ports and resources."""
    from merlin.clusters.base import DEFAULT_KIND
    from merlin.nextsteps import Action, step

    if record is None:
        return step(Action.START_CLUSTER, name=name)
    ports = getattr(record, "ports", None)
    requested = getattr(record, "requested", None) or {}
    host = getattr(record, "host", None)
    return step(
        Action.START_CLUSTER,
        name=name,
        kind=None if getattr(record, "kind", DEFAULT_KIND) == DEFAULT_KIND else getattr(record, "kind", None),
        host=host if host not in (None, "127.0.0.1") else None,
        port=getattr(ports, "gcs", None),
        dashboard_port=getattr(ports, "dashboard", None),
        num_cpus=requested.get("num_cpus"),
        num_gpus=requested.get("num_gpus"),
        resources=requested.get("resources") or None,
    )
