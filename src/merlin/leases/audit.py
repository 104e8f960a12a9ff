"""Audit a state root's leases from the files alone: double grants, fencing tokens, unreadable files.

Used by the contention test and the benchmark; useful after an incident too.
A grant of an item spans from the ``book_seq`` of its ``granted`` event to
the ``book_seq`` of the lease's end event; passes are totally ordered by the
book lock, so two spans of one item that overlap are a double grant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from merlin.ledger.paths import Layout

_ENDS = ("released", "expired", "revoked")


def audit(root: Path | Layout, killed_pids: set[int] | frozenset[int] = frozenset()) -> dict[str, int]:
    layout = root if isinstance(root, Layout) else Layout(Path(root))
    unreadable = 0
    leases: list[dict[str, Any]] = []
    for path in sorted(layout.leases.glob("*.json")):
        try:
            leases.append(json.loads(path.read_text(encoding="utf-8")))
        except ValueError:
            unreadable += 1
    events: list[dict[str, Any]] = []
    for path in sorted(layout.leases.glob("*.events.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                unreadable += 1
    ends = {e["lease_id"]: e["book_seq"] for e in events if e["event"] in _ENDS}
    spans: dict[str, list[tuple[int, int, int]]] = {}
    for e in events:
        if e["event"] == "granted":
            for item, token in e["tokens"].items():
                spans.setdefault(item, []).append((e["book_seq"], ends.get(e["lease_id"], 1 << 62), token))
    double = bad_tokens = 0
    for item_spans in spans.values():
        item_spans.sort()
        double += sum(1 for (_, end, _), (start, _, _) in zip(item_spans, item_spans[1:], strict=False) if start < end)
        if [t for _, _, t in item_spans] != list(range(1, len(item_spans) + 1)):
            bad_tokens += 1
    return {
        "leases": len(leases),
        "grants": sum(len(v) for v in spans.values()),
        "double_grants": double,
        "bad_token_sequences": bad_tokens,
        "unreadable": unreadable,
        "live_leases_of_killed": sum(1 for x in leases if x["owner"].get("pid") in killed_pids and x["state"] in ("waiting", "granted")),
        "expired": sum(1 for x in leases if x["state"] == "expired"),
        "released_dead_holder": sum(1 for x in leases if x["state"] == "released" and "is gone" in x.get("reason", "")),
    }
