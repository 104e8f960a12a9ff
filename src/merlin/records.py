"""Publish the JSON Schemas of every record merlin keeps under the state root
(docs/records/*.schema.json): the ledger's runs and clusters, and the lease
book's leases and inventory. It sits above both packages, so neither imports
the other for this.

``python -m merlin.records docs/records`` rewrites them; a test checks
that the committed files equal what the models produce.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def schemas() -> dict[str, dict[str, Any]]:
    from merlin.leases.models import RECORD_MODELS as LEASE_MODELS
    from merlin.ledger.models import RECORD_MODELS
    from merlin.spec.schema import published

    models: dict[str, Any] = {**RECORD_MODELS, **LEASE_MODELS}  # light records and pydantic models: both publish a schema
    return {f"{stem}.schema.json": published(model, f"merlin/records/{stem}.schema.json", mode="serialization") for stem, model in models.items()}


def write(directory: Path) -> list[Path]:
    from merlin.atomic import dump_json, write_if_changed

    directory.mkdir(parents=True, exist_ok=True)
    return [directory / n for n, s in schemas().items() if write_if_changed(directory / n, dump_json(s).encode("utf-8"))]


if __name__ == "__main__":  # pragma: no cover
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/records")
    for p in write(target):
        print(f"wrote {p}")
