"""What a run that needs hardware asks of the lease book, checked before the run is recorded.

``--lease POOL[:COUNT][,k=v...]`` becomes bundles; a request the inventory can
never fill is refused at submit (bad input), like a cluster that can never
place a run. Pools whose items are attached to a host are also Ray custom
resources of that host's node (see :func:`host_resources`), so a leased run
asks Ray for the same amounts and runs where the hardware is.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

from merlin.errors import BadInput, Blocked
from merlin.leases import policy
from merlin.leases.book import LeaseBook, parse_bundle
from merlin.nextsteps import Action, step


def check_request(book: LeaseBook, specs: Sequence[str | dict[str, Any]]) -> list[dict[str, Any]]:
    """The bundles of ``specs``; BadInput/Blocked if the inventory could never grant them."""
    bundles = [parse_bundle(s) if isinstance(s, str) else dict(s) for s in specs]
    if not bundles:
        raise BadInput("`leases`: name at least one POOL[:COUNT]", argument="leases")
    _state, inv = book.snapshot()
    if inv is None:
        raise Blocked(
            "the run asks for a lease but there is no inventory yet: describe the hardware in a YAML file and define it",
            "no_inventory",
            next_steps=[step(Action.DEFINE_INVENTORY)],
        )
    problem = policy.capacity_problem(bundles, inv["items"])
    if problem:
        raise BadInput(f"`leases` {problem}; it could never be granted", next_steps=[step(Action.LEASES_LIST)], argument="leases")
    return bundles


def placement(book: LeaseBook, bundles: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Ray entrypoint resources for a leased run: ``{pool: count}`` for each pool whose items sit on a host."""
    _state, inv = book.snapshot()
    hosted = {it["pool"] for it in (inv or {}).get("items", []) if it.get("host")}
    out: dict[str, float] = {}
    for b in bundles:
        if b["pool"] in hosted:
            out[b["pool"]] = out.get(b["pool"], 0.0) + float(b["count"])
    return out


def resources_by_host(book: LeaseBook) -> dict[str, dict[str, float]]:
    """Every host the inventory attaches items to -> ``{pool: items there}``: what each node's
    custom resources are (a Slurm/PBS/ssh node's helper picks the hosts that name it)."""
    _state, inv = book.snapshot()
    out: dict[str, dict[str, float]] = {}
    for it in (inv or {}).get("items", []):
        if it.get("host"):
            pools = out.setdefault(it["host"], {})
            pools[it["pool"]] = pools.get(it["pool"], 0.0) + 1.0
    return out


def host_resources(book: LeaseBook, host: str | None = None) -> dict[str, float]:
    """Custom resources of the node on ``host`` (default: this one): the number of items of each pool attached to it.

    ``localhost``/``127.0.0.1`` and this machine's names all mean this host."""
    names = {host} if host else {socket.gethostname(), socket.getfqdn(), "localhost", "127.0.0.1"}
    out: dict[str, float] = {}
    for h, pools in resources_by_host(book).items():
        if h in names:
            for pool, n in pools.items():
                out[pool] = out.get(pool, 0.0) + n
    return out
