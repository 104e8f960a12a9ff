"""The one duration grammar: every duration a person types (``--time``, ``--ttl``,
``--idle-timeout``, ``--timeout``, ...) is read here, to seconds.

Accepted, as text:

- a number with a unit, or several from the largest down: ``30s``, ``15m``, ``2h``,
  ``1d``, ``0.5s``, ``1h30m``, ``1d12h``;
- a clock as Slurm reads one: ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``,
  ``D-HH:MM:SS``;
- ``0``, which is zero in every unit.

A bare number is refused: ``90`` is minutes to Slurm and seconds to most tools,
so the error asks which was meant ("90 what? 90s or 90m"). A Python number
(``ttl=90`` from code, not from a person) is seconds, as the API documents.

Errors name the argument as data (``time: ...``); they never spell a flag, which
is the front end's business. Imports nothing but :mod:`merlin.errors`.

The way back is here too: :func:`describe` writes seconds in the grammar, and :func:`ago` is the
one renderer of an age for people (``4m ago``), used by the CLI's tables, ``merlin envs`` and the
gateway's page (which gets it through the facade).
"""

from __future__ import annotations

import math
import re
from typing import overload

from merlin.errors import BadInput

_NUM = r"(\d+(?:\.\d+)?)"
# compiled on first use (re's cache): most commands parse no duration
_UNITS = rf"^(?:{_NUM}d)?(?:{_NUM}h)?(?:{_NUM}m)?(?:{_NUM}s)?$"
_CLOCK = r"^(?:(?P<d>\d+)-)?(?P<a>\d+)(?::(?P<b>\d+))?(?::(?P<c>\d+))?$"
_SECONDS = (86400.0, 3600.0, 60.0, 1.0)
EXAMPLES = "30s, 15m, 2h, 1d, 1h30m or [D-]HH:MM:SS"
_N = r"\d+(?:\.\d+)?"
#: The grammar as published in JSON Schemas (the gateway's duration inputs): what :func:`seconds` reads
#: (bounds such as "above zero" or "at most 7 days" are the caller's, checked when it is read).
DURATION_PATTERN = (
    rf"^\s*(?:0|0\.0|(?=[\d.]+[dhms])(?:{_N}d)?(?:{_N}h)?(?:{_N}m)?(?:{_N}s)?|\d+-\d+(?::\d+){{0,2}}|\d+(?::\d+){{1,2}})\s*$"
)
#: ... of a duration above zero (``above_zero=True``): one with a digit other than 0 (every form is a sum)
POSITIVE_DURATION_PATTERN = r"^(?=.*[1-9])" + DURATION_PATTERN[1:]


class BadDuration(BadInput):
    """A duration that is not in the grammar; ``reason`` is the message without the argument's name."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}" if name else reason, argument=name or None)
        self.reason = reason


def _clock(m: re.Match[str]) -> float:
    """Slurm's reading: MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS (a lone number never reaches here)."""
    d, a, b, c = (int(m[g]) if m[g] is not None else None for g in ("d", "a", "b", "c"))
    assert a is not None  # the pattern requires it
    if d is not None:
        return float(d * 86400 + a * 3600 + (b or 0) * 60 + (c or 0))
    if c is not None:
        return float(a * 3600 + (b or 0) * 60 + c)
    return float(a * 60 + (b or 0))


def seconds(text: str) -> float:
    """Seconds of a duration written by a person; ``BadDuration`` (without a name) otherwise."""
    raw = str(text)
    value = raw.strip()
    if value in ("0", "0.0"):
        return 0.0
    if re.fullmatch(_NUM, value):
        raise BadDuration("", f"{value} what? {value}s or {value}m (a duration needs a unit: {EXAMPLES})")
    m = re.match(_UNITS, value)
    if value and m and any(m.groups()):
        return float(sum(float(n) * unit for n, unit in zip(m.groups(), _SECONDS, strict=True) if n is not None))
    m = re.match(_CLOCK, value)
    if m and (m["d"] is not None or m["b"] is not None):
        return _clock(m)
    raise BadDuration("", f"{raw!r} is not a duration: expected {EXAMPLES}")


@overload
def parse_duration(text: None, name: str = ..., *, above_zero: bool = ..., at_most: float | None = ...) -> None: ...
@overload
def parse_duration(text: str | float | int, name: str = ..., *, above_zero: bool = ..., at_most: float | None = ...) -> float: ...
@overload
def parse_duration(text: str | float | int | None, name: str = ..., *, above_zero: bool = ..., at_most: float | None = ...) -> float | None: ...


def parse_duration(
    text: str | float | int | None,
    name: str = "duration",
    *,
    above_zero: bool = False,
    at_most: float | None = None,
) -> float | None:
    """``text`` in seconds (None stays None). ``name`` is the argument's name, used in the message only.

    ``above_zero`` refuses 0; ``at_most`` (seconds) an upper bound. Negative durations are always refused.
    """
    if text is None:
        return None
    if isinstance(text, bool):
        raise BadDuration(name, f"{text!r} is not a duration: expected {EXAMPLES}")
    if isinstance(text, (int, float)):
        value = float(text)
        if not math.isfinite(value) or value < 0:
            raise BadDuration(name, f"{text!r} is not a duration: expected a finite number of seconds, at least 0")
    else:
        try:
            value = seconds(text)
        except BadDuration as exc:
            raise BadDuration(name, exc.reason) from None
    shown = repr(text) if isinstance(text, str) else describe(value)  # a front end's parsed seconds read back in the grammar
    if above_zero and value <= 0:
        raise BadDuration(name, f"{shown}: must be more than 0")
    if at_most is not None and value > at_most:
        raise BadDuration(name, f"{shown}: must be at most {describe(at_most)}")
    return value


def describe(value: float) -> str:
    """Seconds in the grammar's own words, largest unit first: ``5400`` -> ``1h30m``, ``0.5`` -> ``0.5s``."""
    if value <= 0:
        return "0s"
    if value >= 1e9:  # past 31 years the days are noise (1e308 would print 300 digits): seconds in float form
        return f"{value:g}s"
    out: list[str] = []
    rest = float(value)
    for unit, word in zip(_SECONDS, "dhms", strict=True):
        if word == "s":
            if rest or not out:
                out.append(f"{rest:g}s")
            break
        n = int(rest // unit)
        if n:
            out.append(f"{n}{word}")
            rest -= n * unit
    return "".join(out)


def clock(value: float, *, days: bool = True) -> str:
    """Whole seconds as ``[D-]HH:MM:SS`` (Slurm's form), or ``HH:MM:SS`` with hours past 24 (``days=False``, PBS)."""
    total = int(math.ceil(value))
    d, rest = divmod(total, 86400) if days else (0, total)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return (f"{d}-" if d else "") + f"{h:02d}:{m:02d}:{s:02d}"


def ago(seconds: float | None, *, suffix: str = " ago", exact: bool = False) -> str:
    """How long ago, for people: the largest whole unit (``12s ago``, ``4m ago``, ``3h ago``, ``2d ago``),
    or every unit down to the second with ``exact`` (``1h30m5s ago``, :func:`describe`'s words).

    ``seconds`` is the age (negative reads as 0, a clock a little ahead); ``-`` when there is none
    (:func:`merlin.clock.since` gives None for a time it cannot read). ``suffix=""`` for a column
    whose heading already says "ago"."""
    if seconds is None:
        return "-"
    if exact:
        return describe(round(seconds)) + suffix
    s = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}{suffix}"
    return f"{s}s{suffix}"
