"""Build a target's plan from validated specs and write it, byte-stable.

``build_plan`` is pure (no I/O, no clock) so the same inputs always give the
same plan; ``write_plan`` writes each file atomically and only if its bytes
changed. Output directory rule, used everywhere: ``<out_dir>/<target.name>``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from merlin.atomic import dump_json, write_if_changed
from merlin.spec.fast import open_facts
from merlin.spec.loader import Loaded
from merlin.targetgen import rules
from merlin.targetgen.tasks import build_task_graph

if TYPE_CHECKING:  # the loader hands over views of these (merlin.spec.fast): pydantic stays unimported
    from merlin.spec.models import CapabilitySpec, DeploymentOverlay

PLAN_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Plan:
    target: str
    support_plan: dict[str, Any]
    task_graph: dict[str, Any]
    verification_manifest: dict[str, Any]
    compile_view: dict[str, Any]
    deployment_view: dict[str, Any] | None

    @property
    def tasks(self) -> list[dict[str, Any]]:
        return self.task_graph["tasks"]

    def files(self) -> dict[str, bytes]:
        """Every output file name with its exact bytes."""
        import yaml

        def dump_yaml(data: dict[str, Any]) -> bytes:
            return yaml.safe_dump(data, sort_keys=True, default_flow_style=False, allow_unicode=True).encode("utf-8")

        out = {
            "support_plan.json": dump_json(self.support_plan).encode("utf-8"),
            "task_graph.json": dump_json(self.task_graph).encode("utf-8"),
            "verification_manifest.json": dump_json(self.verification_manifest).encode("utf-8"),
            "compile_view.yaml": dump_yaml(self.compile_view),
        }
        if self.deployment_view is not None:
            out["deployment_view.yaml"] = dump_yaml(self.deployment_view)
        return out


def target_dir_for(out_dir: Path, target: str) -> Path:
    return Path(out_dir) / target


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_plan(cap: Loaded, overlay: Loaded | None = None) -> Plan:
    spec: CapabilitySpec = cap.model
    ovl: DeploymentOverlay | None = overlay.model if overlay else None
    name = spec.target.name

    styles, style_reasons = rules.integration_styles(spec)
    primary, primary_reason = rules.primary_integration(styles)
    families, family_reasons = rules.target_families(spec)
    layers, layer_reasons = rules.required_layers(styles, ovl)
    surfaces = rules.patch_surfaces(spec, styles, ovl)
    stages = rules.verification_stages(spec, styles, ovl)
    tasks = build_task_graph(spec, ovl, styles)

    inputs = {"capability": {"file": cap.path.name, "sha256": _digest(cap.path)}}
    if overlay is not None:
        inputs["overlay"] = {"file": overlay.path.name, "sha256": _digest(overlay.path)}

    support_plan = {
        "schema_version": PLAN_SCHEMA_VERSION,
        "target": name,
        "display_name": spec.target.display_name or name,
        "vendor": spec.target.vendor,
        "maturity": spec.target.maturity,
        "inputs": inputs,
        "deployment_profile": ovl.deployment.name if ovl else None,
        "deployment_mode": ovl.deployment.mode if ovl else None,
        "integration_styles": styles,
        "primary_integration": primary,
        "target_families": families,
        "required_layers": layers,
        "patch_surfaces": surfaces,
        "access": {
            "model": spec.access.model,
            "availability_class": spec.access.availability_class,
            "sdk_requirements": list(spec.access.sdk_requirements),
            "credential_requirements": [c.name for c in spec.access.credentials()],
            "verification_gates": list(spec.access.verification_gates),
        },
        "derived_artifacts": [
            "support_plan.json",
            "task_graph.json",
            "verification_manifest.json",
            "compile_view.yaml",
            *(["deployment_view.yaml"] if ovl else []),
        ],
        "task_ids": [t["id"] for t in tasks],
        "reasons": {
            "integration_styles": style_reasons,
            "primary_integration": [primary_reason],
            "target_families": {families[0]: family_reasons},
            "required_layers": layer_reasons,
            "patch_surfaces": {s["surface"]: [s["why"]] for s in surfaces},
            "verification": {s["name"]: [s["rationale"]] for s in stages},
        },
    }
    task_graph = {"schema_version": PLAN_SCHEMA_VERSION, "target": name, "tasks": tasks}
    manifest = {
        "schema_version": PLAN_SCHEMA_VERSION,
        "target": name,
        "maturity": spec.target.maturity,
        "ready_stages": sum(1 for s in stages if s["status"] == "ready"),
        "stages": stages,
    }
    return Plan(
        target=name,
        support_plan=support_plan,
        task_graph=task_graph,
        verification_manifest=manifest,
        compile_view=_compile_view(spec, ovl, styles),
        deployment_view=_deployment_view(ovl) if ovl else None,
    )


def _compile_view(spec: CapabilitySpec, ovl: DeploymentOverlay | None, styles: list[str]) -> dict[str, Any]:
    """The compile-target shape the compiler driver consumes, derived only from the inputs.

    ``facts`` (only when the spec has any) holds the hardware facts written in
    the open mappings beyond their typed fields, e.g. a compute array's rows.
    """
    dep = ovl.deployment if ovl else None
    facts = open_facts(spec)
    return {
        **({"facts": facts} if facts else {}),
        "target": spec.target.name,
        "compile_target": (dep.compile_target if dep and dep.compile_target else spec.target.name),
        "compile_hw": dep.compile_hw if dep else None,
        "build_profile": dep.build_profile if dep else None,
        "host_isa": spec.platform.host_isa,
        "isa": {
            "base": spec.isa.base,
            "features": list(spec.isa.features),
            "target_features": ",".join(f for f in spec.isa.features if f.startswith(("+", "-"))) or None,
            "exposure": spec.isa.exposure.kind,
        },
        "execution": {
            "kind": spec.execution_model.kind,
            "compiler_recovery_stage": spec.execution_model.compiler_recovery_stage,
        },
        "integration_styles": styles,
        "vector": spec.geometry.vector.model_dump(),
        "tiles": {
            "native": [list(t) for t in spec.geometry.native_tile_options],
            "preferred": [list(t) for t in spec.geometry.preferred_tiles],
        },
        "layouts": spec.memory.preferred_layouts.model_dump(),
        "packing": spec.memory.packing.model_dump(),
        "legal_type_triples": list(spec.numeric.legal_type_triples),
        "executable_format": spec.runtime.executable_format,
    }


def _deployment_view(ovl: DeploymentOverlay) -> dict[str, Any]:
    dep = ovl.deployment
    view: dict[str, Any] = {
        "deployment": dep.name,
        "mode": dep.mode,
        "build_profile": dep.build_profile,
        "hardware_recipe": dep.hardware_recipe,
        "chipyard": dep.chipyard.model_dump(),
        "runtime": {k: v for k, v in dep.runtime.model_dump().items() if v is not None},
        "preflight": dep.preflight.model_dump(),
        "extra": dep.extra,
    }
    if dep.resources:
        view["resources"] = [r.model_dump() for r in dep.resources]
    return view


def write_plan(plan: Plan, out_dir: Path) -> tuple[Path, list[str]]:
    """Write the plan under ``<out_dir>/<target>``; returns the dir and the files that changed."""
    target_dir = target_dir_for(out_dir, plan.target)
    changed = [name for name, data in plan.files().items() if write_if_changed(target_dir / name, data)]
    return target_dir, changed
