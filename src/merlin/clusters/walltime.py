"""Time left on a cluster's allocation, and the warning ``jobs submit --time`` gives
when a run would outlive it (the scheduler ends the allocation at its walltime;
its runs then become lost with "allocation ended (walltime)")."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def seconds_left(record: Any, now: datetime | None = None) -> float | None:
    """Seconds until the allocation's walltime ends; None when it has no end (local, ssh)."""
    end = getattr(record, "walltime_end", None)
    if end is None:
        return None
    now = now or datetime.now(UTC)
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    return (end - now).total_seconds()


def short_of_time(record: Any, run_seconds: float, now: datetime | None = None) -> str | None:
    """The warning when the cluster has less time left than the run needs, else None."""
    left = seconds_left(record, now)
    if left is None or left >= run_seconds:
        return None
    has = f"{max(left, 0) / 60:.0f} min" if left > 0 else "no time"
    return (
        f"cluster '{record.name}' has {has} left on its allocation (job {record.scheduler_job_id} ends "
        f"{record.walltime_end.isoformat(timespec='seconds')}), the run asks for {run_seconds / 60:.0f} min: it would be cut off "
        f"and recorded lost; start a cluster with a longer time"
    )
