"""The task graph: what must be done for a target, in dependency order.

Each task carries its execution contract: where it may write, how it is
executed, what validates it, and what it needs before it can start
(``preflight``). Validation commands are argv lists with placeholders that
the executor fills in: ``{python}`` (the interpreter running merlin),
``{capability}``, ``{overlay_args}`` (expands to ``--overlay PATH`` or
nothing), ``{target_dir}`` and ``{scratch_dir}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the loader hands over views of these (merlin.spec.fast): pydantic stays unimported
    from merlin.spec.models import CapabilitySpec, DeploymentOverlay

Task = dict[str, Any]

COMMON_EVIDENCE = [
    ("repo_path", "docs/architecture/plugin_and_patch_model.md", "Merlin extension and patch policy"),
    ("repo_path", "docs/reference/cli.md", "Current CLI surface and user-facing command model"),
    ("repo_path", "tools/compile.py", "Current compile-target view that the planner must eventually derive"),
]

STYLE_EVIDENCE = {
    "post_global_plugin": [
        ("repo_path", "docs/how_to/add_compiler_dialect_plugin.md", "Post-global-optimization compiler-plugin workflow"),
        ("repo_path", "third_party/iree_bar/compiler/src/iree/compiler/PluginAPI/Client.h", "IREE pipeline extension seam"),
    ],
    "llvm_ukernel": [
        ("repo_path", "docs/dev_blog/2026-03-13-riscv-mmt4d-ukernel-workstream.md", "Ukernel, tiling and RISC-V codegen"),
        (
            "repo_path",
            "third_party/iree_bar/compiler/src/iree/compiler/Codegen/ExternalInterfaces/CPUEncodingExternalModels.cpp",
            "CPU encoding and tile model extension point",
        ),
    ],
    "structured_text_isa": [
        ("repo_path", "compiler/src/merlin/Dialect/NPU/README.md", "Staged kernel/schedule/ISA design"),
        ("repo_path", "docs/dev_blog/2026-03-11-npu-dialect-e2e.md", "NPU end-to-end validation and simulator flow"),
    ],
    "runtime_hal": [
        ("repo_path", "docs/how_to/add_runtime_hal_driver.md", "HAL driver integration workflow"),
        ("repo_path", "runtime/src/iree/hal/drivers/radiance/README.md", "Runtime-first backend example"),
    ],
}

STYLE_TITLE = {
    "post_global_plugin": "Recover native semantics after global optimization",
    "structured_text_isa": "Stage target-specific schedule and ISA export",
    "runtime_hal": "Define the runtime/HAL backend contract",
    "llvm_ukernel": "Define ISA exposure, ukernel, and tile-model work",
}
STYLE_PHASE = {"post_global_plugin": "compiler", "structured_text_isa": "compiler", "runtime_hal": "runtime", "llvm_ukernel": "compiler"}
STYLE_ACTIONS = {
    "post_global_plugin": [
        "Use the post-global-optimization seam to recover accelerator semantics from normalized linalg/tensor/arith IR.",
        "Define or refine the target dialect, recovery passes, and fallback boundaries for non-native operations.",
    ],
    "structured_text_isa": [
        "Define the staged kernel, schedule, and ISA export pipeline required by the target.",
        "Attach verifier and memory-planning responsibilities to explicit stages instead of late codegen.",
    ],
    "runtime_hal": [
        "Specify driver registration, device model, transport/backend seam, and executable contract.",
        "Separate queue, synchronization, and dispatch responsibilities from compiler-only work items.",
    ],
    "llvm_ukernel": [
        "Translate ISA exposure into LLVM intrinsics, backend features, instruction patterns, and ukernel tile decisions.",
        "Define layout, packing, unpacking, and datatype legality from the canonical geometry and memory model.",
    ],
}
STYLE_WRITE_SCOPE = {
    "post_global_plugin": ["compiler/plugins/target/<Target>/", "compiler/src/merlin/Dialect/<Target>/"],
    "structured_text_isa": ["compiler/src/merlin/Dialect/<Target>/", "compiler/src/merlin/Translation/<Target>/"],
    "runtime_hal": ["runtime/src/iree/hal/drivers/<target>/", "runtime/src/iree/hal/drivers/<target>/registration/"],
    "llvm_ukernel": [
        "third_party/iree_bar/compiler/src/iree/compiler/Codegen/",
        "third_party/iree_bar/runtime/src/iree/builtins/ukernel/",
        "third_party/iree_bar/third_party/llvm-project/llvm/lib/Target/RISCV/",
        "third_party/iree_bar/third_party/llvm-project/llvm/include/llvm/IR/",
    ],
}
STYLE_HANDOFF = {
    "post_global_plugin": "Call out dialect, pass, or exporter seams affected by the change.",
    "structured_text_isa": "Call out dialect, pass, or exporter seams affected by the change.",
    "llvm_ukernel": "Call out LLVM, IREE, and ukernel surfaces that must stay in sync.",
    "runtime_hal": "Call out device, transport, executable, and synchronization responsibilities separately.",
}

VALIDATE = {
    "id": "validate_inputs",
    "argv": ["{python}", "-m", "merlin", "targetgen", "validate", "{capability}", "{overlay_args}"],
    "description": "The capability spec and overlay validate.",
}
REPLAN = {
    "id": "replan",
    "argv": ["{python}", "-m", "merlin", "targetgen", "plan", "{capability}", "{overlay_args}", "--out-dir", "{scratch_dir}", "--json"],
    "description": "The planner runs on the inputs and writes a plan.",
}


def _check_file(check_id: str, relpath: str, loader: str) -> dict[str, Any]:
    code = f"import {loader}, sys; {loader}.{'safe_load' if loader == 'yaml' else 'load'}(open(sys.argv[1], encoding='utf-8'))"
    return {
        "id": check_id,
        "argv": ["{python}", "-c", code, "{target_dir}/" + relpath],
        "description": f"{relpath} exists and parses.",
    }


def _toolchain_check(style: str) -> dict[str, Any]:
    """A real toolchain check: fails honestly on a machine without the SDK."""
    if style == "runtime_hal":
        return {
            "id": "iree_runtime_drivers",
            "argv": ["iree-run-module", "--list_drivers"],
            "description": "The IREE runtime is installed and lists its HAL drivers.",
        }
    return {
        "id": "iree_compile_version",
        "argv": ["iree-compile", "--version"],
        "description": "The IREE compiler is installed.",
    }


def _evidence(spec: CapabilitySpec, overlay: DeploymentOverlay | None, extra: list[tuple[str, str, str]]) -> list[dict[str, str]]:
    items = list(COMMON_EVIDENCE) + list(extra)
    items += [("repo_path", ref, "Target-specific reference from the capability spec") for ref in spec.references]
    if overlay is not None and overlay.deployment.hardware_recipe:
        items.append(("repo_path", overlay.deployment.hardware_recipe, "Deployment recipe named by the overlay"))
    seen: dict[tuple[str, str, str], None] = dict.fromkeys(items)
    return [{"kind": k, "value": v, "reason": r} for (k, v, r) in seen]


def _adapter(spec: CapabilitySpec, family: str) -> tuple[str, str, str]:
    """(repo_root, execution_adapter, mutation_policy) for a task family."""
    if family == "shared":
        return ".", "merlin_local", "planner_generated_only"
    if family == "runtime_hal":
        return ".", "runtime_hal", "runtime_driver_edit"
    if family == "llvm_ukernel":
        if spec.isa.exposure.needs_llvm_backend_changes:
            return "third_party/iree_bar/third_party/llvm-project", "llvm_submodule", "llvm_submodule_edit"
        return "third_party/iree_bar", "iree_submodule", "iree_submodule_edit"
    return ".", "merlin_local", "merlin_local_edit"


def _credentials(spec: CapabilitySpec, overlay: DeploymentOverlay | None, family: str) -> list[dict[str, str]]:
    """Credentials a task needs: runtime tasks and every task of a cloud target (upstream's rule)."""
    if family != "runtime_hal" and spec.access.model != "cloud_service":
        return []
    env_override = overlay.deployment.preflight.credentials if overlay else {}
    out = []
    for cred in spec.access.credentials():
        env = env_override.get(cred.name) or cred.env or f"MERLIN_CREDENTIAL_{cred.name.upper().replace('-', '_').replace('.', '_')}"
        out.append({"name": cred.name, "env": env})
    return out


def _task(
    spec: CapabilitySpec,
    overlay: DeploymentOverlay | None,
    *,
    task_id: str,
    title: str,
    phase: str,
    family: str,
    depends_on: list[str],
    evidence: list[tuple[str, str, str]],
    actions: list[str],
    write_scope: list[str],
    acceptance: list[str],
    validation: list[dict[str, Any]],
) -> Task:
    repo_root, adapter, policy = _adapter(spec, family)
    handoff = [
        "Summarize the evidence reviewed before any mutation.",
        "Report the exact files touched or confirmed unchanged.",
        "Record validation results or blockers before marking the task complete.",
    ]
    if family in STYLE_HANDOFF:
        handoff.append(STYLE_HANDOFF[family])
    code_changing = policy != "planner_generated_only"
    gates = spec.access.verification_gates
    preflight = {
        "sdk_requirements": list(spec.access.sdk_requirements) if code_changing else [],
        "device_gate": bool(family == "runtime_hal" and "device_query" in gates),
    }
    artifacts_in = ["<capability>"] + (["<overlay>"] if overlay is not None else [])
    return {
        "id": task_id,
        "title": title,
        "phase": phase,
        "family": family,
        "depends_on": depends_on,
        "evidence": _evidence(spec, overlay, evidence),
        "actions": actions,
        "acceptance_checks": acceptance,
        "write_scope": write_scope,
        "repo_root": repo_root,
        "execution_adapter": adapter,
        "mutation_policy": policy,
        "needs_proposal": code_changing,
        "artifacts_in": artifacts_in,
        "artifacts_out": [*write_scope, f"task_states/{task_id}.json"],
        "validation_commands": validation,
        "credential_requirements": _credentials(spec, overlay, family),
        "preflight": preflight,
        "handoff_contract": handoff,
    }


def build_task_graph(spec: CapabilitySpec, overlay: DeploymentOverlay | None, styles: list[str]) -> list[Task]:
    tasks = [
        _task(
            spec,
            overlay,
            task_id="review_target_spec",
            title="Review canonical capability and deployment inputs",
            phase="planning",
            family="shared",
            depends_on=[],
            evidence=[],
            actions=[
                "Validate the capability spec and optional deployment overlay against the TargetGen schema.",
                "Check execution model, ISA exposure, memory model, numeric contract and verification resources for consistency.",
            ],
            write_scope=["support_plan.json", "verification_manifest.json"],
            acceptance=[
                "Schema validation passes with no unknown or contradictory fields.",
                "The target is classified without ad hoc target-specific rules.",
            ],
            validation=[VALIDATE],
        ),
        _task(
            spec,
            overlay,
            task_id="derive_compile_view",
            title="Derive compile-target and profile view",
            phase="planning",
            family="shared",
            depends_on=["review_target_spec"],
            evidence=[
                ("repo_path", "docs/how_to/add_compile_target.md", "Compile-target YAML schema"),
                ("repo_path", "models", "Handwritten compile target views"),
            ],
            actions=[
                "Translate canonical capabilities into the compile-target shape used by the compiler driver.",
                "Record the build profile, compile target name and compile hw mode derived from the plan.",
            ],
            write_scope=["compile_view.yaml"],
            acceptance=[
                "The compile view is derived only from the capability spec and overlay.",
                "No compile-only fact lives exclusively outside the canonical inputs.",
            ],
            validation=[REPLAN, _check_file("compile_view_parses", "compile_view.yaml", "yaml")],
        ),
    ]
    if overlay is not None:
        tasks.append(
            _task(
                spec,
                overlay,
                task_id="derive_deployment_overlay",
                title="Derive deployment and hardware-backend view",
                phase="deployment",
                family="shared",
                depends_on=["review_target_spec"],
                evidence=[
                    ("repo_path", "docs/hardware_backends/overview.md", "Deployment recipe model"),
                    ("repo_path", "build_tools/hardware", "Handwritten hardware recipes"),
                ],
                actions=[
                    "Translate deployment overlay data into the hardware-recipe shape used by board and FireSim flows.",
                    "Preserve Chipyard pins, board runtime assumptions and simulator metadata as deployment-only facts.",
                ],
                write_scope=["deployment_view.yaml"],
                acceptance=[
                    "The deployment view preserves every pin and execution fact of the overlay.",
                    "Deployment-only facts do not leak into the capability spec.",
                ],
                validation=[_check_file("deployment_view_parses", "deployment_view.yaml", "yaml")],
            )
        )
    previous = "derive_compile_view"
    for style in styles:
        task_id = f"implement_{style}"
        acceptance = {
            "post_global_plugin": [
                "Recovered target ops appear right after the global optimization pipeline on representative models.",
                "Unsupported patterns fall back cleanly to the generic downstream flow.",
            ],
            "structured_text_isa": [
                "Kernel, schedule, and ISA stages are individually verifiable.",
                "The exported ISA stays compatible with the declared simulator or text-ISA consumer.",
            ],
            "runtime_hal": [
                "Driver registration and device creation are validated independently from dispatch.",
                "Runtime responsibilities are explicit enough to generate a smoke-test ladder.",
            ],
            "llvm_ukernel": [
                "Lowering strategy and tile selection are explainable from the canonical geometry and memory model.",
                "LLVM exposure matches the declared ISA state model and register constraints.",
            ],
        }[style]
        if style == "llvm_ukernel" and spec.isa.register_constraints.even_alignment_required:
            acceptance = [*acceptance, "Legality checks cover even-alignment or grouped-register constraints."]
        tasks.append(
            _task(
                spec,
                overlay,
                task_id=task_id,
                title=STYLE_TITLE[style],
                phase=STYLE_PHASE[style],
                family=style,
                depends_on=[previous],
                evidence=STYLE_EVIDENCE[style],
                actions=STYLE_ACTIONS[style],
                write_scope=STYLE_WRITE_SCOPE[style],
                acceptance=acceptance,
                validation=[_toolchain_check(style)],
            )
        )
        previous = task_id
    tasks.append(
        _task(
            spec,
            overlay,
            task_id="define_verification_ladder",
            title="Define the generated verification ladder",
            phase="verification",
            family="shared",
            depends_on=[previous],
            evidence=[("repo_path", "docs/hardware_backends/compatibility_matrix.md", "Backend maturity and deployment combinations")],
            actions=[
                "Generate a staged verification manifest from spec sanity through hardware and performance validation.",
                "Attach family-specific smoke, lowering, runtime, simulator and parity checks to the manifest.",
            ],
            write_scope=["verification_manifest.json", "task_graph.json"],
            acceptance=[
                "The ladder includes only stages justified by declared resources and families.",
                "The manifest exposes an explicit maturity level instead of supported/unsupported.",
            ],
            validation=[_check_file("verification_manifest_parses", "verification_manifest.json", "json")],
        )
    )
    return tasks
