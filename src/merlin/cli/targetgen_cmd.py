"""``merlin targetgen ...``: validate, plan, explain, schema (planner) and the
executor commands registered from ``targetgen_exec_cmd``."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from merlin.cli.options import JsonOpt

app = typer.Typer(help="TargetGen: validate specs, plan a target and drive its execution.", no_args_is_help=True)

CapabilityArg = typer.Argument(..., help="Capability spec (capability.yaml).", show_default=False)
OverlayOpt = typer.Option(None, "--overlay", "-o", help="Deployment overlay YAML.")
StrictOpt = typer.Option(
    False, "--strict", help="Treat warnings (e.g. an overlay that belongs to another target) as errors: exit 2."
)


def default_out_dir() -> Path:
    """``$MERLIN_TARGETGEN_OUT`` or ``build/generated/targetgen``."""
    return Path(os.environ.get("MERLIN_TARGETGEN_OUT") or "build/generated/targetgen")


def _say(text: str) -> None:
    """One unstyled line on stderr, without Rich (validate and plan stay fast).

    Control characters (a path or a fact could hold ESC) are shown escaped, never sent to the terminal.
    """
    import sys

    shown = "".join(ch if ch.isprintable() or ch == "\t" else ascii(ch)[1:-1] for ch in text)
    sys.stderr.write(shown + "\n")
    sys.stderr.flush()


def _load_checked(capability: Path, overlay: Path | None, *, strict: bool, json: bool) -> tuple:
    """Load the pair; print its located warnings on stderr, or with --strict fail with them (exit 2)."""
    from merlin.cli.output import emit_json
    from merlin.errors import SpecError
    from merlin.spec import load_pair
    from merlin.spec.pairing import spec_warnings, strict_error

    cap, ovl = load_pair(capability, overlay)
    warnings = spec_warnings(cap, ovl)
    failure = strict_error(warnings, "--strict") if strict else None
    if failure is not None:
        lines = failure.lines
        if json:
            emit_json({"error": lines[0], "errors": lines, "exit_code": SpecError.exit_code, "warnings": warnings})
        raise failure
    for line in warnings:
        _say(line)
    return cap, ovl, warnings


@app.command()
def validate(
    capability: Path = CapabilityArg, overlay: Path | None = OverlayOpt, json: bool = JsonOpt, strict: bool = StrictOpt
) -> None:
    """Check a capability spec (and overlay); print every error as FILE:LINE: field: problem."""
    from merlin.cli.output import emit_json

    cap, ovl, warnings = _load_checked(capability, overlay, strict=strict, json=json)
    if json:
        emit_json(
            {
                "valid": True,
                "target": cap.model.target.name,
                "capability": str(capability),
                "overlay": str(overlay) if overlay else None,
                "deployment": ovl.model.deployment.name if ovl else None,
                "warnings": warnings,
            }
        )
    else:
        suffix = f" with overlay {ovl.model.deployment.name}" if ovl else ""
        _say(f"ok: {capability}: target {cap.model.target.name}{suffix} is valid")


@app.command()
def schema(kind: str = typer.Argument(..., help="capability or overlay", metavar="capability|overlay")) -> None:
    """Print the JSON Schema of a capability spec or a deployment overlay."""
    from merlin.cli.output import emit_json
    from merlin.errors import BadInput
    from merlin.spec.schema import json_schema

    if kind not in ("capability", "overlay"):
        raise BadInput(f"schema: unknown kind {kind!r} (expected capability or overlay)")
    emit_json(json_schema(kind))


OutDirOpt = typer.Option(None, "--out-dir", help="Output root; files go to OUT_DIR/<target.name>/ [default: $MERLIN_TARGETGEN_OUT or build/generated/targetgen]")


@app.command()
def plan(
    capability: Path = CapabilityArg,
    overlay: Path | None = OverlayOpt,
    out_dir: Path | None = OutDirOpt,
    json: bool = JsonOpt,
    strict: bool = StrictOpt,
) -> None:
    """Write support_plan.json, task_graph.json, verification_manifest.json and the derived views."""
    from merlin.cli.output import emit_json
    from merlin.targetgen.planner import build_plan, write_plan

    cap, ovl, warnings = _load_checked(capability, overlay, strict=strict, json=json)
    result = build_plan(cap, ovl)
    target_dir, changed = write_plan(result, out_dir or default_out_dir())
    files = sorted(result.files())
    if json:
        emit_json(
            {
                "target": result.target,
                "target_dir": str(target_dir),
                "files": files,
                "changed": changed,
                "integration_styles": result.support_plan["integration_styles"],
                "primary_integration": result.support_plan["primary_integration"],
                "target_families": result.support_plan["target_families"],
                "required_layers": result.support_plan["required_layers"],
                "warnings": warnings,
            }
        )
        return
    sp = result.support_plan
    _say(
        f"planned {result.target}: {', '.join(sp['integration_styles'])} (primary {sp['primary_integration']}), "
        f"{len(result.tasks)} tasks -> {target_dir}/ ({len(changed)} of {len(files)} files changed)"
    )


@app.command()
def explain(
    capability: Path = CapabilityArg, overlay: Path | None = OverlayOpt, json: bool = JsonOpt, strict: bool = StrictOpt
) -> None:
    """Show the plan and the reason behind every decision (writes nothing)."""
    from merlin.cli.explain_view import render_explain
    from merlin.cli.output import emit_json
    from merlin.targetgen.planner import build_plan

    cap, ovl, warnings = _load_checked(capability, overlay, strict=strict, json=json)
    result = build_plan(cap, ovl)
    if json:
        emit_json(
            {
                "support_plan": result.support_plan,
                "task_graph": result.task_graph,
                "verification_manifest": result.verification_manifest,
                "warnings": warnings,
            }
        )
        return
    from merlin.cli.output import out

    render_explain(result, out())


from merlin.cli import targetgen_exec_cmd as _exec  # noqa: E402

_exec.register(app)
