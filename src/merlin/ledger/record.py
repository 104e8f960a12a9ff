"""Light typed records: the ledger's records without pydantic on the hot path.

Importing pydantic and building the record models cost half of a ``merlin ray
jobs submit``. A :class:`Record` declares its fields as a dataclass does (type,
default, description, ``ge``, ``pattern``, before/after validators) and checks
them in plain Python, the way ``spec/fast.py`` checks a spec: it only ever
*accepts*. Whatever it cannot vouch for (a wrong type, a missing or unknown
field, a value pydantic's lax mode would coerce) goes to the pydantic model
derived from the same declaration (``ledger/pydantic_models.py``), which judges
it and words the error, exactly as the pydantic records did.

The derived models also publish the JSON Schemas (docs/records/), so the
declaration is the one source of both. Instances keep pydantic's interface for
every reader in merlin: attributes, ``model_dump`` (``mode``, ``exclude``,
``exclude_none``), ``model_validate``, ``model_validate_json``, ``model_copy``,
``model_json_schema``; assignment is validated; unknown fields are refused.
``tests/test_ledger_records.py`` checks both ways on the same inputs.
"""

from __future__ import annotations

import json
import math
import re
import types
import typing
from collections.abc import Callable, Container
from datetime import date, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar, Union, dataclass_transform

_MISSING: Any = object()
if TYPE_CHECKING:  # a bound given as text is compiled when the TypeVar is made: only the type checker needs it
    R = TypeVar("R", bound="Record")
Conv = Callable[[Any], Any]


class _NotSure(Exception):
    """The light check does not vouch for this value: the pydantic model decides."""


class FieldInfo:
    """One declared field (what :func:`field` returns)."""

    __slots__ = ("default", "default_factory", "description", "ge", "pattern")

    def __init__(self, default: Any, default_factory: Callable[[], Any] | None, description: str | None, ge: float | None, pattern: str | None) -> None:
        self.default = default
        self.default_factory = default_factory
        self.description = description
        self.ge = ge
        self.pattern = pattern


def field(
    default: Any = _MISSING,
    *,
    default_factory: Callable[[], Any] | None = None,
    description: str | None = None,
    ge: float | None = None,
    pattern: str | None = None,
) -> Any:
    """A field with a default (or a factory), a description and pydantic's ``ge`` / ``pattern``."""
    return FieldInfo(default, default_factory, description, ge, pattern)


class Pattern:
    """``Annotated[str, Pattern(r"^...$")]``: a constrained string type (pydantic's ``Field(pattern=...)``)."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern


def validator(*names: str, mode: Literal["before", "after"]) -> Callable[[Callable[[Any], Any]], Any]:
    """Mark a function of one value as a field validator, as pydantic's ``field_validator``:
    ``before`` sees the raw input, ``after`` the checked value."""

    def mark(fn: Callable[[Any], Any]) -> Any:
        fn._record_validator = (names, mode)  # type: ignore[attr-defined]
        return staticmethod(fn)

    return mark


class _Field:
    __slots__ = ("name", "annotation", "info", "conv", "before", "after")

    def __init__(self, name: str, annotation: Any, info: FieldInfo) -> None:
        self.name = name
        self.annotation = annotation
        self.info = info
        self.conv: Conv = _any
        self.before: list[Callable[[Any], Any]] = []
        self.after: list[Callable[[Any], Any]] = []

    @property
    def required(self) -> bool:
        return self.info.default is _MISSING and self.info.default_factory is None

    def default(self) -> Any:
        return self.info.default_factory() if self.info.default_factory is not None else self.info.default

    def check(self, value: Any) -> Any:
        try:
            for fn in self.before:
                value = fn(value)
            value = self.conv(value)
            for fn in self.after:
                value = fn(value)
        except (ValueError, TypeError):
            raise _NotSure from None  # a validator refused it: pydantic words the error
        return value


# ------------------------------------------------------------------ converters


def _any(v: Any) -> Any:
    return v


def _str(v: Any) -> Any:
    if type(v) is str:
        return v
    raise _NotSure


def _int(v: Any) -> Any:
    if type(v) is int:
        return v
    raise _NotSure


def _float(v: Any) -> Any:
    kind = type(v)
    if kind is float and math.isfinite(v):
        return v
    if kind is int:
        return float(v)
    raise _NotSure


def _bool(v: Any) -> Any:
    if type(v) is bool:
        return v
    raise _NotSure


_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)?\Z")


def _datetime(v: Any) -> Any:
    if type(v) is datetime:
        return v
    if type(v) is str and _ISO.match(v):
        return datetime.fromisoformat(v)
    raise _NotSure


def _enum(cls: type[Enum]) -> Conv:
    by_value = {m.value: m for m in cls}

    def conv(v: Any) -> Any:
        if type(v) is cls:
            return v
        if type(v) is str and v in by_value:
            return by_value[v]
        raise _NotSure

    return conv


def _literal(values: tuple[Any, ...]) -> Conv:
    allowed = {(type(x), x) for x in values}

    def conv(v: Any) -> Any:
        if (type(v), v) in allowed:
            return v
        raise _NotSure

    return conv


def _optional(inner: Conv) -> Conv:
    def conv(v: Any) -> Any:
        return None if v is None else inner(v)

    return conv


def _list(inner: Conv) -> Conv:
    def conv(v: Any) -> Any:
        if type(v) is not list:
            raise _NotSure
        return [inner(x) for x in v]

    return conv


def _dict(inner: Conv) -> Conv:
    def conv(v: Any) -> Any:
        if type(v) is not dict or any(type(k) is not str for k in v):
            raise _NotSure
        return {k: inner(x) for k, x in v.items()}

    return conv


def _record(cls: type[Record]) -> Conv:
    def conv(v: Any) -> Any:
        if type(v) is cls:
            return v  # as pydantic: an instance is taken as it is, not copied
        if type(v) is dict:
            return cls._light(v)
        raise _NotSure

    return conv


def _constrained(inner: Conv, ge: float | None, pattern: str | None) -> Conv:
    rx = re.compile(pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern) if pattern else None

    def conv(v: Any) -> Any:
        v = inner(v)
        if ge is not None and v is not None and not v >= ge:
            raise _NotSure
        if rx is not None and v is not None and not rx.search(v):
            raise _NotSure
        return v

    return conv


def _converter(hint: Any) -> Conv:
    if hint is Any:
        return _any
    simple = {str: _str, int: _int, float: _float, bool: _bool, datetime: _datetime}
    if hint in simple:
        return simple[hint]
    if isinstance(hint, type) and issubclass(hint, Enum):
        return _enum(hint)
    if isinstance(hint, type) and issubclass(hint, Record):
        return _record(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        pattern = next((a.pattern for a in hint.__metadata__ if isinstance(a, Pattern)), None)
        return _constrained(_converter(args[0]), None, pattern)
    if origin is Literal:
        return _literal(args)
    if origin in (Union, types.UnionType) and len(args) == 2 and type(None) in args:
        return _optional(_converter(next(a for a in args if a is not type(None))))
    if origin is list:
        return _list(_converter(args[0]))
    if origin is dict and args[0] is str:
        return _dict(_converter(args[1]))
    raise TypeError(f"a Record field cannot be {hint!r}")  # pragma: no cover - a declaration error


# --------------------------------------------------------------------- dumping


def _utc_iso(v: datetime) -> str:
    text = v.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _dump(v: Any, json_mode: bool, exclude_none: bool) -> Any:
    """A value as pydantic's ``model_dump`` gives it (``json_mode``: as ``mode="json"``)."""
    kind = type(v)
    if v is None or kind is str or kind is int or kind is bool or kind is float:
        return v
    if isinstance(v, Record):
        return v._dump(json_mode, None, exclude_none)
    if kind is list:
        return [_dump(x, json_mode, exclude_none) for x in v]
    if kind is dict:
        return {(_key(k) if json_mode else k): _dump(x, json_mode, exclude_none) for k, x in v.items()}
    if kind is tuple:
        items = [_dump(x, json_mode, exclude_none) for x in v]
        return items if json_mode else tuple(items)
    if not json_mode:
        if kind in (set, frozenset):
            return kind(_dump(x, json_mode, exclude_none) for x in v)
        return v
    if isinstance(v, Enum):
        return _dump(v.value, json_mode, exclude_none)
    if isinstance(v, datetime):
        return _utc_iso(v)
    if isinstance(v, date):
        return v.isoformat()
    if kind in (set, frozenset):
        return [_dump(x, json_mode, exclude_none) for x in v]
    from merlin.ledger.pydantic_models import jsonable  # anything else: pydantic's own rules

    return jsonable(v)


def _key(k: Any) -> Any:
    if type(k) is str:
        return k
    if isinstance(k, Enum):
        return k.value
    return _dump(k, True, False) if not isinstance(k, (int, float)) else str(k)


# ---------------------------------------------------------------------- record


@dataclass_transform(kw_only_default=True, field_specifiers=(field,))
class Record:
    """Base of the ledger's records: declared like a dataclass, checked without pydantic."""

    __record_fields__: ClassVar[dict[str, FieldInfo]] = {}
    __record_validators__: ClassVar[list[tuple[tuple[str, ...], str, Callable[[Any], Any]]]] = []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared: dict[str, FieldInfo] = dict(cls.__record_fields__)
        for name, annotation in cls.__dict__.get("__annotations__", {}).items():
            if "ClassVar" in str(annotation):
                continue
            value = cls.__dict__.get(name, _MISSING)
            declared[name] = value if isinstance(value, FieldInfo) else FieldInfo(value, None, None, None, None)
            if name in cls.__dict__:
                delattr(cls, name)  # the class never answers for a field: instances always hold it
        cls.__record_fields__ = declared
        found = list(cls.__record_validators__)
        for value in cls.__dict__.values():
            fn = getattr(value, "__func__", None)
            if fn is not None and hasattr(fn, "_record_validator"):
                names, mode = fn._record_validator
                found.append((names, mode, fn))
        cls.__record_validators__ = found

    @classmethod
    def _fields(cls) -> dict[str, _Field]:
        compiled: dict[str, _Field] | None = cls.__dict__.get("__record_compiled__")
        if compiled is None:  # on first use: a command pays only for the records it touches
            compiled = _compiled(cls)
            type.__setattr__(cls, "__record_compiled__", compiled)
        return compiled

    # -------------------------------------------------------------- building

    def __init__(self, **data: Any) -> None:
        try:
            values = self._check(data)
        except _NotSure:
            values = self._judged(data).__dict__
        object.__setattr__(self, "__dict__", values)

    @classmethod
    def _check(cls, data: dict[str, Any]) -> dict[str, Any]:
        fields = cls._fields()
        for name in data:
            if name not in fields:
                raise _NotSure
        values: dict[str, Any] = {}
        for name, f in fields.items():
            if name in data:
                values[name] = f.check(data[name])
            elif f.required:
                raise _NotSure
            else:
                values[name] = f.default()
        return values

    @classmethod
    def _light(cls: type[R], data: dict[str, Any]) -> R:
        """An instance from a dict the light check vouches for, else :class:`_NotSure`."""
        out = object.__new__(cls)
        object.__setattr__(out, "__dict__", cls._check(data))
        return out

    @classmethod
    def _judged(cls: type[R], data: Any, *, json_text: str | bytes | None = None) -> R:
        """What pydantic makes of ``data`` (raises its ValidationError), as a light record."""
        from merlin.ledger.pydantic_models import model_of

        model = model_of(cls)
        judged = model.model_validate_json(json_text) if json_text is not None else model.model_validate(data)
        return cls._trusted(judged.model_dump())

    @classmethod
    def _trusted(cls: type[R], data: dict[str, Any]) -> R:
        """An instance from values pydantic already checked (nested records given as dicts)."""
        out = object.__new__(cls)
        values = {}
        for name, f in cls._fields().items():
            values[name] = _rebuild(f.annotation, data[name])
        object.__setattr__(out, "__dict__", values)
        return out

    @classmethod
    def model_validate(cls: type[R], obj: Any) -> R:
        if type(obj) is cls:
            return obj
        if type(obj) is dict:
            try:
                return cls._light(obj)
            except _NotSure:
                pass
        return cls._judged(obj)

    @classmethod
    def model_validate_json(cls: type[R], text: str | bytes) -> R:
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if type(data) is dict:
            try:
                return cls._light(data)
            except _NotSure:
                pass
        return cls._judged(None, json_text=text)

    @classmethod
    def model_json_schema(cls, mode: Literal["validation", "serialization"] = "validation") -> dict[str, Any]:
        from merlin.ledger.pydantic_models import model_of

        return model_of(cls).model_json_schema(mode=mode)

    # ------------------------------------------------------------- behaving

    def __setattr__(self, name: str, value: Any) -> None:
        f = self._fields().get(name)
        if f is None:
            raise ValueError(f'"{type(self).__name__}" object has no field "{name}"')
        try:
            value = f.check(value)
        except _NotSure:
            value = self._judged_assignment(name, value)
        self.__dict__[name] = value

    def _judged_assignment(self, name: str, value: Any) -> Any:
        from merlin.ledger.pydantic_models import model_of

        shadow = model_of(type(self)).model_construct(**self.__dict__)
        setattr(shadow, name, value)  # validate_assignment: pydantic's ValidationError if it is wrong
        return _rebuild(self._fields()[name].annotation, _unmodel(getattr(shadow, name)))

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.__dict__ == other.__dict__

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items())
        return f"{type(self).__name__}({inner})"

    def __copy__(self: R) -> R:
        out = object.__new__(type(self))
        object.__setattr__(out, "__dict__", dict(self.__dict__))
        return out

    def __deepcopy__(self: R, memo: dict[int, Any]) -> R:
        out = object.__new__(type(self))
        import copy  # on first use: a submit copies no record deeply

        object.__setattr__(out, "__dict__", copy.deepcopy(self.__dict__, memo))
        return out

    def model_copy(self: R, *, update: dict[str, Any] | None = None, deep: bool = False) -> R:
        """A copy, with ``update`` applied unchecked (as pydantic's ``model_copy``)."""
        if deep:
            import copy

            out = copy.deepcopy(self)
        else:
            out = self.__copy__()  # what copy.copy calls
        if update:
            out.__dict__.update(update)
        return out

    def model_dump(
        self,
        *,
        mode: Literal["python", "json"] | str = "python",
        exclude: set[str] | None = None,
        exclude_none: bool = False,
    ) -> dict[str, Any]:
        return self._dump(mode == "json", exclude, exclude_none)

    def model_dump_json(self, *, exclude_none: bool = False) -> str:
        return json.dumps(self._dump(True, None, exclude_none), ensure_ascii=False, separators=(",", ":"))

    def _dump(self, json_mode: bool, exclude: set[str] | None, exclude_none: bool) -> dict[str, Any]:
        out = {}
        for name, value in self.__dict__.items():
            if exclude and name in exclude:
                continue
            if exclude_none and value is None:
                continue
            out[name] = _dump(value, json_mode, exclude_none)
        return out


#: each distinct annotation text, compiled once per process (records repeat ``str | None`` and the like)
_ANNOTATION_CODE: dict[str, Any] = {}


def type_hints(cls: type, names: Container[str] | None = None) -> dict[str, Any]:
    """``typing.get_type_hints(cls, include_extras=True)`` for a record class, at a fraction of
    its cost on a submit: the annotations are whole strings (``from __future__ import
    annotations``), evaluated in the same namespaces typing uses (the class's names, then its
    module's), each distinct text compiled once (the ledger's own records hold real types, not text).
    ``names``: only those (a record's fields, not its class's bookkeeping). ``tests/test_ledger_records.py``
    compares the two."""
    import sys

    hints: dict[str, Any] = {}
    for base in reversed(cls.__mro__):
        annotations = base.__dict__.get("__annotations__")
        if not annotations:
            continue
        module_ns = getattr(sys.modules.get(base.__module__), "__dict__", {})
        class_ns = dict(vars(base))
        for name, value in annotations.items():
            if names is not None and name not in names:
                continue
            if isinstance(value, str):
                code = _ANNOTATION_CODE.get(value)
                if code is None:
                    code = _ANNOTATION_CODE[value] = compile(value, "<annotation>", "eval")
                value = eval(code, class_ns, module_ns)  # the record's own annotation text
            hints[name] = type(None) if value is None else value
    return hints


def _compiled(cls: type[Record]) -> dict[str, _Field]:

    hints = type_hints(cls, cls.__record_fields__)
    fields = {}
    for name, info in cls.__record_fields__.items():
        f = _Field(name, hints[name], info)
        f.conv = _converter(f.annotation)
        if info.ge is not None or info.pattern is not None:
            f.conv = _constrained(f.conv, info.ge, info.pattern)
        fields[name] = f
    for names, mode, fn in cls.__record_validators__:
        for name in names:
            (fields[name].before if mode == "before" else fields[name].after).append(fn)
    return fields


def _unmodel(v: Any) -> Any:
    """pydantic models (of a value pydantic checked) as their python dumps."""
    if hasattr(v, "model_dump"):
        return v.model_dump()
    if type(v) is list:
        return [_unmodel(x) for x in v]
    if type(v) is dict:
        return {k: _unmodel(x) for k, x in v.items()}
    return v


def _rebuild(hint: Any, v: Any) -> Any:
    """A value pydantic checked (nested models dumped to dicts) back in the light records' shape."""
    if v is None:
        return None
    if isinstance(hint, type) and issubclass(hint, Record):
        return hint._trusted(v) if type(v) is dict else v
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        return _rebuild(args[0], v)
    if origin in (Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _rebuild(inner[0], v) if len(inner) == 1 else v
    if origin is list and type(v) is list:
        return [_rebuild(args[0], x) for x in v]
    if origin is dict and type(v) is dict:
        return {k: _rebuild(args[1], x) for k, x in v.items()}
    return v
