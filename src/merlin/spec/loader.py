"""Load a YAML spec into a model, turning every problem into one located line.

Errors look like ``capability.yaml:12: execution_model.kind: 'gpu' is not
allowed (expected one of: cpu_only, ...)``. All errors of a file are reported
together, sorted by line. Line numbers come from PyYAML's node marks, so they
point at the key (for unknown or wrong values) or at the enclosing mapping
(for missing fields).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from merlin.errors import SpecError
from merlin.spec.models import CapabilitySpec, DeploymentOverlay, Facts
from merlin.spec.names import NAME_RULE
from merlin.spec.yamlsafe import Document, dotted, kind_of, load_yaml

M = TypeVar("M", bound=BaseModel)
Loc = tuple[Any, ...]


@dataclass(frozen=True)
class Loaded:
    """A validated model with the file it came from (prompts and paths are relative to it).

    ``lines`` maps every key path to its line, for located warnings;
    ``warnings`` are this file's own (e.g. a fact key one letter off a typed field).
    """

    path: Path
    model: Any
    lines: dict[Loc, int] = field(default_factory=dict, compare=False, repr=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)
    shown: str = field(default="", compare=False, repr=False)

    def line(self, *loc: Any) -> int:
        """The line of ``loc``, or of the nearest enclosing key that has one."""
        return _line_for(loc, self.lines)

    def where(self, *loc: Any) -> str:
        """``FILE:LINE: dotted.path`` of ``loc``, with the file as the user named it."""
        return f"{self.shown or self.path}:{self.line(*loc)}: {dotted(loc) or '(top level)'}"


def load_capability(path: str | Path) -> Loaded:
    return _load(Path(path), CapabilitySpec, "capability spec")


def load_overlay(path: str | Path) -> Loaded:
    return _load(Path(path), DeploymentOverlay, "deployment overlay")


def load_pair(capability: str | Path, overlay: str | Path | None) -> tuple[Loaded, Loaded | None]:
    """Load both files, reporting the errors of both together."""
    lines: list[str] = []
    cap = ovl = None
    try:
        cap = load_capability(capability)
    except SpecError as exc:
        lines += exc.lines
    if overlay is not None:
        try:
            ovl = load_overlay(overlay)
        except SpecError as exc:
            lines += exc.lines
    if lines:
        raise SpecError(lines)
    assert cap is not None
    return cap, ovl


def read_yaml_located(path: str | Path, what: str) -> tuple[dict[Any, Any], dict[Loc, int], list[tuple[int, str]]]:
    """``(data, line of every key path, duplicate-key errors)`` of a bounded YAML mapping file.

    For loaders that validate with their own model and ``_format_errors``
    (the lease inventory); ``merlin.spec.yamlsafe.load_yaml`` is the same as a ``Document``.
    """
    doc = load_yaml(path, kind=what, duplicates="collect")
    return doc.data, doc.lines, doc.duplicates


# --- validation -------------------------------------------------------------


def _swapped(path: Path, doc: Document, model: type[BaseModel]) -> str | None:
    """The file is the other kind of spec: say so instead of listing every field as wrong."""
    data = doc.data
    if model is CapabilitySpec and "deployment" in data and "target" not in data:
        return f"{path}:{doc.line('deployment')}: deployment: this is a deployment overlay, not a capability spec (pass it with --overlay)"
    if model is DeploymentOverlay and "target" in data and "deployment" not in data:
        return f"{path}:{doc.line('target')}: target: this is a capability spec, not a deployment overlay (pass it as the CAPABILITY argument)"
    return None


def _load(path: Path, model: type[M], what: str) -> Loaded:
    doc = load_yaml(path, kind=what, duplicates="collect")
    swapped = _swapped(path, doc, model)
    if swapped:
        raise SpecError([swapped])
    try:
        validated = model.model_validate(doc.data)
    except ValidationError as exc:
        raise SpecError(_format_errors(str(path), exc, doc.lines, doc.data, model, doc.duplicates)) from None
    if doc.duplicates:
        raise SpecError([text for _, text in doc.duplicates])
    warnings = tuple(f"{str(path)}:{_line_for(loc, doc.lines)}: {dotted(loc)}: warning: {text}" for loc, text in _fact_warnings(validated, ()))
    return Loaded(path=path.resolve(), model=validated, lines=doc.lines, warnings=warnings, shown=str(path))


def _fact_warnings(value: Any, loc: Loc) -> list[tuple[Loc, str]]:
    """Fact keys one typo away from a typed field of their open mapping (``rtl`` beside ``rtol``)."""
    found: list[tuple[Loc, str]] = []
    if isinstance(value, Facts):
        typed = sorted(type(value).model_fields)
        for key in value.facts():
            hint = _field_hint(str(key), typed)
            if hint and hint[0] not in value.model_fields_set:
                found.append((loc + (key,), f"unknown fact kept as written (did you mean '{hint[0]}'?)"))
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            found += _fact_warnings(getattr(value, name), loc + (name,))
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, BaseModel):
                found += _fact_warnings(item, loc + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, BaseModel):
                found += _fact_warnings(item, loc + (i,))
    return found


def _format_errors(
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


def _line_for(loc: Loc, lines: dict[Loc, int]) -> int:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return 1


def _value_at(data: Any, loc: Loc) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


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


def _field_hint(key: str, known: list[str]) -> list[str]:
    """A close spelling (platfrom -> platform) or a field the key starts (vlen -> vlen_bits).

    Stricter than difflib's default 0.6, which offers 'operations' for 'extra_section'.
    """
    import difflib  # only on the error and warning paths

    close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    if close:
        return close
    started = [name for name in known if len(key) >= 3 and name.startswith(key)]
    return started[:1] if len(started) == 1 else []


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
