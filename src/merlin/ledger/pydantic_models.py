"""The pydantic models of the ledger's records, derived from their declarations.

Each :class:`merlin.ledger.record.Record` has one model built here from the
same fields (types, defaults, descriptions, ``ge``, ``pattern``, validators),
with the configuration the records always had: unknown fields refused,
assignment validated. They judge whatever the light check does not vouch for
(and word its error), and they publish the JSON Schemas of docs/records/.
Only this module imports pydantic for the ledger; nothing on the CLI's submit,
status or list path reaches it for a valid record.
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator
from pydantic_core import to_jsonable_python

from merlin.ledger.record import _MISSING, Pattern, Record


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_enum_values=False, defer_build=True)


def model_of(cls: type[Record]) -> type[BaseModel]:
    """The pydantic model of record class ``cls`` (built once)."""
    built: type[BaseModel] | None = cls.__dict__.get("__pydantic_model__")
    if built is None:
        built = _build(cls)
        type.__setattr__(cls, "__pydantic_model__", built)
    return built


def _build(cls: type[Record]) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for name, f in cls._fields().items():
        info = f.info
        kwargs: dict[str, Any] = {}
        if info.description is not None:
            kwargs["description"] = info.description
        if info.ge is not None:
            kwargs["ge"] = info.ge
        if info.pattern is not None:
            kwargs["pattern"] = info.pattern
        if info.default_factory is not None:
            kwargs["default_factory"] = _factory(info.default_factory)
        elif info.default is not _MISSING:
            kwargs["default"] = info.default
        fields[name] = (_annotation(f.annotation), Field(**kwargs))
    validators = {
        f"_validate_{i}": field_validator(*names, mode=mode)(_as_classmethod(fn))  # type: ignore[call-overload]
        for i, (names, mode, fn) in enumerate(cls.__record_validators__)
    }
    return create_model(
        cls.__name__,
        __base__=_Model,
        __doc__=cls.__doc__,
        __module__=cls.__module__,
        __validators__=validators,
        **fields,
    )


def _as_classmethod(fn: typing.Callable[[Any], Any]) -> Any:
    def check(model: type[BaseModel], value: Any) -> Any:
        return fn(value)

    check.__name__ = fn.__name__
    return classmethod(check)


def _factory(factory: typing.Callable[[], Any]) -> typing.Callable[[], Any]:
    if isinstance(factory, type) and issubclass(factory, Record):
        return model_of(factory)
    return factory


def _annotation(hint: Any) -> Any:
    """A record's type hint with every record class replaced by its model."""
    if isinstance(hint, type) and issubclass(hint, Record):
        return model_of(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        extra = [Field(pattern=a.pattern) if isinstance(a, Pattern) else a for a in hint.__metadata__]
        return Annotated[(_annotation(args[0]), *extra)]
    if origin in (Union, types.UnionType):
        return Union[tuple(_annotation(a) for a in args)]  # noqa: UP007 - built at run time
    if origin is list:
        return list[_annotation(args[0])]  # type: ignore[misc]
    if origin is dict:
        return dict[_annotation(args[0]), _annotation(args[1])]  # type: ignore[misc]
    return hint


def jsonable(value: Any) -> Any:
    """A free-form value of a type the light records do not know, as pydantic's JSON mode gives it."""
    return to_jsonable_python(value)
