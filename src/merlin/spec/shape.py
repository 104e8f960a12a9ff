"""Compile the spec models into plain data for the fast checker (``merlin.spec.fast``).

``validate`` and ``plan`` of a valid spec never import pydantic: the models'
shape (every field, its type, constraints and default) is written once, by
this module, into ``merlin/spec/_shape.py``, which ``fast`` interprets.
Pydantic stays the judge: whatever the fast checker cannot vouch for goes
through the models, which also write every error message. A test keeps
``_shape.py`` equal to what this module generates, and another compares the
two checkers on a corpus of valid and broken specs.

Regenerate after changing ``models.py``::

    python -m merlin.spec.shape --write

A model feature this compiler does not know (a new validator, a constraint,
a type) is an error here, never silently skipped.
"""

from __future__ import annotations

import pprint
import sys
import types
import typing
from pathlib import Path
from typing import Any

import annotated_types
from pydantic import AfterValidator, BaseModel, BeforeValidator, WithJsonSchema
from pydantic.fields import FieldInfo

from merlin.spec import models

TARGET = Path(__file__).with_name("_shape.py")
ROOTS: dict[str, type[BaseModel]] = {"capability": models.CapabilitySpec, "overlay": models.DeploymentOverlay}

# validators whose meaning the fast checker implements by name
_AFTER = {models._no_dotdot: "no_dotdot"}
_BEFORE = {models._exactly_int_one: "exactly_int"}
_FIELD_VALIDATORS = {("Access", "_unique_gates"): ("verification_gates", "unique")}


class ShapeError(Exception):
    """The models use something the fast checker would not check."""


def _constraints(meta: list[Any], out: dict[str, Any]) -> None:
    for m in meta:
        if isinstance(m, FieldInfo):
            _constraints(list(m.metadata), out)
        elif isinstance(m, annotated_types.MinLen):
            out["min_length"] = m.min_length
        elif isinstance(m, annotated_types.MaxLen):
            out["max_length"] = m.max_length
        elif isinstance(m, annotated_types.Gt):
            out["gt"] = m.gt
        elif isinstance(m, annotated_types.Ge):
            out["ge"] = m.ge
        elif isinstance(m, annotated_types.Le):
            out["le"] = m.le
        elif isinstance(m, annotated_types.Lt):
            out["lt"] = m.lt
        elif type(m).__name__ == "_PydanticGeneralMetadata" and set(vars(m)) == {"pattern"}:
            out["pattern"] = m.pattern
        elif isinstance(m, AfterValidator) and m.func in _AFTER:
            out[_AFTER[m.func]] = True
        elif isinstance(m, BeforeValidator) and m.func in _BEFORE:
            out[_BEFORE[m.func]] = True
        elif isinstance(m, WithJsonSchema):
            continue  # documentation only
        else:
            raise ShapeError(f"unknown field metadata {m!r}")


def _type(annotation: Any, meta: list[Any]) -> dict[str, Any]:
    """One type descriptor: ``{"t": kind, ...constraints}``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type(args[0], [*meta, *args[1:]])
    out: dict[str, Any]
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        out = {"t": "union", "of": [_type(a, []) for a in options]} if len(options) > 1 else _type(options[0], [])
        if type(None) in args:
            out = {"t": "optional", "of": out}
    elif origin is typing.Literal:
        out = {"t": "literal", "values": list(args)}
    elif origin is list:
        out = {"t": "list", "of": _type(args[0], [])}
    elif origin is dict:
        out = {"t": "dict", "key": _type(args[0], []), "of": _type(args[1], [])}
    elif annotation is typing.Any:
        out = {"t": "any"}
    elif annotation in (str, int, float, bool):
        out = {"t": annotation.__name__}
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        out = {"t": "model", "ref": annotation.__name__}
    else:
        raise ShapeError(f"unknown annotation {annotation!r}")
    _constraints(meta, out)
    return out


def _model(cls: type[BaseModel], found: dict[str, Any]) -> None:
    if cls.__name__ in found:
        return
    config = cls.model_config
    if not (config.get("strict") and config.get("frozen")) or config.get("extra") not in ("forbid", "allow"):
        raise ShapeError(f"{cls.__name__}: the fast checker knows strict, frozen models with extra forbid or allow")
    entry: dict[str, Any] = {"open": config.get("extra") == "allow", "fields": {}}
    found[cls.__name__] = entry
    for name, field in cls.model_fields.items():
        if field.alias or field.validation_alias:
            raise ShapeError(f"{cls.__name__}.{name}: aliases are not compiled")
        desc = _type(field.annotation, list(field.metadata))
        spec: dict[str, Any] = {"type": desc, "required": field.is_required()}
        if not field.is_required():
            default = field.get_default(call_default_factory=True)
            if isinstance(default, BaseModel):
                if default.model_fields_set or default.model_dump() != type(default)().model_dump():
                    raise ShapeError(f"{cls.__name__}.{name}: a model default must be the model's own defaults (default_factory={type(default).__name__})")
                default = default.model_dump()
            spec["default"] = default
        entry["fields"][name] = spec
        for ref in _refs(desc):
            _model(getattr(models, ref), found)
    for deco in cls.__pydantic_decorators__.field_validators.values():
        key = (cls.__name__, deco.cls_var_name)
        if key not in _FIELD_VALIDATORS:
            raise ShapeError(f"{cls.__name__}.{deco.cls_var_name}: a field validator the fast checker does not know")
        fname, flag = _FIELD_VALIDATORS[key]
        entry["fields"][fname]["type"][flag] = True
    if cls.__pydantic_decorators__.model_validators:
        raise ShapeError(f"{cls.__name__}: model validators are not compiled")


def _refs(desc: dict[str, Any]) -> list[str]:
    if desc["t"] == "model":
        return [desc["ref"]]
    inner = [desc[k] for k in ("of", "key") if isinstance(desc.get(k), dict)]
    inner += [d for d in desc.get("of", []) if isinstance(d, dict)] if isinstance(desc.get("of"), list) else []
    return [r for d in inner for r in _refs(d)]


def compile_shape() -> dict[str, Any]:
    """``{"roots": {kind: model name}, "models": {name: {"open": bool, "fields": {...}}}}``."""
    found: dict[str, Any] = {}
    for root in ROOTS.values():
        _model(root, found)
    return {"roots": {kind: cls.__name__ for kind, cls in ROOTS.items()}, "models": found}


#: the command that writes ``_shape.py`` (this module's own command line)
REGENERATE = "python -m merlin.spec.shape --write"


def render() -> str:
    body = pprint.pformat(compile_shape(), width=150, sort_dicts=False)
    return (
        f'"""Generated by ``{REGENERATE}`` from ``merlin/spec/models.py``: do not edit.\n\n'
        'The spec models as plain data, for the pydantic-free checker in ``merlin.spec.fast``."""\n\n'
        "# fmt: off\n"
        f"SHAPE = {body}\n"
    )


def main(argv: list[str]) -> int:
    text = render()
    if argv[:1] == ["--write"]:
        TARGET.write_text(text, encoding="utf-8")
        print(f"wrote {TARGET}")
        return 0
    current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
    if current != text:
        print(f"{TARGET} is out of date: run {REGENERATE}", file=sys.stderr)
        return 1
    print(f"{TARGET} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
