"""Property-based test of the lease book against a simple counting model (hypothesis).

Random sequences of reserve (single and gang), renew, release, cancel,
revoke, clock advance, holder crash, health and drain changes are applied to
a real LeaseBook on a temp state root (real files, real lock) with a fake
clock and a fake process table, and to a model that only counts free items
per pool. After every step: the lease states equal the model's, no item is
granted twice, a gang is whole or nothing, a waiter is never overtaken
against the order rule, terminal states never change; at the end every
lease is in exactly one terminal state.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from merlin.errors import BadInput  # noqa: E402
from merlin.leases.book import LeaseBook, LeaseLost  # noqa: E402

POOLS = {"fpga": ["fpga-0", "fpga-1", "fpga-2"], "board": ["board-0", "board-1"]}
ITEMS = [{"id": i, "pool": p} for p, ids in POOLS.items() for i in ids]
SKEW = 2.0
_counter = itertools.count()

bundle_sets = st.lists(
    st.tuples(st.sampled_from(sorted(POOLS)), st.integers(1, 3)), min_size=1, max_size=2, unique_by=lambda b: b[0]
).map(lambda bs: [(p, min(c, len(POOLS[p]))) for p, c in bs])
ops = st.one_of(
    st.tuples(st.just("reserve"), bundle_sets, st.integers(0, 2), st.integers(5, 60), st.integers(1, 4)),
    st.tuples(st.just("renew"), st.integers(0, 50)),
    st.tuples(st.just("release"), st.integers(0, 50)),
    st.tuples(st.just("cancel"), st.integers(0, 50)),
    st.tuples(st.just("revoke"), st.integers(0, 50)),
    st.tuples(st.just("advance"), st.integers(1, 40)),
    st.tuples(st.just("tick"), st.integers(1, 40)),  # time passes with no pass: the next operation's own pass must settle it
    st.tuples(st.just("crash"), st.integers(1, 4)),
    st.tuples(st.just("health"), st.sampled_from([i["id"] for i in ITEMS]), st.sampled_from(["good", "bad", "good"])),
    st.tuples(st.just("drain"), st.sampled_from([i["id"] for i in ITEMS]), st.booleans()),
)


class Model:
    """What the order rule says, counting items per pool only."""

    def __init__(self) -> None:
        self.leases: dict[str, dict[str, Any]] = {}
        self.health = {i["id"]: "good" for i in ITEMS}
        self.drained = {i["id"]: False for i in ITEMS}

    def settle(self, now: float, dead: set[int]) -> None:
        for m in self.leases.values():
            if m["state"] == "granted" and (now > m["expires"] + SKEW):
                m["state"] = "expired"
            elif m["state"] == "granted" and m["pid"] in dead:
                m["state"] = "released"
            elif m["state"] == "waiting" and m["pid"] in dead:
                m["state"] = "cancelled"

    def schedule(self, book_items: dict[str, list[str]]) -> set[str]:
        """Lease ids the rule grants now; ``book_items`` are the items the book says each granted lease holds."""
        held = {i for lid, m in self.leases.items() if m["state"] == "granted" for i in book_items[lid]}
        avail = {p: sum(1 for i in ids if i not in held and self.health[i] == "good" and not self.drained[i]) for p, ids in POOLS.items()}
        grants = set()
        for lid, m in sorted(((k, v) for k, v in self.leases.items() if v["state"] == "waiting"), key=lambda kv: kv[1]["key"]):
            if all(avail[p] >= c for p, c in m["bundles"]):
                grants.add(lid)
                for p, c in m["bundles"]:
                    avail[p] -= c
            else:
                for p, _ in m["bundles"]:
                    avail[p] = 0  # set aside for this earlier waiter
        return grants


def _check(book: LeaseBook, model: Model, ended: dict[str, str]) -> None:
    live = {lease["lease_id"]: lease for lease in book.live()}
    seen: dict[str, str] = {}
    for lid, m in model.leases.items():
        lease = live.get(lid) or book.show(lid)
        assert lease["state"] == m["state"], f"{lid}: book says {lease['state']}, model {m['state']}"
        if lease["state"] == "granted":
            for item in lease["items"]:
                assert item not in seen, f"{item} granted to {seen[item]} and {lid} at once"
                seen[item] = lid
            for pool, count in m["bundles"]:  # whole gang: every bundle filled from its own pool
                assert sum(1 for i in lease["items"] if i in POOLS[pool]) == count
            assert len(lease["items"]) == sum(c for _, c in m["bundles"])
        elif lease["state"] == "waiting":
            assert lease["items"] == [] and lease["tokens"] == {}, "a waiting request holds nothing"
        if lid in ended:
            assert lease["state"] == ended[lid], f"{lid} left its terminal state {ended[lid]}"
        elif lease["state"] not in ("waiting", "granted"):
            ended[lid] = lease["state"]


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=st.lists(ops, min_size=1, max_size=30))
# backfill must not overtake: fpga:3 waits behind fpga:2, so a later fpga:1 must wait too
# an expiry no pass has seen yet is found by the renewal's own pass
@example(steps=[("reserve", [("board", 1)], 0, 5, 1), ("tick", 20), ("renew", 0), ("renew", 0)])
# a renewal that finds its lease expired still grants what the expiry freed (CI found this one)
@example(steps=[("reserve", [("fpga", 1)], 0, 5, 1), ("reserve", [("fpga", 3)], 0, 5, 1), ("tick", 8), ("renew", 0)])
# so does a release of a lease that had already expired unseen
@example(steps=[("reserve", [("board", 1)], 0, 5, 1), ("reserve", [("board", 2)], 0, 5, 1), ("tick", 8), ("release", 0)])
@example(steps=[("reserve", [("fpga", 2)], 0, 30, 1), ("reserve", [("fpga", 3)], 0, 30, 2), ("reserve", [("fpga", 1)], 0, 30, 3)])
# a gang waits holding nothing; a later board-only request may backfill a board the gang cannot use... none here: it waits
@example(steps=[("reserve", [("fpga", 3)], 0, 30, 1), ("reserve", [("fpga", 1), ("board", 1)], 0, 30, 2), ("reserve", [("board", 1)], 0, 30, 3), ("release", 0)])
def test_lease_book_matches_model(tmp_path: Path, steps: list[tuple]) -> None:
    clock = [1_000_000.0]
    dead: set[int] = set()
    book = LeaseBook(tmp_path / f"ex{next(_counter)}", clock=lambda: clock[0], alive=lambda owner, now: owner.get("pid") not in dead, skew=SKEW)
    book.define(ITEMS)
    model = Model()
    order: list[str] = []
    ended: dict[str, str] = {}
    fences: dict[str, int] = {}
    pid_next = {p: p for p in range(1, 5)}

    def resync() -> None:
        """Model grants, then check the book granted exactly those."""
        while True:
            book_items = {lid: (book.show(lid)["items"] if m["state"] == "granted" else []) for lid, m in model.leases.items()}
            grants = model.schedule(book_items)
            if not grants:
                return
            for lid in grants:
                m = model.leases[lid]
                m["state"] = "granted"
                m["expires"] = clock[0] + m["ttl"]

    def pick(n: int) -> str | None:
        return order[n % len(order)] if order else None

    for step in steps:
        kind = step[0]
        model.settle(clock[0], dead)
        if kind == "reserve":
            _, bundles, prio, ttl, pid_slot = step
            pid = pid_next[pid_slot]
            lease = book.reserve([{"pool": p, "count": c} for p, c in bundles], priority=prio, ttl=ttl, pid=pid)
            lid = lease["lease_id"]
            order.append(lid)
            model.leases[lid] = {"state": "waiting", "bundles": bundles, "pid": pid, "ttl": float(ttl),
                                 "key": (-prio, lease["created_at"], lid), "expires": 0.0}  # fmt: skip
        elif kind in ("renew", "release", "cancel", "revoke"):
            lid = pick(step[1])
            if lid is None:
                continue
            m = model.leases[lid]
            if kind == "renew":
                if m["state"] == "granted":
                    book.renew(lid)
                    m["expires"] = clock[0] + m["ttl"]
                elif m["state"] == "waiting":
                    book.renew(lid)
                else:
                    with pytest.raises(LeaseLost):
                        book.renew(lid)
            elif kind == "release":
                book.release(lid)
                m["state"] = {"granted": "released", "waiting": "cancelled"}.get(m["state"], m["state"])
            elif kind == "cancel":
                if m["state"] == "granted":
                    with pytest.raises(BadInput, match="granted"):
                        book.cancel(lid)
                else:
                    book.cancel(lid)
                    m["state"] = "cancelled" if m["state"] == "waiting" else m["state"]
            else:
                book.revoke(lid, "property test")
                m["state"] = {"granted": "revoked", "waiting": "cancelled"}.get(m["state"], m["state"])
        elif kind == "advance":
            clock[0] += step[1]
            model.settle(clock[0], dead)
            book.refresh()
        elif kind == "tick":
            clock[0] += step[1]
            continue  # no book call, nothing to compare yet
        elif kind == "crash":
            dead.add(pid_next[step[1]])
            pid_next[step[1]] += 10  # the slot's next holder is a new process
            model.settle(clock[0], dead)
            book.refresh()
        elif kind == "health":
            book.set_health(step[1], step[2], "property test")
            model.health[step[1]] = step[2]
        elif kind == "drain":
            book.drain(step[1], "property test", undo=not step[2])
            model.drained[step[1]] = step[2]
        resync()
        _check(book, model, ended)

    # fencing tokens grow with every grant of an item, across the whole history
    for lid in order:
        for e in book.events(lid):
            if e["event"] == "granted":
                for item, token in e["tokens"].items():
                    fences.setdefault(item, []).append((e["book_seq"], token))  # type: ignore[arg-type]
    for item, grants in fences.items():
        tokens = [t for _, t in sorted(grants)]
        assert tokens == list(range(1, len(tokens) + 1)), f"{item}: fencing tokens {tokens}"

    # every lease ends in exactly one terminal state
    for lid in order:
        book.revoke(lid, "end of test") if book.show(lid)["state"] == "granted" else book.cancel(lid)
    for lid in order:
        lease = book.show(lid)
        assert lease["state"] in ("released", "expired", "revoked", "cancelled")
        terminal = [c for c in lease["changes"] if c["to_state"] in ("released", "expired", "revoked", "cancelled")]
        assert len(terminal) == 1 and terminal[0]["to_state"] == lease["state"]
        assert [e["seq"] for e in book.events(lid)] == list(range(1, lease["seq"] + 1)), "event log has every event once"
