"""Time left on a cluster's allocation, and the warning ``jobs submit --time`` gives
when a run would outlive it (the scheduler ends the allocation at its walltime;
its runs then become lost with "allocation ended (walltime)")."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from merlin.errors import BadInput

_SLURM_TIME = re.compile(r"^(?:(?P<d>\d+)-)?(?P<a>\d+)(?::(?P<b>\d+))?(?::(?P<c>\d+))?$")


def parse_duration(text: str, option: str = "--time") -> float:
    """Seconds in Slurm's time formats: MIN, MIN:SEC, H:M:S, D-H, D-H:M, D-H:M:S."""
    m = _SLURM_TIME.match(str(text).strip())
    if not m:
        raise BadInput(f"{option} {text!r}: expected minutes or [D-]HH:MM:SS, e.g. 30 or 1:30:00 or 2-00:00:00")
    d, b, c = (int(m[g]) if m[g] is not None else None for g in ("d", "b", "c"))
    a = int(m["a"])  # always present: the pattern requires it
    if d is not None:  # D-H, D-H:M, D-H:M:S
        return float(d * 86400 + a * 3600 + (b or 0) * 60 + (c or 0))
    if c is not None:
        return float(a * 3600 + (b or 0) * 60 + c)
    if b is not None:
        return float(a * 60 + b)
    return float(a * 60)


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
        f"and recorded lost; start a cluster with a longer --time"
    )
