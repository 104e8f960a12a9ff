"""Load a YAML spec into a model, turning every problem into one located line.

Errors look like ``capability.yaml:12: execution_model.kind: 'gpu' is not
allowed (expected one of: cpu_only, ...)``. All errors of a file are reported
together, sorted by line. Line numbers come from PyYAML's node marks, so they
point at the key (for unknown or wrong values) or at the enclosing mapping
(for missing fields).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from merlin.errors import SpecError
from merlin.spec.models import CapabilitySpec, DeploymentOverlay

M = TypeVar("M", bound=BaseModel)
Loc = tuple[Any, ...]


@dataclass(frozen=True)
class Loaded:
    """A validated model with the file it came from (prompts and paths are relative to it)."""

    path: Path
    model: Any


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


# --- YAML with line numbers -------------------------------------------------


def _read_yaml(path: Path, what: str) -> tuple[Any, dict[Loc, int]]:
    shown = str(path)
    if not path.exists():
        raise SpecError([f"{shown}: no such file (expected a {what} YAML file)"])
    if path.is_dir():
        raise SpecError([f"{shown}: is a directory (expected a {what} YAML file)"])
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError([f"{shown}: not UTF-8 text (byte {exc.start}); expected a {what} YAML file"]) from None
    except OSError as exc:
        raise SpecError([f"{shown}: cannot read: {exc.strerror}"]) from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SpecError([f"{shown}: file is empty (expected a {what} mapping starting with 'schema_version: 1')"])
        lines: dict[Loc, int] = {}
        dupes: list[str] = []
        _index(node, (), lines, dupes, shown)
        if dupes:
            raise SpecError(dupes)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark else shown
        problem = exc.problem or "invalid YAML"
        context = f" ({exc.context})" if exc.context else ""
        raise SpecError([f"{where}: YAML syntax error: {problem}{context}"]) from None
    except yaml.YAMLError as exc:
        raise SpecError([f"{shown}: YAML error: {str(exc).splitlines()[0]}"]) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        kind = _kind(data)
        raise SpecError([f"{shown}:{node.start_mark.line + 1}: top level is {kind} (expected a {what} mapping)"])
    return data, lines


def _index(node: yaml.Node, loc: Loc, lines: dict[Loc, int], dupes: list[str], shown: str) -> None:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            key_line = key_node.start_mark.line + 1
            if key in seen:
                dupes.append(
                    f"{shown}:{key_line}: {_dotted(loc + (key,))}: duplicate key (first defined on line {seen[key]})"
                )
            seen[key] = key_line
            _index(value_node, loc + (key,), lines, dupes, shown)
            lines[loc + (key,)] = key_line
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, loc + (i,), lines, dupes, shown)


# --- validation -------------------------------------------------------------


def _load(path: Path, model: type[M], what: str) -> Loaded:
    data, lines = _read_yaml(path, what)
    try:
        return Loaded(path=path.resolve(), model=model.model_validate(data))
    except ValidationError as exc:
        raise SpecError(_format_errors(str(path), exc, lines, data, model)) from None


def _format_errors(shown: str, exc: ValidationError, lines: dict[Loc, int], data: Any, model: type[BaseModel]) -> list[str]:
    out: dict[tuple[int, str], str] = {}
    for err in exc.errors(include_url=False):
        loc = _clean_loc(err["loc"])
        line = _line_for(loc, lines)
        text = _describe(err, loc, data, model)
        path = _dotted(loc) or "(top level)"
        out.setdefault((line, path + text), f"{shown}:{line}: {path}: {text}")
    return [out[key] for key in sorted(out)]


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


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


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
        return _kind(value)
    return str(value)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model class that owns the field at ``loc`` (for did-you-mean hints)."""
    import typing

    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        current = _first_model(field.annotation, typing)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


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
        return "required field is missing"
    if kind == "extra_forbidden":
        owner = _model_at(model, loc[:-1])
        known = sorted(owner.model_fields) if owner else []
        hint = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        if hint:
            return f"unknown field (did you mean '{hint[0]}'?)"
        return f"unknown field (expected one of: {', '.join(known)})" if known else "unknown field"
    if kind == "literal_error":
        expected = ctx.get("expected", "")
        if loc == ("schema_version",):
            return f"{_show(value)} is not supported (expected 1)"
        choices = expected.replace("'", "").replace(" or ", ", ")
        if isinstance(value, str):
            hint = difflib.get_close_matches(value, [c.strip() for c in choices.split(",")], n=1, cutoff=0.6)
            extra = f"; did you mean '{hint[0]}'?" if hint else ""
            return f"{_show(value)} is not allowed (expected one of: {choices}{extra})"
        return f"{_show(value)} is {_kind(value)} (expected one of: {choices})"
    if kind in _EXPECTED_TYPES:
        expected = _EXPECTED_TYPES[kind]
        if value is None:
            return f"is null (expected {expected}; remove the key to use the default)"
        if isinstance(value, bool) and kind in ("int_type", "float_type"):
            return f"{_show(value)} is a boolean (expected {expected})"
        return f"{_show(value)} is {_kind(value)} (expected {expected})"
    if kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern", "")
        if "A-Za-z0-9_.-" in pattern:
            return f"{_show(value)} is not a safe name (expected letters, digits, '_', '.', '-', starting with a letter or digit)"
        if "0-9a-f" in pattern:
            return f"{_show(value)} is not a git sha (expected 7 to 40 lowercase hex digits)"
        return f"{_show(value)} is not a valid identifier (expected to match {pattern})"
    if kind == "string_too_short":
        return "is empty (expected a non-empty string)"
    if kind in ("greater_than", "greater_than_equal", "less_than_equal"):
        bound = {"greater_than": "greater than", "greater_than_equal": "at least", "less_than_equal": "at most"}[kind]
        limit = ctx.get("gt", ctx.get("ge", ctx.get("le")))
        return f"{_show(value)} is out of range (expected a number {bound} {limit})"
    if kind in ("too_short", "too_long"):
        return f"has {ctx.get('actual_length')} items (expected {ctx.get('min_length', 1)} to {ctx.get('max_length', 'any')})"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind in ("union_tag_invalid", "union_type"):
        return f"{_show(value)} is {_kind(value)} (expected {err['msg']})"
    return f"{err['msg']} (got {_show(value)})"
