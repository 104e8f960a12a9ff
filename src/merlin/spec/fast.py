"""The pydantic-free checker: a valid spec is validated and planned without pydantic.

Importing pydantic and building the 33 spec models costs more than the rest of
``targetgen validate`` together. This module interprets the models' compiled
shape (``_shape.py``, generated from ``models.py`` by ``merlin.spec.shape``)
with pydantic's strict-mode rules, and returns :class:`SpecView` objects that
behave as the models do for every reader in merlin (attributes,
``model_dump``, ``model_fields_set``, ``facts()``, ``credentials()``).

It only ever *accepts*. Anything it cannot vouch for (an error, a YAML date,
a NaN, a non-string key) returns ``None``, and the loader asks the pydantic
models, which judge and word every error. ``tests/test_spec_fast.py`` checks
on a corpus of valid and broken specs that whatever this accepts the models
accept with the same dump.
"""

from __future__ import annotations

import math
import re
from functools import cache
from typing import Any

_MISSING = object()


class _NotSure(Exception):
    """The fast checker does not vouch for this value: the models decide."""


@cache
def _shape() -> dict[str, Any]:
    from merlin.spec._shape import SHAPE

    return SHAPE


@cache
def _pattern(pattern: str) -> re.Pattern[str]:
    # pydantic matches with Rust's regex, where '$' is the very end; Python's '$'
    # would also accept a trailing newline, so anchor with \Z instead.
    return re.compile(pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith(r"\$") else pattern)


def check(data: Any, kind: str) -> SpecView | None:
    """The document as a view when it is certainly valid, else ``None`` (ask the models)."""
    try:
        return _model(data, _shape()["roots"][kind])
    except _NotSure:
        return None


def _plain(value: Any) -> Any:
    """A copy of a free-form value (``Any``, facts): JSON types only, else not sure."""
    kind = type(value)
    if kind is str or kind is bool or kind is int or value is None:
        return value
    if kind is float:
        if not math.isfinite(value):
            raise _NotSure
        return value
    if kind is list:
        return [_plain(v) for v in value]
    if kind is dict:
        if any(type(k) is not str for k in value):
            raise _NotSure
        return {k: _plain(v) for k, v in value.items()}
    raise _NotSure  # a date, bytes, a set: the models say what they make of it


def _bounds(value: Any, t: dict[str, Any]) -> None:
    if ("gt" in t and not value > t["gt"]) or ("ge" in t and not value >= t["ge"]):
        raise _NotSure
    if ("lt" in t and not value < t["lt"]) or ("le" in t and not value <= t["le"]):
        raise _NotSure


def _length(size: int, t: dict[str, Any]) -> None:
    if size < t.get("min_length", 0) or ("max_length" in t and size > t["max_length"]):
        raise _NotSure


def _value(value: Any, t: dict[str, Any]) -> Any:
    kind = t["t"]
    if kind == "str":
        if type(value) is not str:
            raise _NotSure
        _length(len(value), t)
        if "pattern" in t and not _pattern(t["pattern"]).match(value):
            raise _NotSure
        if t.get("no_dotdot") and ".." in value:
            raise _NotSure
        return value
    if kind == "bool":
        if type(value) is not bool:
            raise _NotSure
        return value
    if kind == "int":
        if type(value) is not int:
            raise _NotSure
        _bounds(value, t)
        return value
    if kind == "float":
        if type(value) not in (int, float) or (type(value) is float and not math.isfinite(value)):
            raise _NotSure
        _bounds(value, t)
        return float(value)
    if kind == "literal":
        if not any(type(value) is type(x) and value == x for x in t["values"]):
            raise _NotSure
        return value
    if kind == "optional":
        return None if value is None else _value(value, t["of"])
    if kind == "list":
        if type(value) is not list:
            raise _NotSure
        _length(len(value), t)
        items = [_value(v, t["of"]) for v in value]
        if t.get("unique") and len({repr(i) for i in items}) != len(items):
            raise _NotSure
        return items
    if kind == "dict":
        if type(value) is not dict:
            raise _NotSure
        return {_value(k, t["key"]): _value(v, t["of"]) for k, v in value.items()}
    if kind == "model":
        return _model(value, t["ref"])
    if kind == "union":
        found = []
        for option in t["of"]:
            try:
                found.append(_value(value, option))
            except _NotSure:
                continue
        if not found or any(_dump(f) != _dump(found[0]) for f in found[1:]):
            raise _NotSure  # no branch fits, or two fit differently: pydantic's smart union decides
        return found[0]
    if kind == "any":
        return _plain(value)
    raise _NotSure


def _model(value: Any, name: str) -> SpecView:
    if type(value) is not dict or any(type(k) is not str for k in value):
        raise _NotSure
    shape = _shape()["models"][name]
    fields = shape["fields"]
    values: dict[str, Any] = {}
    for fname, spec in fields.items():
        given = value.get(fname, _MISSING)
        if given is _MISSING:
            if spec["required"]:
                raise _NotSure
            values[fname] = _default(spec)
        else:
            values[fname] = _value(given, spec["type"])
    extras = {k: v for k, v in value.items() if k not in fields}
    if extras and not shape["open"]:
        raise _NotSure
    view = AccessView if name == "Access" else FactsView if shape["open"] else SpecView
    return view(name, values, {k: _plain(v) for k, v in extras.items()}, frozenset(value))


def _default(spec: dict[str, Any]) -> Any:
    """A fresh copy of a field's default, as the model would build it."""
    t = spec["type"]
    if t["t"] == "model":  # default_factory=Model: every field at its default, none given
        return _model({}, t["ref"])
    return _plain(spec["default"])


def _dump(value: Any) -> Any:
    if isinstance(value, SpecView):
        return value.model_dump()
    if type(value) is list:
        return [_dump(v) for v in value]
    if type(value) is dict:
        return {k: _dump(v) for k, v in value.items()}
    return value


class SpecView:
    """A validated section, read as its model is: frozen, with the model's reading methods."""

    __slots__ = ("_name", "_values", "_extras", "_given")

    def __init__(self, name: str, values: dict[str, Any], extras: dict[str, Any], given: frozenset[str]) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_values", values)
        object.__setattr__(self, "_extras", extras)
        object.__setattr__(self, "_given", given)

    def __getattr__(self, name: str) -> Any:
        values = object.__getattribute__(self, "_values")
        if name in values:
            return values[name]
        extras = object.__getattribute__(self, "_extras")
        if name in extras:
            return extras[name]
        raise AttributeError(f"{object.__getattribute__(self, '_name')!r} has no field {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise TypeError(f"{self._name} is frozen")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SpecView) and other._name == self._name and other.model_dump() == self.model_dump()

    __hash__ = None  # type: ignore[assignment]  # as a model with list fields: not hashable

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in {**self._values, **self._extras}.items())
        return f"{self._name}({inner})"

    @property
    def model_fields_set(self) -> set[str]:
        """The keys the document gave (the rest are defaults), as pydantic's."""
        return set(self._given)

    def _field_names(self) -> list[str]:
        """The typed fields, in the model's order."""
        return list(self._values)

    def model_dump(self, mode: str = "python") -> dict[str, Any]:
        """The section as plain data: typed fields in order, then the facts as written.

        Every value is JSON-typed already, so ``mode="json"`` gives the same.
        """
        if mode not in ("python", "json"):
            raise ValueError(f"mode must be 'python' or 'json', not {mode!r}")
        out = {k: _dump(v) for k, v in self._values.items()}
        out.update(_dump(self._extras))
        return out


class FactsView(SpecView):
    """An open mapping of facts (``models.Facts``)."""

    __slots__ = ()

    def facts(self) -> dict[str, Any]:
        """The keys beyond the typed fields, as written."""
        return _dump(self._extras)


class AccessView(SpecView):
    """``models.Access``, with its one reading method."""

    __slots__ = ()

    def credentials(self) -> list[SpecView]:
        """``Access.credentials()``: upstream's single name is a one-element list."""
        req = self._values["credential_requirements"]
        if req == "none":
            return []
        if isinstance(req, str):
            return [_model({"name": req}, "Credential")]
        return list(req)


# --- readers shared by views and models ---------------------------------------


def field_names(value: Any) -> list[str] | None:
    """The typed fields of a section (a view or a model), or None for a plain value."""
    if isinstance(value, SpecView):
        return value._field_names()
    fields = getattr(type(value), "model_fields", None)
    return list(fields) if isinstance(fields, dict) else None


def facts_of(value: Any) -> dict[str, Any]:
    """The open facts of a section; empty for a structural one."""
    if isinstance(value, SpecView):
        return value.facts() if isinstance(value, FactsView) else {}
    facts = getattr(type(value), "facts", None)
    return dict(value.facts()) if callable(facts) else {}


def open_facts(model: Any) -> dict[str, dict[str, Any]]:
    """Every fact kept beyond the typed fields, by dotted section (for the plan's views).

    ``{"geometry.compute_array": {"rows": 16}, "verification.tolerances.fp8": {...}}``;
    sections without extra facts are left out, so the result is often empty.
    """
    found: dict[str, dict[str, Any]] = {}

    def walk(value: Any, where: str) -> None:
        facts = facts_of(value)
        if facts:
            found[where] = facts
        names = field_names(value)
        if names is not None:
            for name in names:
                walk(getattr(value, name), f"{where}.{name}" if where else name)
        elif isinstance(value, dict):
            for key, item in value.items():
                if field_names(item) is not None:
                    walk(item, f"{where}.{key}")

    walk(model, "")
    return found
