"""Load an inventory YAML strictly: every problem is one ``FILE:LINE: path: problem`` line (exit 2).

Reads through :func:`merlin.spec.yamlsafe.load_yaml` (regular file, size and
node limits, line of every key, duplicate keys, control characters) and reports
with the spec loader's formatter, so an inventory is checked exactly as
strictly as a spec.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from merlin.errors import SpecError


def load_inventory_file(path: str | Path) -> list[dict[str, Any]]:
    """The items of an inventory YAML file as plain dicts, or SpecError listing every problem."""
    from pydantic import ValidationError

    from merlin.leases.models import InventorySpec
    from merlin.spec import pydantic_check
    from merlin.spec.yamlsafe import load_yaml

    path = Path(path)
    doc = load_yaml(path, kind="resource inventory", duplicates="collect")  # bounded: size, nodes, regular file
    data, lines, dupes = doc.data, doc.lines, doc.duplicates
    dupes = list(dupes) + _duplicate_ids(str(path), data, lines)
    try:
        spec = InventorySpec.model_validate(data)
    except ValidationError as exc:
        found = pydantic_check.format_errors(str(path), exc, lines, data, InventorySpec, dupes)
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
            out.append((line, f"{shown}:{line}: items[{n}].id: {ident!r} is already the id of the item at line {first[ident]} (ids must be unique)"))
        else:
            first[ident] = line
    return out
