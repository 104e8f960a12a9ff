"""Run merlin's own validation commands in this process instead of a new interpreter.

A task's first validation commands are ``python -m merlin targetgen validate``
and ``... plan`` on the target's inputs. Starting merlin again for them cost
about 0.3 s each; here they run in-process with the same output and exit code
(the record still shows the command, so a person can paste it). Anything
this module does not recognise returns None and runs as a subprocess.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

_PREFIX = ["-m", "merlin", "targetgen"]


def _parse(args: list[str]) -> dict[str, Any] | None:
    """``CAPABILITY [--overlay F] [--out-dir D] [--json]``, or None for anything else."""
    out: dict[str, Any] = {"capability": None, "overlay": None, "out_dir": None, "json": False}
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("--overlay", "-o", "--out-dir") and i + 1 < len(args):
            out["overlay" if a in ("--overlay", "-o") else "out_dir"] = args[i + 1]
            i += 2
            continue
        if a == "--json":
            out["json"] = True
        elif a.startswith("-") or out["capability"] is not None:
            return None
        else:
            out["capability"] = a
        i += 1
    return out if out["capability"] else None


def run_inprocess(argv: list[str], cwd: Path | None) -> tuple[int, str] | None:
    """(exit code, output) of ``argv`` run here, or None if it is not a self-check."""
    if len(argv) < 5 or argv[0] != sys.executable or argv[1:4] != _PREFIX or argv[4] not in ("validate", "plan"):
        return None
    opts = _parse(argv[5:])
    if opts is None:
        return None
    base = Path(cwd) if cwd else Path.cwd()

    def path(p: str | None) -> Path | None:
        return None if p is None else (Path(p) if Path(p).is_absolute() else base / p)

    from merlin.errors import MerlinError
    from merlin.spec import load_pair

    cap_path, ovl_path = base / opts["capability"], path(opts["overlay"])
    try:
        cap, ovl = load_pair(cap_path, ovl_path)
        if argv[4] == "validate":
            if opts["json"]:
                doc = {"valid": True, "target": cap.model.target.name, "capability": str(cap_path), "overlay": str(ovl_path) if ovl_path else None, "deployment": ovl.model.deployment.name if ovl else None}
                return 0, json.dumps(doc, indent=2, sort_keys=True) + "\n"
            suffix = f" with overlay {ovl.model.deployment.name}" if ovl else ""
            return 0, f"ok: {cap_path}: target {cap.model.target.name}{suffix} is valid\n"
        from merlin.targetgen.executor import default_out_dir
        from merlin.targetgen.planner import build_plan, write_plan

        result = build_plan(cap, ovl)
        target_dir, changed = write_plan(result, path(opts["out_dir"]) or base / default_out_dir())
        sp = result.support_plan
        doc = {
            "target": result.target, "target_dir": str(target_dir), "files": sorted(result.files()), "changed": changed,
            "integration_styles": sp["integration_styles"], "primary_integration": sp["primary_integration"],
            "target_families": sp["target_families"], "required_layers": sp["required_layers"],
        }
        return 0, json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n"
    except MerlinError as exc:
        return exc.exit_code, "".join(line.rstrip() + "\n" for line in exc.lines)
