"""Hold a lease while work runs: wait for the grant, renew in the background, release at the end.

The piece a supervisor uses for a run that needs hardware: the lease is bound
to this process (freed at the next pass if it dies), renewed every third of
its TTL even if no merlin command runs, and released as soon as the block
ends, however it ends. The items reach the work through the environment,
like Slurm's GRES variables (:func:`lease_env`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

from merlin.leases.book import LeaseBook, LeaseLost


def lease_env(lease: dict[str, Any]) -> dict[str, str]:
    """``MERLIN_LEASE_ID``, ``MERLIN_LEASE_ITEMS=fpga-01,board-01`` and ``MERLIN_LEASE_TOKENS=fpga-01:3,board-01:1``."""
    return {
        "MERLIN_LEASE_ID": lease["lease_id"],
        "MERLIN_LEASE_ITEMS": ",".join(lease["items"]),
        "MERLIN_LEASE_TOKENS": ",".join(f"{i}:{lease['tokens'][i]}" for i in lease["items"]),
    }


class LeaseKeeper:
    """``with LeaseKeeper(book, ["firesim_fpga:1"]) as lease: ...`` (waits for the grant first)."""

    def __init__(
        self,
        book: LeaseBook,
        bundles: Sequence[Any],
        *,
        ttl: float | str = 60.0,
        priority: int = 0,
        run_id: str | None = None,
        timeout: float | None = None,
        on_lost: Callable[[LeaseLost], None] | None = None,
        lease_id: str | None = None,
        on_reserved: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.book = book
        self.bundles = list(bundles)
        self.ttl = ttl
        self.priority = priority
        self.run_id = run_id
        self.timeout = timeout
        self.on_lost = on_lost
        self.lease_id = lease_id
        self.on_reserved = on_reserved
        self.lease: dict[str, Any] | None = None
        self.lost: LeaseLost | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> dict[str, Any]:
        lease = self.book.reserve(self.bundles, ttl=self.ttl, priority=self.priority, pid=os.getpid(), run_id=self.run_id, wait=False, lease_id=self.lease_id)
        self.lease = lease
        try:
            if self.on_reserved is not None:
                self.on_reserved(lease)
            if lease["state"] != "granted":
                self.lease = lease = self.book.wait(lease["lease_id"], timeout=self.timeout)
        except BaseException:
            self.book.cancel(lease["lease_id"], reason="the waiting process gave up")
            raise
        self._thread = threading.Thread(target=self._renew, name=f"merlin-lease-{lease['lease_id']}", daemon=True)
        self._thread.start()
        return lease

    def _renew(self) -> None:
        assert self.lease is not None
        period = max(0.05, float(self.lease["ttl_seconds"]) / 3)
        while not self._stop.wait(period):
            try:
                self.lease = self.book.renew(self.lease["lease_id"])
            except LeaseLost as exc:
                self.lost = exc
                if self.on_lost is not None:
                    self.on_lost(exc)
                return
            except Exception:  # a busy lock or a full disk: try again next period, the TTL has slack
                continue

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.lease is not None:
            self.book.release(self.lease["lease_id"], reason="the work holding it ended")
