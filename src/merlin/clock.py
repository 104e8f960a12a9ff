"""The one clock: now in UTC, and the fixed-width ISO 8601 text merlin writes and reads.

- :func:`utcnow` is the aware UTC ``datetime`` every record's timestamps start from
  (pydantic writes it as ``2026-01-02T03:04:05.123456Z``).
- :func:`iso` turns a Unix time into fixed-width text (``2026-01-02T03:04:05.123456+00:00``):
  it sorts as text and parses as a ``datetime``. The lease book and ``jobs why``
  conditions carry it.
- :func:`parse` reads any ISO 8601 text back to a Unix time (None for none).
- :func:`since` is how many seconds ago a time was (ISO text or a Unix time), for ages
  (:func:`merlin.durations.ago` renders them).
- :func:`pauses` are the sleeps of a poll that should see a change soon after it happens
  without spinning: short at first, then longer, up to a bound.

Imports nothing of merlin (the bottom layer).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now, as an aware UTC ``datetime``."""
    return datetime.now(UTC)


def iso(ts: float) -> str:
    """Fixed-width UTC ISO 8601 of a Unix time (sorts as text, parses as datetime)."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def parse(text: str | None) -> float | None:
    """The Unix time of ISO 8601 ``text`` (what :func:`iso` wrote, or a record's ``...Z``); None for none."""
    return datetime.fromisoformat(text).timestamp() if text else None


def since(when: str | float | None, now: float | None = None) -> float | None:
    """Seconds from ``when`` (ISO 8601 text, a naive one read as UTC, or a Unix time above 0) to ``now``
    (default: now); None when there is no time or it cannot be read."""
    if isinstance(when, bool) or not when:
        return None
    if isinstance(when, (int, float)):
        then = float(when)
        if then <= 0:
            return None
    else:
        try:
            t = datetime.fromisoformat(str(when))
        except ValueError:
            return None
        then = (t if t.tzinfo is not None else t.replace(tzinfo=UTC)).timestamp()
    return (time.time() if now is None else now) - then


def pauses(first: float, longest: float, factor: float = 1.5) -> Iterator[float]:
    """``first`` (at most ``longest``), then ``factor`` times longer each time, up to ``longest``: how long
    each sleep of a poll lasts (``time.sleep(next(p))``)."""
    pause = min(first, longest)
    while True:
        yield pause
        pause = min(longest, pause * factor)
