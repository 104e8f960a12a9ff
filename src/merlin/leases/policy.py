"""The lease book's policy: who gets which items, in one pure function.

The order rule (docs/leases.md states it):

1. Waiting requests are considered by priority (higher first), then age
   (older first), then lease id: the *queue order*.
2. A request is granted when every one of its bundles can be filled at once
   from items that are *grantable* (health ``good``, not drained), not held,
   and not set aside in this pass. A gang is granted whole or not at all; a
   waiting request holds nothing.
3. When a request cannot be granted, every free grantable item it could use
   (any item matching any of its bundles) is set aside for it for the rest of
   the pass: no later request may take it.

So a later request can only take items that no earlier waiter can use, which
cannot delay an earlier waiter (it could not have used them), and when held
items come back the earliest waiter that can use them is considered first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Lease = dict[str, Any]
Item = dict[str, Any]


def describe(bundles: Sequence[Mapping[str, Any]]) -> str:
    """A lease's bundles in one line, as messages and listings show them: ``fpga:2,board=vcu118 + host:1``."""
    return " + ".join(f"{b['pool']}:{b['count']}" + "".join(f",{k}={v}" for k, v in sorted((b.get("labels") or {}).items())) for b in bundles)


def order_key(lease: Lease) -> tuple[int, str, str]:
    """Queue order: priority (high first), then created_at (old first), then id."""
    return (-int(lease.get("priority", 0)), lease["created_at"], lease["lease_id"])


def grantable(item: Item) -> bool:
    return item.get("health", "good") == "good" and not item.get("drained", False)


def matches(item: Item, bundle: dict[str, Any]) -> bool:
    if item["pool"] != bundle["pool"]:
        return False
    labels = item.get("labels") or {}
    return all(labels.get(k) == v for k, v in (bundle.get("labels") or {}).items())


def _bundle_key(bundle: dict[str, Any]) -> tuple[str, tuple[tuple[str, str], ...]]:
    return bundle["pool"], tuple(sorted((bundle.get("labels") or {}).items()))


def assign(bundles: Sequence[dict[str, Any]], candidates: Sequence[list[str]], available: set[str]) -> list[str] | None:
    """Items filling every bundle (``count`` distinct items each), or None.

    ``candidates[i]`` lists the items that may fill bundle i, in inventory
    order. One bundle is a slice; a gang is a bipartite matching (augmenting
    paths), so overlapping label filters never make a feasible gang fail.
    """
    if len(bundles) == 1:
        picked = [c for c in candidates[0] if c in available][: bundles[0]["count"]]
        return picked if len(picked) == bundles[0]["count"] else None
    slots: list[list[str]] = []
    for bundle, cands in zip(bundles, candidates, strict=True):
        usable = [c for c in cands if c in available]
        if len(usable) < bundle["count"]:
            return None
        slots.extend([usable] * bundle["count"])
    owner: dict[str, int] = {}

    def place(slot: int, seen: set[str]) -> bool:
        for item in slots[slot]:
            if item in seen:
                continue
            seen.add(item)
            if item not in owner or place(owner[item], seen):
                owner[item] = slot
                return True
        return False

    for slot in range(len(slots)):
        if not place(slot, set()):
            return None
    by_slot = {slot: item for item, slot in owner.items()}
    return [by_slot[s] for s in range(len(slots))]


def schedule(waiting: Iterable[Lease], items: Sequence[Item], held: set[str]) -> list[tuple[Lease, list[str]]]:
    """The grants of one scheduling pass: ``[(lease, item ids)]`` in queue order."""
    free = [it["id"] for it in items if grantable(it) and it["id"] not in held]
    available = set(free)
    grants: list[tuple[Lease, list[str]]] = []
    if not available:
        return grants
    by_id = {it["id"]: it for it in items}
    cache: dict[Any, list[str]] = {}

    def cands(bundle: dict[str, Any]) -> list[str]:
        key = _bundle_key(bundle)
        found = cache.get(key)
        if found is None:
            found = cache[key] = [i for i in free if matches(by_id[i], bundle)]
        return found

    for lease in sorted(waiting, key=order_key):
        bundles = lease["bundles"]
        lists = [cands(b) for b in bundles]
        picked = assign(bundles, lists, available)
        if picked is not None:
            grants.append((lease, picked))
            available.difference_update(picked)
        else:
            for lst in lists:  # set aside what this earlier waiter could use
                available.difference_update(lst)
        if not available:
            break
    return grants


def _no_such_pool(pool: str, items: Sequence[Item]) -> str:
    """``; no pool 'fpag' (did you mean 'fpga'?)`` when the inventory has no such pool at all."""
    pools = sorted({str(it["pool"]) for it in items})
    if pool in pools:
        return ""
    import difflib

    close = difflib.get_close_matches(pool, pools, n=3, cutoff=0.6)
    return f"; no pool {pool!r} ({'did you mean ' + ' or '.join(repr(c) for c in close) + '?' if close else 'pools: ' + (', '.join(pools) or 'none')})"


def capacity_problem(bundles: Sequence[dict[str, Any]], items: Sequence[Item]) -> str | None:
    """Why a request can never be granted by this inventory (whatever the health), or None."""
    everything = {it["id"] for it in items}
    lists = [[it["id"] for it in items if matches(it, b)] for b in bundles]
    for bundle, lst in zip(bundles, lists, strict=True):
        if len(lst) < bundle["count"]:
            labels = "".join(f",{k}={v}" for k, v in sorted((bundle.get("labels") or {}).items()))
            return f"{bundle['pool']}:{bundle['count']}{labels}: the inventory has {len(lst)} matching item(s)" + _no_such_pool(bundle["pool"], items)
    if assign(bundles, lists, everything) is None:
        return "the bundles overlap: the inventory has too few distinct items to fill them all at once"
    return None
