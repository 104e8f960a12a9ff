"""Warnings for a spec and an overlay that load but do not belong together.

Each is one located line, ``FILE:LINE: field.path: warning: ...``, printed by
``targetgen validate``, ``plan`` and ``explain`` (and listed under
``warnings`` in their ``--json``); ``--strict`` makes them errors (exit 2).
They catch mistakes the models cannot see, because each file is valid alone:

- the overlay sits in another target's ``overlays/`` directory;
- ``deployment.compile_target`` names another target (not the spec's own
  name, nor a family name it starts with, such as upstream's ``saturn_opu``
  for ``saturn_opu_v128``);
- a preflight probe or credential names an SDK or credential the capability
  never asks for, so it would never run or never be read;
- and each file's own warnings (a fact key one letter off a typed field).
"""

from __future__ import annotations

import re
from pathlib import Path

from merlin.errors import SpecError, named
from merlin.spec.loader import Loaded


def spec_warnings(cap: Loaded, ovl: Loaded | None) -> list[str]:
    """Every warning about ``cap`` alone, ``ovl`` alone and the two together, in file order."""
    found = list(cap.warnings)
    if ovl is not None:
        found += _pair_warnings(cap, ovl)
        found += ovl.warnings
    return found


def strict_error(warnings: list[str], flag: str = "strict") -> SpecError | None:
    """With strict checking, the pair's warnings as the error to raise (exit 2): every
    warning a line, then one saying why they count (``flag``: the argument that asked,
    see :func:`merlin.errors.named`). None when there is none."""
    if not warnings:
        return None
    count = f"{len(warnings)} warning{'s' if len(warnings) != 1 else ''}"
    label, argument = named(flag)
    return SpecError([*warnings, f"{label}: {count} treated as errors"], argument=argument)


def _tokens(name: str) -> list[str]:
    return [t for t in re.split(r"[_.\-]+", name.lower()) if t]


def _related(a: str, b: str) -> bool:
    """One name is the other or a leading part of it (a family name): saturn_opu / saturn_opu_v128."""
    ta, tb = _tokens(a), _tokens(b)
    n = min(len(ta), len(tb))
    return n > 0 and ta[:n] == tb[:n]


def _pair_warnings(cap: Loaded, ovl: Loaded) -> list[str]:
    spec = cap.model
    dep = ovl.model.deployment
    name = spec.target.name
    out: list[tuple[int, str]] = []

    def warn(loc: tuple[str, ...], text: str) -> None:
        out.append((ovl.line(*loc), f"{ovl.where(*loc)}: warning: {text}"))

    home = _home_of(ovl.path)
    if home is not None and home != cap.path and home.parent.name != name:
        warn(
            ("deployment",),
            f"this overlay sits in target '{home.parent.name}''s overlays/ ({home}), not with '{name}' "
            f"(expected an overlay of {cap.path.parent}/overlays/)",
        )

    if dep.compile_target and not _related(dep.compile_target, name):
        sibling = cap.path.parent.parent / dep.compile_target / "capability.yaml"
        known = f" ({sibling} is that target)" if sibling.is_file() else ""
        warn(
            ("deployment", "compile_target"),
            f"'{dep.compile_target}' names another target{known}; this spec is '{name}' "
            f"(expected '{name}', a family name it starts with, or null)",
        )

    sdks = list(spec.access.sdk_requirements)
    for sdk in dep.preflight.probes:
        if sdk not in sdks:
            warn(("deployment", "preflight", "probes", sdk), _unused("probe", sdk, "SDK requirement", "access.sdk_requirements", sdks, name))

    creds = [c.name for c in spec.access.credentials()]
    for cred in dep.preflight.credentials:
        if cred not in creds:
            warn(
                ("deployment", "preflight", "credentials", cred),
                _unused("credential", cred, "credential requirement", "access.credential_requirements", creds, name),
            )
    return [text for _, text in sorted(out, key=lambda item: item[0])]


def _unused(what: str, key: str, requirement: str, field: str, known: list[str], target: str) -> str:
    import difflib  # only when there is something to warn about

    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    listed = ", ".join(known) if known else "none"
    return f"{what} '{key}' matches no {requirement} of target '{target}' ({field}: {listed}), so it is never used{hint}"


def _home_of(overlay: Path) -> Path | None:
    """The capability spec whose ``overlays/`` directory holds ``overlay``, if any."""
    if overlay.parent.name != "overlays":
        return None
    candidate = overlay.parent.parent / "capability.yaml"
    return candidate.resolve() if candidate.is_file() else None
