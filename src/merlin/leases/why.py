"""Why a lease is waiting: every condition of the lease layer, with evidence and the next step.

Each condition is a dict ``{layer, code, message, evidence, observed_at,
next_step}``; codes are stable (docs/leases.md lists them) so scripts and
agents can act on them.
"""

from __future__ import annotations

from typing import Any

from merlin.leases import policy


def _cond(code: str, message: str, evidence: dict[str, Any], observed_at: str, next_step: str) -> dict[str, Any]:
    return {"layer": "leases", "code": code, "message": message, "evidence": evidence, "observed_at": observed_at, "next_step": next_step}


def explain(lease: dict[str, Any], state: dict[str, Any], inv: dict[str, Any] | None, now: float, skew: float) -> list[dict[str, Any]]:
    from merlin.leases.book import iso

    at = iso(now)
    lid = lease["lease_id"]
    if lease["state"] == "granted":
        return []
    if lease["state"] != "waiting":
        return [_cond("lease_ended", f"lease {lid} is {lease['state']}: {lease.get('reason', '')}", {"state": lease["state"], "ended_at": lease.get("ended_at")}, at,
                      "reserve again: `merlin ray resources reserve ...`")]  # fmt: skip
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
                         "wait: it is granted by itself when they are served (see `merlin ray resources queue`)"))  # fmt: skip
    holders = {i: x for x in live.values() if x["state"] == "granted" for i in x["items"]}
    for it in items:
        if it["id"] not in usable:
            continue
        holder = holders.get(it["id"])
        if holder is not None:
            o = holder["owner"]
            out.append(_cond("lease_item_held", f"{it['id']} is held by {o['user']}@{o['host']} (lease {holder['lease_id']}) until {holder.get('expires_at')}",
                             {"item": it["id"], "holder_lease": holder["lease_id"], "user": o["user"], "host": o["host"], "pid": o.get("pid"),
                              "run_id": o.get("run_id"), "since": holder.get("granted_at"), "until": holder.get("expires_at"), "skew_seconds": skew}, at,
                             f"wait for it, or ask {o['user']}; an admin may `merlin ray resources release {holder['lease_id']} --force --reason WHY`"))  # fmt: skip
        if it.get("health", "good") != "good":
            out.append(_cond("lease_item_not_good", f"{it['id']} is {it['health']}: {it.get('health_reason') or 'no reason given'}",
                             {"item": it["id"], "health": it["health"], "by": it.get("health_by"), "since": it.get("health_at"), "reason": it.get("health_reason")}, at,
                             f"a lab maintainer fixes it, then `merlin ray resources health {it['id']} good --reason WHY`"))  # fmt: skip
        if it.get("drained"):
            out.append(_cond("lease_item_drained", f"{it['id']} is drained by {it.get('drain_by')}: {it.get('drain_reason')}",
                             {"item": it["id"], "by": it.get("drain_by"), "since": it.get("drain_at"), "reason": it.get("drain_reason")}, at,
                             f"a lab maintainer undrains it: `merlin ray resources drain {it['id']} --undo`"))  # fmt: skip
    if not out:
        out.append(_cond("lease_pending_pass", "grantable now; the next scheduling pass grants it", {"position": position}, at,
                         "`merlin ray resources queue` runs a pass"))  # fmt: skip
    return out


def run_conditions(cp: Any, run_id: str) -> list[dict[str, Any]]:
    """Why a run is not running, layer by layer: its leases, then its cluster's scheduler
    (a queued Slurm/PBS allocation's reason), then its cluster, then the run record.

    Leases: every condition of each lease the run holds or waits for. Cluster
    (ray engine): the cluster is not active, or lacks a resource the run asks
    for. Run: a blocked run's recorded reason. Empty when nothing holds it back.
    """
    from merlin.leases.book import iso

    rec = cp.get(run_id)
    at = iso(__import__("time").time())
    out: list[dict[str, Any]] = []
    book = cp.leases
    named = list(rec.leases) + [x for x in (rec.metadata.get("leases") or []) if isinstance(x, str) and x not in rec.leases]
    named += [x["lease_id"] for x in book.live() if x["owner"].get("run_id") == run_id and x["lease_id"] not in named]  # taken from inside the run
    for lid in named:
        try:
            out += book.why(lid)
        except Exception as exc:  # NotFound: the record names a lease the book does not know
            out.append({"layer": "leases", "code": "lease_missing", "message": f"lease {lid}: {exc}", "evidence": {"lease_id": lid},
                        "observed_at": at, "next_step": "`merlin ray resources list` shows the leases the book knows"})  # fmt: skip
    if rec.status.value == "waiting" and not out:
        out.append({"layer": "leases", "code": "run_waiting_no_lease", "message": "the run is waiting but names no waiting lease",
                    "evidence": {"leases": list(rec.leases)}, "observed_at": at, "next_step": f"`merlin ray jobs cancel {run_id}`, then submit again"})  # fmt: skip
    if cp.engine(rec.engine).uses_cluster and (not rec.status.is_terminal() or rec.status.value == "blocked"):
        name = rec.cluster.name if rec.cluster else "default"
        state = cp.cluster_status(name)
        if state.record is not None:  # a queued Slurm/PBS allocation: the scheduler's reason
            out += __import__("merlin.clusters.why", fromlist=["scheduler_conditions"]).scheduler_conditions(state.record, at)
        if state.state != "active":
            out.append({"layer": "cluster", "code": "cluster_not_active", "message": f"cluster {name} is {state.state}: {state.message}",
                        "evidence": {"cluster": name, "state": state.state}, "observed_at": at,
                        "next_step": f"`merlin ray cluster start-local --name {name}`, then `merlin ray jobs retry {run_id}` if the run is blocked"})  # fmt: skip
        else:
            try:
                request = cp.ledger.read_request(run_id)
            except Exception:
                request = None
            have = dict((state.record.resources or {}) if state.record is not None else {})
            want = dict(getattr(request, "resources", None) or {})
            if request is not None and request.num_gpus:
                want["GPU"] = request.num_gpus
            for key, amount in sorted(want.items()):
                if have.get(key, 0) < amount:
                    out.append({"layer": "cluster", "code": "cluster_resource_missing",
                                "message": f"cluster {name} has {have.get(key, 0):g} {key}, the run asks for {amount:g}",
                                "evidence": {"cluster": name, "resource": key, "have": have.get(key, 0), "want": amount}, "observed_at": at,
                                "next_step": f"start the cluster with --resource {key}={amount:g} (or more), or ask for less"})  # fmt: skip
    if rec.status.value == "blocked":
        out.append({"layer": "run", "code": "run_blocked", "message": rec.message, "evidence": {"status": "blocked"}, "observed_at": at,
                    "next_step": f"fix what the message says, then `merlin ray jobs retry {run_id}`"})  # fmt: skip
    return out
