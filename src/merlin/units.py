"""Quantities for people: Ray counts memory in bytes, which ``:g`` shows as ``1.64598e+10``."""

from __future__ import annotations

from typing import Any


def human_bytes(n: float) -> str:
    """``15.3 GiB``, ``75.0 MiB``, ``512 B``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def amount(key: str, value: Any) -> str:
    """A resource amount as shown beside its name: bytes for memory resources, ``:g`` for counts."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return human_bytes(value) if "memory" in key.lower() else f"{value:g}"


_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3, "t": 1000**4, "tb": 1000**4,
               "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}  # fmt: skip


def parse_bytes(text: str | int, name: str = "size") -> int:
    """``512MiB``, ``2GiB``, ``1.5G``, ``300MB``, ``4096`` (bytes) -> bytes; a BadInput naming ``name`` otherwise."""
    import re

    from merlin.errors import BadInput

    if isinstance(text, int) and not isinstance(text, bool):
        value, unit = float(text), ""
    else:
        m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
        if m is None or m.group(2).lower() not in _SIZE_UNITS:
            raise BadInput(f"`{name}` {text!r} is not a size: write it as 512MiB, 2GiB or 300MB", argument=name)
        value, unit = float(m.group(1)), m.group(2).lower()
    return int(value * _SIZE_UNITS[unit])


def memory_bytes(memory: object, name: str = "memory") -> int | None:
    """``memory`` (``submit(memory=...)``, ``ResourceConfig.ram``) as bytes: an int, or a size such as
    ``512MiB``, ``4GiB`` or ``4g`` (merlin.units' one grammar), at least 1 MiB; None: no limit.
    ``BadInput`` naming ``name`` otherwise."""
    if memory is None:
        return None
    from merlin.errors import BadInput

    if isinstance(memory, bool) or not isinstance(memory, (int, str)):
        raise BadInput(f"`{name}` {memory!r} is not a size: write it as 512MiB or 4GiB", argument=name)
    size = parse_bytes(memory, name)
    if size < 1024**2:
        raise BadInput(f"`{name}` {memory!r} is {size} bytes: give at least 1MiB (e.g. 512MiB, 4GiB)", argument=name)
    return size
