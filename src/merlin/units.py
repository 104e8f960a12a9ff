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
