"""The one clock: now in UTC, and the fixed-width ISO 8601 text merlin writes and reads.

- :func:`utcnow` is the aware UTC ``datetime`` every record's timestamps start from
  (pydantic writes it as ``2026-01-02T03:04:05.123456Z``).
- :func:`iso` turns a Unix time into fixed-width text (``2026-01-02T03:04:05.123456+00:00``):
  it sorts as text and parses as a ``datetime``. The lease book and ``jobs why``
  conditions carry it.
- :func:`parse` reads any ISO 8601 text back to a Unix time (None for none).

Imports nothing of merlin (the bottom layer).
"""

from __future__ import annotations

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
