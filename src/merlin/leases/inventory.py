"""Load an inventory YAML strictly: every problem is one ``FILE:LINE: path: problem`` line (exit 2).

Reuses the located-YAML machinery of :mod:`merlin.spec.loader` (line of every
key, duplicate keys, control characters, deep nesting), so an inventory is
checked exactly as strictly as a spec.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from merlin.errors import SpecError


def load_inventory_file(path: str | Path) -> list[dict[str, Any]]:
    """The items of an inventory YAML file as plain dicts, or SpecError listing every problem."""
    from pydantic import ValidationError

    from merlin.leases.models import InventorySpec
    from merlin.spec import loader

    path = Path(path)
    read = getattr(loader, "read_yaml_located", None) or loader._read_yaml  # the bounded public loader, once spec lands it
    data, lines, dupes = read(path, "resource inventory")
    dupes = list(dupes) + _duplicate_ids(str(path), data, lines)
    try:
        spec = InventorySpec.model_validate(data)
    except ValidationError as exc:
        found = loader._format_errors(str(path), exc, lines, data, InventorySpec, dupes)
        raise SpecError([line for line in found if "is defined twice" not in line or ": items: " not in line]) from None
    if dupes:
        raise SpecError([text for _, text in sorted(dupes)])
    return [item.model_dump(mode="json") for item in spec.items]


def _duplicate_ids(shown: str, data: Any, lines: dict) -> list[tuple[int, str]]:
    """Each repeated item id at its own line (the model only knows the list)."""
    out: list[tuple[int, str]] = []
    first: dict[str, int] = {}
    items = data.get("items") if isinstance(data, dict) else None
    for n, item in enumerate(items if isinstance(items, list) else []):
        ident = item.get("id") if isinstance(item, dict) else None
        if not isinstance(ident, str):
            continue
        line = lines.get(("items", n, "id"), lines.get(("items", n), 1))
        if ident in first:
            out.append((line, f"{shown}:{line}: items.{n}.id: {ident!r} is already the id of the item at line {first[ident]} (ids must be unique)"))
        else:
            first[ident] = line
    return out
