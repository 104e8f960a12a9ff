"""Local Ray clusters that merlin starts, observes and stops (see docs/ray.md)."""


def name_flag(name: str) -> str:
    """The ``--name`` flag to repeat in a suggested command (nothing for the default cluster)."""
    return "" if name == "default" else f" --name {name}"
