"""Typed value classes for the submit path, without :mod:`dataclasses`.

``import dataclasses`` imports :mod:`inspect` (with ``ast``, ``dis`` and
``tokenize``), and each ``@dataclass`` compiles its methods from source as the
module loads: together about a fifth of a ``jobs submit``'s CPU (issue 15), for
a few small records that need none of it. :class:`Value` gives the same shape
from the class body alone: the annotated names are the fields, in order (a
base's first); a class attribute of that name is its default, :func:`factory`
a default made fresh for each instance (the type checker reads the class as a dataclass: ``typing.dataclass_transform``); ``__init__`` (positional or keyword),
``__post_init__`` when defined, ``__repr__`` (fields marked ``repr=False`` left
out), ``__eq__`` (same class, same fields), and :meth:`Value.replace`. A class
made with ``frozen=True`` refuses assignment after ``__post_init__`` and hashes
by its fields, as a frozen dataclass does. Annotations are never evaluated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, dataclass_transform

if TYPE_CHECKING:  # a bound given as text is compiled when the TypeVar is made: only the type checker needs it
    V = TypeVar("V", bound="Value")


class _Factory:
    __slots__ = ("make", "repr")

    def __init__(self, make: Any, repr: bool) -> None:
        self.make = make
        self.repr = repr


def factory(*, default_factory: Any = None, default: Any = None, repr: bool = True) -> Any:
    """A field's default: ``default_factory()`` for each instance (a fresh dict or list), else
    ``default``; ``repr=False`` keeps the field out of ``repr()`` (a secret)."""
    return _Factory(default_factory if default_factory is not None else (lambda: default), repr)


class FrozenInstanceError(AttributeError):
    """Assignment to a field of a frozen value (as ``dataclasses.FrozenInstanceError``)."""


@dataclass_transform(field_specifiers=(factory,))
class Value:
    """The base of a typed value class (see the module's docstring)."""

    _fields_: ClassVar[tuple[str, ...]] = ()
    _defaults_: ClassVar[dict[str, Any]] = {}
    _hidden_: ClassVar[frozenset[str]] = frozenset()
    _frozen_: ClassVar[bool] = False

    def __init_subclass__(cls, frozen: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields: list[str] = list(cls._fields_)
        defaults = dict(cls._defaults_)
        hidden = set(cls._hidden_)
        for name, text in cls.__dict__.get("__annotations__", {}).items():
            if name.startswith("_") or name in fields or str(text).startswith(("ClassVar", "typing.ClassVar")):
                continue
            fields.append(name)
            if name in cls.__dict__:
                value = cls.__dict__[name]
                defaults[name] = value
                if isinstance(value, _Factory) and not value.repr:
                    hidden.add(name)
                delattr(cls, name)  # the instance holds it; a class attribute would shadow a missing one
            elif defaults:
                raise TypeError(f"{cls.__name__}: field {name!r} without a default follows one with a default")
        cls._fields_ = tuple(fields)
        cls._defaults_ = defaults
        cls._hidden_ = frozenset(hidden)
        cls._frozen_ = frozen or cls._frozen_
        type.__setattr__(cls, "__match_args__", cls._fields_)
        # as a dataclass with eq: hashed by its fields when frozen, unhashable (mutable) otherwise
        type.__setattr__(cls, "__hash__", Value._hash if cls._frozen_ else None)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        names = self._fields_
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__}() takes {len(names)} positional arguments but {len(args)} were given")
        values = dict(zip(names, args, strict=False))
        for name, value in kwargs.items():
            if name not in names:
                raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {name!r}")
            if name in values:
                raise TypeError(f"{type(self).__name__}() got multiple values for argument {name!r}")
            values[name] = value
        for name in names:
            if name not in values:
                if name not in self._defaults_:
                    raise TypeError(f"{type(self).__name__}() missing required argument: {name!r}")
                default = self._defaults_[name]
                values[name] = default.make() if isinstance(default, _Factory) else default
        object.__setattr__(self, "__dict__", values)
        post = getattr(self, "__post_init__", None)
        if post is not None:
            post()

    def __setattr__(self, name: str, value: Any) -> None:
        if self._frozen_:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        if self._frozen_:
            raise FrozenInstanceError(f"cannot delete field {name!r}")
        object.__delattr__(self, name)

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._fields_ if n not in self._hidden_)
        return f"{type(self).__qualname__}({shown})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self._fields_)

    def _hash(self) -> int:
        return hash(tuple(getattr(self, n) for n in self._fields_))

    def replace(self: V, **changes: Any) -> V:
        """A copy with ``changes`` (``dataclasses.replace``): ``__post_init__`` runs again."""
        return type(self)(**{**{n: getattr(self, n) for n in self._fields_}, **changes})
