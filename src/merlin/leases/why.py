"""Why a lease is waiting: every condition of the lease layer, with evidence and the next steps.

Each condition is a :func:`merlin.conditions.condition` dict ``{layer, code,
message, evidence, observed_at, next_steps, hint}``; codes are stable
(docs/leases.md lists them) so scripts and agents can act on them. The run
level (``jobs why``) is assembled in ``merlin.control.why``; this package
knows only its leases.
"""

from __future__ import annotations

from typing import Any

from merlin.conditions import condition
from merlin.leases import policy
from merlin.nextsteps import Action, step


def _cond(code: str, message: str, evidence: dict[str, Any], observed_at: str, steps: list[dict[str, Any]], hint: str | None = None) -> dict[str, Any]:
    return condition("leases", code, message, evidence, observed_at, steps, hint)


def _bundle_text(b: dict[str, Any]) -> str:
    """A bundle as ``reserve`` takes it: ``POOL[:COUNT][,k=v...]``."""
    labels = "".join(f",{k}={v}" for k, v in sorted((b.get("labels") or {}).items()))
    return f"{b['pool']}:{b.get('count', 1)}{labels}"


def explain(lease: dict[str, Any], state: dict[str, Any], inv: dict[str, Any] | None, now: float, skew: float) -> list[dict[str, Any]]:
    from merlin.clock import iso

    at = iso(now)
    lid = lease["lease_id"]
    if lease["state"] == "granted":
        return []
    if lease["state"] != "waiting":
        return [_cond("lease_ended", f"lease {lid} is {lease['state']}: {lease.get('reason', '')}", {"state": lease["state"], "ended_at": lease.get("ended_at")}, at,
                      [step(Action.RESERVE, bundles=[_bundle_text(b) for b in lease["bundles"]], priority=lease.get("priority") or None)],
                      "reserve again")]  # fmt: skip
    out: list[dict[str, Any]] = []
    items = (inv or {}).get("items", [])
    live = state.get("live", {})
    queue = sorted((x for x in live.values() if x["state"] == "waiting"), key=policy.order_key)
    position = next((n for n, x in enumerate(queue, 1) if x["lease_id"] == lid), None)
    usable = {it["id"] for it in items for b in lease["bundles"] if policy.matches(it, b)}
    ahead = [x for x in queue[: (position or 1) - 1] if any(policy.matches(it, b) for it in items if it["id"] in usable for b in x["bundles"])]
    if ahead:
        out.append(_cond("lease_queued", f"position {position} of {len(queue)} in the queue; {len(ahead)} earlier request(s) want the same items",
                         {"position": position, "queue_length": len(queue), "ahead": [x["lease_id"] for x in ahead]}, at,
                         [step(Action.LEASES_QUEUE), *[step(Action.LEASE_WHY, lease_id=x["lease_id"]) for x in ahead[:1]]],
                         "wait: it is granted by itself when they are served"))  # fmt: skip
    holders = {i: x for x in live.values() if x["state"] == "granted" for i in x["items"]}
    for it in items:
        if it["id"] not in usable:
            continue
        holder = holders.get(it["id"])
        if holder is not None:
            o = holder["owner"]
            out.append(_cond("lease_item_held", f"{it['id']} is held by {o['user']}@{o['host']} (lease {holder['lease_id']}) since {holder.get('granted_at')} until {holder.get('expires_at')}",
                             {"item": it["id"], "holder_lease": holder["lease_id"], "user": o["user"], "host": o["host"], "pid": o.get("pid"),
                              "run_id": o.get("run_id"), "since": holder.get("granted_at"), "until": holder.get("expires_at"), "skew_seconds": skew}, at,
                             [*([step(Action.WHY, run_id=o["run_id"])] if o.get("run_id") else []), step(Action.LEASES_LIST),
                              step(Action.RELEASE, lease_id=holder["lease_id"], force=True)],
                             f"wait for it, or ask {o['user']}; an admin may release it by force, with a reason"))  # fmt: skip
        if it.get("health", "good") != "good":
            out.append(_cond("lease_item_not_good", f"{it['id']} is {it['health']}: {it.get('health_reason') or 'no reason given'}",
                             {"item": it["id"], "health": it["health"], "by": it.get("health_by"), "since": it.get("health_at"), "reason": it.get("health_reason")}, at,
                             [step(Action.LEASES_LIST), step(Action.ITEM_HEALTH, item=it["id"], state="good")],
                             "a lab maintainer fixes it, then records it good"))  # fmt: skip
        if it.get("drained"):
            out.append(_cond("lease_item_drained", f"{it['id']} is drained by {it.get('drain_by')}: {it.get('drain_reason')}",
                             {"item": it["id"], "by": it.get("drain_by"), "since": it.get("drain_at"), "reason": it.get("drain_reason")}, at,
                             [step(Action.LEASES_LIST), step(Action.DRAIN_ITEM, item=it["id"], undo=True)],
                             "a lab maintainer undrains it"))  # fmt: skip
    if not out:
        out.append(_cond("lease_pending_pass", "grantable now; the next scheduling pass grants it", {"position": position}, at,
                         [step(Action.LEASES_QUEUE)], "listing the queue runs a pass"))  # fmt: skip
    return out
