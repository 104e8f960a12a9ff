"""Lease models: the records (defined with the ledger's, re-exported) and the inventory YAML.

The book's hot path reads and writes the record files as plain JSON (no
pydantic on the CLI's fast path); the record models are the contract those
files keep, published as JSON Schema in docs/records/ and checked by the tests.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from merlin.ledger.lease_status import Health
from merlin.ledger.models import (  # noqa: F401
    LEASE_ID_PATTERN as ID_PATTERN,
)

# --- the YAML a lab maintainer writes ---------------------------------------------------


class ItemSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=ID_PATTERN, description="Unique item id, e.g. fpga-01.")
    pool: str = Field(pattern=ID_PATTERN, description="Pool a request names, e.g. firesim_fpga.")
    labels: dict[str, str] = Field(default_factory=dict, description="e.g. {board: u250}; requests filter with --label k=v.")
    host: str | None = Field(None, min_length=1, max_length=255, description="Host/node the item is attached to.")
    health: Health = Field(Health.GOOD, description="Initial health; runtime changes (`resources health`) are kept across re-defines.")

    @field_validator("labels")
    @classmethod
    def _label_keys(cls, v: dict[str, str]) -> dict[str, str]:
        import re

        for key in v:
            if not re.match(ID_PATTERN, key):
                raise ValueError(f"label key {key!r} must be letters, digits, '_', '.', ':' or '-'")
        return v


class InventorySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1]
    items: list[ItemSpec] = Field(min_length=1)

    @field_validator("items")
    @classmethod
    def _unique(cls, v: list[ItemSpec]) -> list[ItemSpec]:
        seen: set[str] = set()
        for item in v:
            if item.id in seen:
                raise ValueError(f"item id {item.id!r} is defined twice (ids must be unique)")
            seen.add(item.id)
        return v


def dump(model: Any) -> dict[str, Any]:
    return model.model_dump(mode="json")
