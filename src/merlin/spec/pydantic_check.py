"""The spec models' judgement: pydantic validation, and every error as one located line.

The loader comes here for whatever ``merlin.spec.fast`` does not vouch for
(every invalid document, and the rare valid one it cannot be sure of). Each
pydantic error becomes ``FILE:LINE: dotted.path: problem (expected ...)``,
with did-you-mean hints; the lease inventory reuses :func:`format_errors`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from merlin.errors import SpecError
from merlin.spec.loader import Loc, _field_hint, _line_for
from merlin.spec.models import CapabilitySpec, DeploymentOverlay
from merlin.spec.names import NAME_RULE
from merlin.spec.yamlsafe import Document, dotted, kind_of

MODELS: dict[str, type[BaseModel]] = {"capability": CapabilitySpec, "overlay": DeploymentOverlay}


def validate(shown: str, doc: Document, kind: str) -> BaseModel:
    """The validated model, or SpecError with every problem of the file (duplicate keys too)."""
    model = MODELS[kind]
    try:
        validated = model.model_validate(doc.data)
    except ValidationError as exc:
        raise SpecError(format_errors(shown, exc, doc.lines, doc.data, model, doc.duplicates)) from None
    if doc.duplicates:
        raise SpecError([text for _, text in doc.duplicates])
    return validated


def format_errors(
    shown: str,
    exc: ValidationError,
    lines: dict[Loc, int],
    data: Any,
    model: type[BaseModel],
    dupes: list[tuple[int, str]] = (),  # type: ignore[assignment]
) -> list[str]:
    out: dict[tuple[int, str], str] = {(line, text): text for line, text in dupes}
    for err in _prune_unions(exc.errors(include_url=False)):
        loc = _clean_loc(err["loc"])
        line = _line_for(loc, lines)
        text = _describe(err, loc, data, model)
        if err["type"] == "invalid_key":  # pydantic reports a key `true` as index 1
            loc = loc[:-1] + (_show(err.get("input")),)
        path = dotted(loc) or "(top level)"
        out.setdefault((line, path + text), f"{shown}:{line}: {path}: {text}")
    return [out[key] for key in sorted(out)]


def _is_union_tag(part: Any) -> bool:
    return isinstance(part, str) and "[" in part and part != "[key]" and not part.startswith("function-")


def _prune_unions(errors: list[Any]) -> list[Any]:
    """Report a union field (``'none' | list[Credential]``) once.

    A value that fits one branch (a list) is only checked against that branch;
    a value that fits no branch gets one line naming every accepted form.
    """
    kept: list[Any] = []
    groups: dict[Loc, list[tuple[int, Any]]] = {}
    points = set()
    for err in errors:
        at = next((i for i, part in enumerate(err["loc"]) if _is_union_tag(part)), None)
        if at is not None:
            points.add(tuple(err["loc"][:at]))
    for err in errors:
        at = next((i for i, part in enumerate(err["loc"]) if _is_union_tag(part)), None)
        if at is None:  # a branch with a validator is tagged 'function-after[...]': still a branch of the union
            loc = err["loc"]
            at = next((i for i in range(len(loc)) if tuple(loc[:i]) in points and str(loc[i]).startswith("function-")), None)
        if at is None:
            kept.append(err)
        else:
            groups.setdefault(tuple(err["loc"][:at]), []).append((at, err))
    for point, members in groups.items():
        deeper = [err for at, err in members if len(err["loc"]) > at + 1]
        if deeper:
            kept += deeper
            continue
        forms = []
        for _, err in members:
            if err["type"] == "literal_error":
                expected = str((err.get("ctx") or {}).get("expected", "")).replace(" or ", ", ")
                choices = [c.strip().strip("'") for c in expected.split(",")]
                forms.append(" or ".join(f"'{c}'" for c in choices))
            elif err["type"] == "string_pattern_mismatch" and "A-Za-z0-9_.-" in str((err.get("ctx") or {}).get("pattern")):
                forms.append(f"a name ({NAME_RULE})")
            else:
                forms.append(_EXPECTED_TYPES.get(err["type"], err["msg"]))
        value = members[0][1].get("input")
        kept.append({"type": "union_mismatch", "loc": point, "input": value, "msg": " or ".join(forms)})
    return kept


def _clean_loc(loc: Loc) -> Loc:
    """Drop pydantic's union/constraint tags (e.g. 'list[Credential]', 'literal['none']')."""
    cleaned = []
    for part in loc:
        if isinstance(part, str) and ("[" in part or part.startswith("function-")):
            continue
        cleaned.append(part)
    return tuple(cleaned)


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:57] + "...")
    if isinstance(value, (dict, list)):
        return kind_of(value)
    return str(value)


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model class that owns the field at ``loc`` (for did-you-mean hints)."""
    import typing

    current: Any = model
    dict_key = False
    for part in loc:
        if isinstance(part, int) or dict_key:  # a list index or a key of a dict-valued field
            dict_key = False
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        current = _first_model(field.annotation, typing)
        dict_key = _is_dict(field.annotation, typing)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _expected(annotation: Any) -> str | None:
    """What a field wants, in words, for 'required field is missing (expected ...)'."""
    import typing

    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _expected(typing.get_args(annotation)[0])
    if origin is typing.Literal:
        values = [str(v) for v in typing.get_args(annotation)]
        return values[0] if len(values) == 1 else "one of: " + ", ".join(values)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        required = [name for name, f in annotation.model_fields.items() if f.is_required()]
        return "a mapping" + (f" with {', '.join(required)}" if required else "")
    if origin in (list, tuple):
        return "a list"
    if origin is dict:
        return "a mapping"
    return {str: "a string", bool: "true or false", int: "an integer", float: "a number"}.get(annotation)


def _is_dict(annotation: Any, typing: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is dict:
        return True
    if origin is None or origin is list:
        return False
    return any(_is_dict(arg, typing) for arg in typing.get_args(annotation))


def _has_default(model: type[BaseModel], loc: Loc) -> bool:
    """Whether the field at ``loc`` may be left out (so 'remove the key' is good advice)."""
    if not loc or not isinstance(loc[-1], str):
        return False
    owner = _model_at(model, loc[:-1])
    field = owner.model_fields.get(loc[-1]) if owner else None
    return field is not None and not field.is_required()


def _first_model(annotation: Any, typing: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _first_model(arg, typing)
        if found is not None:
            return found
    return None


_EXPECTED_TYPES = {
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def _describe(err: dict[str, Any], loc: Loc, data: Any, model: type[BaseModel]) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    if kind == "missing":
        owner = _model_at(model, loc[:-1])
        field = owner.model_fields.get(str(loc[-1])) if owner else None
        expected = _expected(field.annotation) if field is not None else None
        return f"required field is missing (expected {expected})" if expected else "required field is missing"
    if kind == "extra_forbidden":
        owner = _model_at(model, loc[:-1])
        known = sorted(owner.model_fields) if owner else []
        hint = _field_hint(str(loc[-1]), known)
        if hint:
            return f"unknown field (did you mean '{hint[0]}'?)"
        return f"unknown field (expected one of: {', '.join(known)})" if known else "unknown field"
    if kind == "literal_error":
        expected = ctx.get("expected", "")
        if loc == ("schema_version",):
            return f"{_show(value)} is not supported (expected 1)"
        choices = expected.replace("'", "").replace(" or ", ", ")
        if isinstance(value, str):
            import difflib

            hint = difflib.get_close_matches(value, [c.strip() for c in choices.split(",")], n=1, cutoff=0.6)
            extra = f"; did you mean '{hint[0]}'?" if hint else ""
            return f"{_show(value)} is not allowed (expected one of: {choices}{extra})"
        return f"{_show(value)} is {kind_of(value)} (expected one of: {choices})"
    if kind in _EXPECTED_TYPES:
        expected = _EXPECTED_TYPES[kind]
        if value is None:
            advice = "; remove the key to use the default" if _has_default(model, loc) else ""
            return f"is null (expected {expected}{advice})"
        if isinstance(value, bool) and kind in ("int_type", "float_type"):
            return f"{_show(value)} is a boolean (expected {expected})"
        return f"{_show(value)} is {kind_of(value)} (expected {expected})"
    if kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern", "")
        if "A-Za-z0-9_.-" in pattern:
            return f"{_show(value)} is not a safe name (expected {NAME_RULE})"
        if "0-9a-f" in pattern:
            return f"{_show(value)} is not a git sha (expected 7 to 40 lowercase hex digits)"
        return f"{_show(value)} is not a valid identifier (expected to match {pattern})"
    if kind == "string_too_short":
        return "is empty (expected a non-empty string)"
    if kind in ("greater_than", "greater_than_equal", "less_than_equal"):
        bound = {"greater_than": "greater than", "greater_than_equal": "at least", "less_than_equal": "at most"}[kind]
        limit = ctx.get("gt", ctx.get("ge", ctx.get("le")))
        return f"{_show(value)} is out of range (expected a number {bound} {limit})"
    if kind == "too_short" and ctx.get("actual_length") == 0 and ctx.get("min_length") == 1:
        return "is empty (expected a non-empty list)"
    if kind in ("too_short", "too_long"):
        return f"has {ctx.get('actual_length')} items (expected {ctx.get('min_length', 1)} to {ctx.get('max_length', 'any')})"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind == "union_mismatch":
        if isinstance(value, (dict, list)):
            return f"is {kind_of(value)} (expected {err['msg']})"
        return f"{_show(value)} is {kind_of(value)} (expected {err['msg']})"
    if kind == "invalid_key":
        why = "; YAML reads bare yes/no/on/off as booleans" if isinstance(value, bool) else ""
        return f"key is {kind_of(value)} (expected a string: quote the key{why})"
    if kind in ("union_tag_invalid", "union_type"):
        return f"{_show(value)} is {kind_of(value)} (expected {err['msg']})"
    return f"{err['msg']} (got {_show(value)})"
