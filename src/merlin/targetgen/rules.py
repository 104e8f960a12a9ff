"""The planner's decision rules, each returning its answer *and* its reasons.

These are upstream Merlin's rules (so existing users get the same plan),
written as small pure functions over the validated models. Every function
returns reasons as plain sentences naming the spec fields that decided.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the loader hands over views of these (merlin.spec.fast): pydantic stays unimported
    from merlin.spec.models import CapabilitySpec, DeploymentOverlay

STYLES = ("post_global_plugin", "structured_text_isa", "runtime_hal", "llvm_ukernel")
PRIMARY_ORDER = ("runtime_hal", "structured_text_isa", "post_global_plugin", "llvm_ukernel")
COMPILER_STYLES = ("post_global_plugin", "structured_text_isa", "llvm_ukernel")

FAMILY_BY_KIND = {
    "vector_cpu_extension": "rvv_cpu_extension",
    "matrix_coprocessor": "riscv_vendor_matrix_extension",
    "rocc_accelerator": "rocc_accelerator",
    "structured_npu": "structured_npu_text_isa",
    "simt_gpu": "simt_gpu_hal",
    "mixed": "mixed_cpu_accelerator",
}

Reasons = dict[str, list[str]]


def integration_styles(spec: CapabilitySpec) -> tuple[list[str], Reasons]:
    """Styles in rule order, without duplicates; llvm_ukernel when nothing else applies."""
    kind = spec.execution_model.kind
    stage = spec.execution_model.compiler_recovery_stage
    exposure = spec.isa.exposure.kind
    why: Reasons = {style: [] for style in STYLES}
    if stage == "post_global_optimization":
        why["post_global_plugin"].append("execution_model.compiler_recovery_stage is post_global_optimization")
    if kind == "structured_npu":
        why["structured_text_isa"].append("execution_model.kind is structured_npu")
    if exposure in ("text_isa", "custom_exporter"):
        why["structured_text_isa"].append(f"isa.exposure.kind is {exposure}")
    if spec.runtime.required:
        why["runtime_hal"].append("runtime.required is true")
    if kind == "simt_gpu":
        why["runtime_hal"].append("execution_model.kind is simt_gpu")
    if exposure == "hal_runtime":
        why["runtime_hal"].append("isa.exposure.kind is hal_runtime")
    if exposure in ("llvm_intrinsics", "llvm_backend_features"):
        why["llvm_ukernel"].append(f"isa.exposure.kind is {exposure}")
    if stage == "llvmcpu_codegen":
        why["llvm_ukernel"].append("execution_model.compiler_recovery_stage is llvmcpu_codegen")
    styles = [style for style in STYLES if why[style]]
    if not styles:
        why["llvm_ukernel"].append("no other integration style applies (default)")
        styles = ["llvm_ukernel"]
    return styles, {style: why[style] for style in styles}


def primary_integration(styles: list[str]) -> tuple[str, str]:
    primary = next(style for style in PRIMARY_ORDER if style in styles)
    return primary, f"{primary} comes first in the priority order {', '.join(PRIMARY_ORDER)} among {', '.join(styles)}"


def target_families(spec: CapabilitySpec) -> tuple[list[str], list[str]]:
    kind = spec.execution_model.kind
    family = FAMILY_BY_KIND.get(kind, "cpu_only")
    return [family], [f"execution_model.kind is {kind}"]


def required_layers(styles: list[str], overlay: DeploymentOverlay | None) -> tuple[list[str], Reasons]:
    why: Reasons = {}

    def add(layer: str, reason: str) -> None:
        why.setdefault(layer, []).append(reason)

    for layer in ("canonical_spec", "planner", "task_graph", "verification_manifest"):
        add(layer, "always required")
    if overlay is not None:
        add("deployment_overlay", f"overlay {overlay.deployment.name} is given")
    per_style = {
        "post_global_plugin": ("merlin_compiler_plugin", "target_dialect"),
        "structured_text_isa": ("schedule_and_isa_export",),
        "runtime_hal": ("runtime_hal_driver",),
        "llvm_ukernel": ("llvm_backend_or_intrinsics", "ukernel_tile_model"),
    }
    for style in STYLES:
        if style in styles:
            for layer in per_style[style]:
                add(layer, f"integration style {style}")
    return list(why), why


def patch_surfaces(spec: CapabilitySpec, styles: list[str], overlay: DeploymentOverlay | None) -> list[dict[str, object]]:
    """Which upstream trees must be patched, and why (upstream's rules)."""
    surfaces: list[dict[str, object]] = []
    exposure = spec.isa.exposure
    if "llvm_ukernel" in styles:
        reasons = []
        if exposure.needs_llvm_backend_changes:
            reasons.append("backend_feature_bits_or_instruction_patterns")
        if exposure.needs_new_intrinsics:
            reasons.append("llvm_intrinsic_surface")
        if exposure.needs_new_feature_bits:
            reasons.append("target_feature_bits")
        if reasons:
            surfaces.append(
                {
                    "surface": "llvm",
                    "reasons": reasons,
                    "why": "isa.exposure declares LLVM backend, intrinsic or feature-bit changes",
                    "edit_mode": "agentic_contextual_edit",
                }
            )
        if spec.geometry.preferred_tiles or "packing" in spec.memory.model_fields_set:
            surfaces.append(
                {
                    "surface": "iree",
                    "reasons": ["cpu_encoding_models", "ukernel_tile_selection", "pack_unpack_selection"],
                    "why": "llvm_ukernel with declared preferred tiles or packing needs IREE CPU encoding and ukernel selection",
                    "edit_mode": "agentic_contextual_edit",
                }
            )
    if overlay is not None and overlay.deployment.mode == "bare-metal":
        surfaces.append(
            {
                "surface": "iree_runtime",
                "reasons": ["bare_metal_runtime_validation"],
                "why": "deployment.mode is bare-metal",
                "edit_mode": "agentic_contextual_edit",
            }
        )
    return surfaces


def verification_stages(spec: CapabilitySpec, styles: list[str], overlay: DeploymentOverlay | None) -> list[dict[str, object]]:
    """The 8-stage ladder; each stage's rationale names the facts that set its status."""
    compiler = [s for s in styles if s in COMPILER_STYLES]
    ver = spec.verification

    def stage(index: int, name: str, status: str, rationale: str) -> dict[str, object]:
        return {"index": index, "name": name, "status": status, "rationale": rationale}

    runtime_why = []
    if spec.runtime.required:
        runtime_why.append("runtime.required is true")
    if overlay is not None:
        runtime_why.append(f"overlay {overlay.deployment.name} is given")
    exec_why = []
    if ver.simulator.available:
        exec_why.append(f"verification.simulator is available ({ver.simulator.kind})")
    if ver.rtl.available:
        exec_why.append(f"verification.rtl is available ({ver.rtl.kind})")
    if "board" in spec.platform.environments:
        exec_why.append("platform.environments contains board")
    return [
        stage(0, "spec_validation", "ready", "Capability and deployment inputs are schema-validated by merlin."),
        stage(1, "planner_validation", "ready", "Support plan and task graph generation are deterministic."),
        stage(
            2,
            "compiler_structural",
            "ready" if compiler else "not_applicable",
            f"Compiler-facing styles present: {', '.join(compiler)}." if compiler else "No compiler-facing integration style.",
        ),
        stage(
            3,
            "lowering_codegen",
            "ready" if compiler else "not_applicable",
            f"Lowering and codegen checks apply to {', '.join(compiler)}." if compiler else "No compiler-facing integration style.",
        ),
        stage(
            4,
            "runtime_smoke",
            "ready" if runtime_why else "planned",
            ("; ".join(runtime_why) + ".") if runtime_why else "runtime.required is false and no overlay is given.",
        ),
        stage(
            5,
            "numerical_parity",
            "ready" if ver.golden_model.available else "planned",
            f"verification.golden_model is available ({ver.golden_model.kind})."
            if ver.golden_model.available
            else "No golden model is available (verification.golden_model.available is false).",
        ),
        stage(
            6,
            "simulator_or_hardware",
            "ready" if exec_why else "planned",
            ("; ".join(exec_why) + ".") if exec_why else "No simulator or RTL is available and platform.environments has no board.",
        ),
        stage(
            7,
            "performance_characterization",
            "ready" if ver.perf_counters.available else "planned",
            f"verification.perf_counters is available ({ver.perf_counters.kind})."
            if ver.perf_counters.available
            else "No performance counters (verification.perf_counters.available is false).",
        ),
    ]
