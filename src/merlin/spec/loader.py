"""Load a YAML spec into a model, turning every problem into one located line.

Errors look like ``capability.yaml:12: execution_model.kind: 'gpu' is not
allowed (expected one of: cpu_only, ...)``. All errors of a file are reported
together, sorted by line. Line numbers come from PyYAML's node marks, so they
point at the key (for unknown or wrong values) or at the enclosing mapping
(for missing fields).

A valid document is checked by ``merlin.spec.fast`` without importing
pydantic (``validate`` and ``plan`` stay quick); anything it does not vouch
for is judged by the pydantic models in ``merlin.spec.pydantic_check``, which
word every error. ``MERLIN_SPEC_CHECKER=pydantic`` always asks the models.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from merlin.errors import SpecError
from merlin.spec import fast
from merlin.spec.yamlsafe import Document, dotted, load_yaml

Loc = tuple[Any, ...]


@dataclass(frozen=True)
class Loaded:
    """A validated model with the file it came from (prompts and paths are relative to it).

    ``lines`` maps every key path to its line, for located warnings;
    ``warnings`` are this file's own (e.g. a fact key one letter off a typed field).
    """

    path: Path
    #: a ``merlin.spec.fast`` view or a pydantic model: the same attributes and ``model_dump``
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
    return _load(Path(path), "capability")


def load_overlay(path: str | Path) -> Loaded:
    return _load(Path(path), "overlay")


def load_pair(capability: str | Path, overlay: str | Path | None) -> tuple[Loaded, Loaded | None]:
    """Load both files, reporting the errors of both together."""
    errors: list[SpecError] = []
    cap = ovl = None
    try:
        cap = load_capability(capability)
    except SpecError as exc:
        errors.append(exc)
    if overlay is not None:
        try:
            ovl = load_overlay(overlay)
        except SpecError as exc:
            errors.append(exc)
    if errors:
        named = next((e for e in errors if e.argument), errors[0])  # a swapped file names the argument to give it as
        raise SpecError([line for e in errors for line in e.lines], argument=named.argument, related=named.related)
    assert cap is not None
    return cap, ovl


# --- validation -------------------------------------------------------------


_WHAT = {"capability": "capability spec", "overlay": "deployment overlay"}


def _swapped(path: Path, doc: Document, kind: str) -> SpecError | None:
    """The file is the other kind of spec: say so instead of listing every field as wrong."""
    data = doc.data
    if kind == "capability" and "deployment" in data and "target" not in data:
        line = f"{path}:{doc.line('deployment')}: deployment: this is a deployment overlay, not a capability spec (give it as `overlay`)"
        return SpecError([line], argument="overlay", related="capability")
    if kind == "overlay" and "target" in data and "deployment" not in data:
        line = f"{path}:{doc.line('target')}: target: this is a capability spec, not a deployment overlay (give it as `capability`)"
        return SpecError([line], argument="capability", related="overlay")
    return None


def _load(path: Path, kind: str) -> Loaded:
    doc = load_yaml(path, kind=_WHAT[kind], duplicates="collect")
    swapped = _swapped(path, doc, kind)
    if swapped:
        raise swapped
    validated: Any = None
    if not doc.duplicates and os.environ.get("MERLIN_SPEC_CHECKER") != "pydantic":
        validated = fast.check(doc.data, kind)
    if validated is None:
        from merlin.spec.pydantic_check import validate

        validated = validate(str(path), doc, kind)
    warnings = tuple(f"{str(path)}:{_line_for(loc, doc.lines)}: {dotted(loc)}: warning: {text}" for loc, text in _fact_warnings(validated, ()))
    return Loaded(path=path.resolve(), model=validated, lines=doc.lines, warnings=warnings, shown=str(path))


def _fact_warnings(value: Any, loc: Loc) -> list[tuple[Loc, str]]:
    """Fact keys one typo away from a typed field of their open mapping (``rtl`` beside ``rtol``)."""
    found: list[tuple[Loc, str]] = []
    names = fast.field_names(value)
    if names is not None:
        typed = sorted(names)
        for key in fast.facts_of(value):
            hint = _field_hint(str(key), typed)
            if hint and hint[0] not in value.model_fields_set:
                found.append((loc + (key,), f"unknown fact kept as written (did you mean '{hint[0]}'?)"))
        for name in names:
            found += _fact_warnings(getattr(value, name), loc + (name,))
    elif isinstance(value, dict):
        for key, item in value.items():
            if fast.field_names(item) is not None:
                found += _fact_warnings(item, loc + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if fast.field_names(item) is not None:
                found += _fact_warnings(item, loc + (i,))
    return found


def _line_for(loc: Loc, lines: dict[Loc, int]) -> int:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return 1


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
