"""16 real processes contend for 3 items with random TTLs while the test SIGKILLs them.

Afterwards, from the event logs and fencing tokens: no item was ever granted
twice at once, every fencing token was used once and in order, every file is
readable, and every lease of a killed holder was freed. 10 s here
(``MERLIN_LEASE_CONTENTION_SECONDS``); benchmarks/bench_leases.py runs 30 s.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from merlin.leases.audit import audit
from merlin.leases.book import LeaseBook

WORKER = """
import os, random, sys, time
from merlin.leases.book import LeaseBook, LeaseLost, NotGranted
book = LeaseBook(sys.argv[1])
rng = random.Random(os.getpid())
while True:
    try:
        lease = book.reserve(["slot:1"], pid=os.getpid(), ttl=rng.uniform(0.3, 2.0), wait=True, timeout=30)
    except (NotGranted, LeaseLost):  # LeaseLost: granted, then expired before this process was scheduled again
        continue
    time.sleep(rng.uniform(0, 0.03))
    if rng.random() < 0.08:  # stop renewing: the lease must expire under us, and renew must say so
        time.sleep(lease["ttl_seconds"] + 0.6)
        try:
            book.renew(lease["lease_id"])
        except LeaseLost:
            pass
        else:
            print("renewed an expired lease", lease, book.events(lease["lease_id"]), time.time(), flush=True)
            sys.exit(9)
    else:
        book.release(lease["lease_id"])
"""


def contend(root: Path, seconds: float, procs: int = 16, items: int = 3, kill_every: float = 1.0, min_grants: int = 0) -> dict[str, int]:
    """Contend for ``seconds``, and on a loaded machine longer (at most 10x) until ``min_grants`` leases were granted."""
    book = LeaseBook(root)
    book.define([{"id": f"slot-{n}", "pool": "slot"} for n in range(items)])
    env = dict(os.environ, MERLIN_LEASE_SKEW="0.2")
    spawn = lambda: subprocess.Popen([sys.executable, "-c", WORKER, str(root)], env=env, stdout=subprocess.PIPE, text=True)  # noqa: E731
    workers = [spawn() for _ in range(procs)]
    killed: set[int] = set()
    rng = random.Random(7)
    deadline = time.monotonic() + seconds
    cap = time.monotonic() + 10 * seconds

    def going() -> bool:
        now = time.monotonic()
        return now < deadline or (now < cap and audit(book.layout, set())["grants"] < min_grants)

    try:
        while going():
            time.sleep(rng.uniform(kill_every / 2, kill_every * 1.5))
            n = rng.randrange(len(workers))
            victim = workers[n]
            if victim.poll() is None:
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                killed.add(victim.pid)
            assert victim.returncode in (-signal.SIGKILL, None), victim.stdout.read()
            workers[n] = spawn()
    finally:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGKILL)
            w.wait()
            if w.returncode != -signal.SIGKILL:
                raise AssertionError(f"worker {w.pid} exited {w.returncode}: {w.stdout.read()}")
            killed.add(w.pid)
    book.refresh()  # the next scheduling pass frees every lease of a dead holder
    result = audit(book.layout, killed)
    result["killed"] = len(killed)
    return result


@pytest.mark.slow
def test_sixteen_processes_three_items_sigkills(tmp_path: Path) -> None:
    seconds = float(os.environ.get("MERLIN_LEASE_CONTENTION_SECONDS", "10"))
    result = contend(tmp_path / "state", seconds, min_grants=21)
    assert result["grants"] > 20, result
    assert result["double_grants"] == 0, result
    assert result["bad_token_sequences"] == 0, result
    assert result["unreadable"] == 0, result
    assert result["live_leases_of_killed"] == 0, result
    assert result["killed"] >= 16 + 5, result
    assert LeaseBook(tmp_path / "state").live() == [], "every holder is dead: nothing may stay held or queued"
