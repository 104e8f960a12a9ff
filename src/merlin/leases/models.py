"""Typed lease records (pydantic v2): the files under ``resources/`` and the inventory YAML.

The book's hot path reads and writes these files as plain JSON (no pydantic
import on the CLI's fast path); these models are the contract the files keep,
published as JSON Schema in docs/records/ and checked by the tests.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from merlin.leases.states import Health, LeaseState

SCHEMA_VERSION = 1
#: pool names, item ids and label keys: what a shell, a Ray resource name and a file name all accept
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_enum_values=False, defer_build=True)


class LeaseWaiter(_Model):
    """The process blocked in ``reserve --wait``: a waiting request whose waiter died is withdrawn."""

    pid: int
    pid_start: float | None = None
    host: str


class LeaseOwner(_Model):
    """Who asked; the pid and its start time let the book free the lease when that process dies."""

    user: str = Field(description="The name of the real uid that asked (from the operating system, never $LOGNAME or $USER).")
    uid: int | None = Field(None, ge=0, description="The real uid that asked: whose lease it is. Absent in records written before identity came from the OS.")
    host: str
    pid: int | None = Field(None, description="Holder process; None: the lease outlives the command that made it (CLI).")
    pid_start: float | None = Field(None, description="Start time of pid (epoch seconds), so a reused pid is not taken for the holder.")
    run_id: str | None = Field(None, description="The run this lease is bound to, if any.")
    waiter: LeaseWaiter | None = Field(None, description="While a request waits: the process blocked waiting for it to be granted (withdrawn if it dies).")


class Bundle(_Model):
    """COUNT items of POOL whose labels include every LABELS pair."""

    pool: str = Field(pattern=ID_PATTERN)
    count: int = Field(1, ge=1, le=1024)
    labels: dict[str, str] = Field(default_factory=dict)


class LeaseChange(_Model):
    """One state change of a lease, with who caused it and why."""

    time: datetime
    from_state: LeaseState | None = None
    to_state: LeaseState
    by: str = Field(description="user@host of whoever caused it, or 'merlin' for the book's own decisions.")
    reason: str


class LeaseRecord(_Model):
    """resources/leases/<lease_id>.json: one request for hardware and what became of it."""

    schema_version: Literal[1] = 1
    lease_id: str
    state: LeaseState
    owner: LeaseOwner
    bundles: list[Bundle] = Field(min_length=1, description="Requested bundles; several form a gang, granted all at once or not at all.")
    items: list[str] = Field(default_factory=list, description="Granted item ids (empty unless granted, or after it ended: the items it held).")
    tokens: dict[str, int] = Field(default_factory=dict, description="Fencing token per granted item: grows with every grant of that item.")
    priority: int = 0
    ttl_seconds: float = Field(gt=0, description="A granted lease expires this long after its grant or last renewal.")
    created_at: datetime
    granted_at: datetime | None = None
    renewed_at: datetime | None = None
    expires_at: datetime | None = Field(None, description="Absolute UTC expiry set by the book; holders treat it as skew_seconds earlier.")
    ended_at: datetime | None = None
    reason: str = Field("", description="Why the latest change happened.")
    changes: list[LeaseChange] = Field(default_factory=list, description="Every state change, oldest first.")
    rev: int = Field(0, ge=0, description="Bumped on every write; the book uses it to repair a write cut short by a crash.")
    seq: int = Field(0, ge=0, description="Number of events in the lease's event log.")


class LeaseEvent(_Model):
    """One line of resources/leases/<lease_id>.events.jsonl."""

    schema_version: Literal[1] = 1
    time: datetime
    lease_id: str
    seq: int = Field(ge=1, description="1, 2, ... within the lease.")
    book_seq: int = Field(ge=1, description="The scheduling pass that made it; passes are totally ordered by the book lock.")
    event: Literal["reserved", "granted", "renewed", "released", "expired", "revoked", "cancelled"]
    from_state: LeaseState | None = None
    to_state: LeaseState
    by: str
    reason: str
    items: list[str] = Field(default_factory=list)
    tokens: dict[str, int] = Field(default_factory=dict)
    expires_at: datetime | None = None


class InventoryItem(_Model):
    """One piece of hardware in resources/inventory.json, with its health and drain flag."""

    id: str = Field(pattern=ID_PATTERN)
    pool: str = Field(pattern=ID_PATTERN)
    labels: dict[str, str] = Field(default_factory=dict)
    host: str | None = Field(None, description="Host (Ray node) the item is attached to.")
    health: Health = Health.GOOD
    health_by: str | None = None
    health_reason: str | None = None
    health_at: datetime | None = None
    drained: bool = Field(False, description="Current holders finish; no new grant.")
    drain_by: str | None = None
    drain_reason: str | None = None
    drain_at: datetime | None = None


class Inventory(_Model):
    """resources/inventory.json: the lab's hardware as last defined, plus runtime health."""

    schema_version: Literal[1] = 1
    source: str | None = Field(None, description="The YAML file it was defined from.")
    defined_at: datetime
    defined_by: str
    items: list[InventoryItem] = Field(default_factory=list)


# --- the YAML a lab maintainer writes ---------------------------------------------------


class ItemSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=ID_PATTERN, description="Unique item id, e.g. fpga-01.")
    pool: str = Field(pattern=ID_PATTERN, description="Pool a request names, e.g. firesim_fpga.")
    labels: dict[str, str] = Field(default_factory=dict, description="e.g. {board: u250}; requests filter by labels.")
    host: str | None = Field(None, min_length=1, max_length=255, description="Host/node the item is attached to.")
    health: Health = Field(Health.GOOD, description="Initial health; changes made later (health of an item) are kept across re-defines.")

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



#: file stem in docs/records/ -> model (merlin.records publishes them beside the ledger's)
RECORD_MODELS: dict[str, type[BaseModel]] = {
    "lease": LeaseRecord,
    "lease_event": LeaseEvent,
    "inventory": Inventory,
}
