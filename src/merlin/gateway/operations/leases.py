"""Leases on lab hardware: list, reserve, renew, release, the queue, and why a lease waits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from merlin.controlplane import lease_rules
from merlin.gateway.operations.runs import Condition
from merlin.gateway.registry import Input, NoInput, Result, operation, step
from merlin.gateway.shared import LeaseId, PositiveDuration, RunId
from merlin.gateway.steps import map_steps

if TYPE_CHECKING:  # pragma: no cover
    from merlin.gateway.ops import Gateway


class Lease(BaseModel):
    """A lease as the book stores it."""

    model_config = ConfigDict(extra="allow")
    lease_id: str
    state: str


class LeaseResult(Lease, Result):
    """One lease, with the tool calls to make next."""


class LeasesListResult(Result):
    items: list[dict[str, Any]]
    queue: list[Lease]


class QueuedLease(Lease):
    position: int = Field(ge=1)


class LeasesQueueResult(Result):
    queue: list[QueuedLease]


class LeaseWhyResult(Result):
    lease_id: str
    conditions: list[Condition]


_RULES = lease_rules()


class ReserveInput(Input):
    bundles: list[Annotated[str, Field(pattern=_RULES["bundle_pattern"])]] = Field(min_length=1, description="POOL[:COUNT][,k=v...] each; several form a gang (granted all at once or not at all).")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels every bundle's items must carry.")
    priority: int = Field(0, ge=-_RULES["max_priority"], le=_RULES["max_priority"], description="Higher is served first; ties by age.")
    ttl: PositiveDuration = Field("15m", description="Expires unless renewed within this (90s, 15m, 2h).")
    run_id: RunId | None = Field(None, description="The run this lease is for (recorded).")


class LeaseInput(Input):
    lease_id: LeaseId = Field(description="Lease id.")


class RenewInput(LeaseInput):
    ttl: PositiveDuration | None = Field(None, description="New TTL (default: the lease's own).")


class ReleaseInput(LeaseInput):
    # the lease book's rule, said in the schema: force needs a reason (with more than blanks)
    model_config = ConfigDict(
        json_schema_extra={
            "if": {"required": ["force"], "properties": {"force": {"const": True}}},
            "then": {"required": ["reason"], "properties": {"reason": {"type": "string", "pattern": "\\S"}}},
        }
    )

    force: bool = Field(False, description="Release someone else's lease (needs reason).")
    reason: str | None = Field(None, max_length=2000, description="Why (recorded).")


def _lease_steps(lease: dict[str, Any]) -> list[dict[str, Any]]:
    lid = lease["lease_id"]
    if lease.get("state") == "waiting":
        return [step("leases_why", lease_id=lid), step("leases_queue")]
    if lease.get("state") == "granted":
        return [step("leases_renew", lease_id=lid), step("leases_release", lease_id=lid)]
    return []


@operation("leases_list", "leases", NoInput, LeasesListResult, mutating=False)
def leases_list(gw: Gateway, a: NoInput) -> dict[str, Any]:
    """Inventory items with their health, holder and waiting requests; then the queue."""
    book = gw.cp.leases
    return {"items": book.items(), "queue": book.queue(), "next_steps": []}


@operation("leases_reserve", "leases", ReserveInput, LeaseResult, mutating=True)
def leases_reserve(gw: Gateway, a: ReserveInput) -> dict[str, Any]:
    """Request items (a gang if several bundles); returns the lease at once, granted or waiting in the queue. The server's user owns it; renew it before its TTL ends."""
    lease = dict(gw.cp.reserve_lease(a.bundles, labels=a.labels, priority=a.priority, ttl=a.ttl, run_id=a.run_id))
    lease["next_steps"] = _lease_steps(lease)
    return lease


@operation("leases_renew", "leases", RenewInput, LeaseResult, mutating=True)
def leases_renew(gw: Gateway, a: RenewInput) -> dict[str, Any]:
    """Push a lease's expiry out by its TTL (an error with exit code 3 if it already ended)."""
    lease = dict(gw.cp.leases.renew(a.lease_id, ttl=a.ttl))
    lease["next_steps"] = _lease_steps(lease)
    return lease


@operation("leases_release", "leases", ReleaseInput, LeaseResult, mutating=True)
def leases_release(gw: Gateway, a: ReleaseInput) -> dict[str, Any]:
    """Give the items back (or withdraw a waiting request); the next waiter is granted at once."""
    lease = dict(gw.cp.leases.release(a.lease_id, force=a.force, reason=a.reason))
    lease["next_steps"] = []
    return lease


@operation("leases_queue", "leases", NoInput, LeasesQueueResult, mutating=False)
def leases_queue(gw: Gateway, a: NoInput) -> dict[str, Any]:
    """Waiting requests in the order they will be served (after a scheduling pass)."""
    rows = [dict(lease, position=n) for n, lease in enumerate(gw.cp.lease_queue(), 1)]
    return {"queue": rows, "next_steps": [step("leases_why", lease_id=r["lease_id"]) for r in rows[:5]]}


@operation("leases_why", "leases", LeaseInput, LeaseWhyResult, mutating=False)
def leases_why(gw: Gateway, a: LeaseInput) -> dict[str, Any]:
    """Every condition holding a waiting lease back, each with a code, evidence and the next step."""
    conds = [dict(c, next_steps=map_steps(c.get("next_steps"))) for c in gw.cp.leases.why(a.lease_id)]
    return {"lease_id": a.lease_id, "conditions": conds, "next_steps": []}
