"""Planner rules, upstream classification, determinism and golden outputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from cli_runner import run_cli
from conftest import REPO, example_targets, overlays_for, upstream_targets
from merlin.spec import load_capability, load_pair
from merlin.spec.models import CapabilitySpec
from merlin.targetgen import rules
from merlin.targetgen.planner import build_plan, write_plan

GOLDEN = REPO / "tests" / "golden"
BASE = yaml.safe_load(
    """
schema_version: 1
target: {name: t}
platform: {host_isa: riscv64, environments: [simulator]}
execution_model: {kind: cpu_only, compiler_recovery_stage: runtime_only}
isa: {base: riscv64, exposure: {kind: none}}
runtime: {required: false}
access: {model: simulator, availability_class: always_local}
"""
)


def spec(**edits: object) -> CapabilitySpec:
    data = json.loads(json.dumps(BASE))
    for dotted, value in edits.items():
        node = data
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return CapabilitySpec.model_validate(data)


@pytest.mark.parametrize(
    "edits, styles",
    [
        ({}, ["llvm_ukernel"]),
        ({"execution_model__compiler_recovery_stage": "post_global_optimization"}, ["post_global_plugin"]),
        ({"execution_model__kind": "structured_npu"}, ["structured_text_isa"]),
        ({"isa__exposure__kind": "text_isa"}, ["structured_text_isa"]),
        ({"isa__exposure__kind": "custom_exporter"}, ["structured_text_isa"]),
        ({"runtime__required": True}, ["runtime_hal"]),
        ({"execution_model__kind": "simt_gpu"}, ["runtime_hal"]),
        ({"isa__exposure__kind": "hal_runtime"}, ["runtime_hal"]),
        ({"isa__exposure__kind": "llvm_intrinsics"}, ["llvm_ukernel"]),
        ({"isa__exposure__kind": "llvm_backend_features"}, ["llvm_ukernel"]),
        ({"execution_model__compiler_recovery_stage": "llvmcpu_codegen"}, ["llvm_ukernel"]),
        ({"execution_model__compiler_recovery_stage": "text_isa_export"}, ["llvm_ukernel"]),
        (
            {
                "execution_model__compiler_recovery_stage": "post_global_optimization",
                "execution_model__kind": "structured_npu",
                "runtime__required": True,
                "isa__exposure__kind": "llvm_intrinsics",
            },
            ["post_global_plugin", "structured_text_isa", "runtime_hal", "llvm_ukernel"],
        ),
        ({"execution_model__kind": "simt_gpu", "isa__exposure__kind": "hal_runtime", "runtime__required": True}, ["runtime_hal"]),
    ],
    ids=lambda v: "-".join(f"{k.split('__')[-1]}={val}" for k, val in v.items()) if isinstance(v, dict) else None,
)
def test_integration_style_rules(edits: dict, styles: list[str]) -> None:
    got, why = rules.integration_styles(spec(**edits))
    assert got == styles
    assert list(why) == styles and all(why[s] for s in styles)


@pytest.mark.parametrize(
    "styles, primary",
    [
        (["llvm_ukernel"], "llvm_ukernel"),
        (["post_global_plugin", "llvm_ukernel"], "post_global_plugin"),
        (["post_global_plugin", "structured_text_isa"], "structured_text_isa"),
        (["post_global_plugin", "structured_text_isa", "runtime_hal", "llvm_ukernel"], "runtime_hal"),
    ],
)
def test_primary_integration_priority(styles: list[str], primary: str) -> None:
    assert rules.primary_integration(styles)[0] == primary


@pytest.mark.parametrize(
    "kind, family",
    [
        ("vector_cpu_extension", "rvv_cpu_extension"),
        ("matrix_coprocessor", "riscv_vendor_matrix_extension"),
        ("rocc_accelerator", "rocc_accelerator"),
        ("structured_npu", "structured_npu_text_isa"),
        ("simt_gpu", "simt_gpu_hal"),
        ("mixed", "mixed_cpu_accelerator"),
        ("cpu_only", "cpu_only"),
    ],
)
def test_target_family(kind: str, family: str) -> None:
    assert rules.target_families(spec(execution_model__kind=kind))[0] == [family]


def test_required_layers_per_style_and_overlay() -> None:
    layers, why = rules.required_layers(["post_global_plugin", "structured_text_isa", "runtime_hal", "llvm_ukernel"], None)
    assert layers == [
        "canonical_spec", "planner", "task_graph", "verification_manifest",
        "merlin_compiler_plugin", "target_dialect", "schedule_and_isa_export",
        "runtime_hal_driver", "llvm_backend_or_intrinsics", "ukernel_tile_model",
    ]
    assert why["runtime_hal_driver"] == ["integration style runtime_hal"]


def test_verification_ladder_statuses() -> None:
    bare = {s["name"]: s["status"] for s in rules.verification_stages(spec(execution_model__kind="simt_gpu"), ["runtime_hal"], None)}
    assert bare == {
        "spec_validation": "ready", "planner_validation": "ready",
        "compiler_structural": "not_applicable", "lowering_codegen": "not_applicable",
        "runtime_smoke": "planned", "numerical_parity": "planned",
        "simulator_or_hardware": "planned", "performance_characterization": "planned",
    }
    rich = spec(
        runtime__required=True,
        verification__golden_model={"available": True, "kind": "ref"},
        verification__perf_counters={"available": True, "kind": "cycles"},
        platform__environments=["board"],
    )
    stages = rules.verification_stages(rich, ["llvm_ukernel"], None)
    assert [s["status"] for s in stages] == ["ready"] * 8
    assert all(s["rationale"] for s in stages) and [s["index"] for s in stages] == list(range(8))


def test_task_graph_shape_with_and_without_overlay() -> None:
    cap = load_capability(upstream_or_example("gemmini_mx", "gemmini_rocc_dev"))
    no_overlay = build_plan(cap).tasks
    ids = [t["id"] for t in no_overlay]
    assert ids[0] == "review_target_spec" and "derive_deployment_overlay" not in ids
    deps = {t["id"]: t["depends_on"] for t in no_overlay}
    assert deps["derive_compile_view"] == ["review_target_spec"]
    implements = [i for i in ids if i.startswith("implement_")]
    assert deps[implements[0]] == ["derive_compile_view"]
    for prev, cur in zip(implements, implements[1:], strict=False):
        assert deps[cur] == [prev]
    assert ids[-1] == "define_verification_ladder" and deps[ids[-1]] == [implements[-1]]
    required = {"id", "title", "phase", "family", "depends_on", "evidence", "acceptance_checks", "write_scope",
                "execution_adapter", "mutation_policy", "validation_commands", "credential_requirements"}
    assert all(required <= set(t) for t in no_overlay)


def upstream_or_example(upstream: str, example: str) -> Path:
    path = REPO.parent / "shared" / "upstream-specs" / upstream / "capability.yaml"
    return path if path.exists() else REPO / "target_specs" / "examples" / example / "capability.yaml"


EXPECTED_UPSTREAM = {
    "gemmini_mx": (["post_global_plugin", "llvm_ukernel"], "post_global_plugin", "rocc_accelerator", ["llvm", "iree"]),
    "npu_ucb": (["post_global_plugin", "structured_text_isa"], "structured_text_isa", "structured_npu_text_isa", []),
    "nvidia_cuda_sm89": (["runtime_hal"], "runtime_hal", "simt_gpu_hal", []),
    "nvidia_vulkan_ada": (["runtime_hal"], "runtime_hal", "simt_gpu_hal", []),
    "qualcomm_adreno_vulkan": (["runtime_hal"], "runtime_hal", "simt_gpu_hal", []),
    "radiance_muon": (["runtime_hal"], "runtime_hal", "simt_gpu_hal", []),
    "saturn_opu_v128": (["llvm_ukernel"], "llvm_ukernel", "riscv_vendor_matrix_extension", ["llvm", "iree"]),
    "spacemit_x60_xsmtvdot": (["llvm_ukernel"], "llvm_ukernel", "rvv_cpu_extension", ["llvm", "iree"]),
}


@pytest.mark.skipif(not upstream_targets(), reason="../shared/upstream-specs is absent (upstream specs are external inputs)")
@pytest.mark.parametrize("capability", upstream_targets(), ids=lambda p: p.parent.name)
def test_upstream_targets_plan_with_expected_classification(capability: Path, tmp_path: Path) -> None:
    styles, primary, family, surfaces = EXPECTED_UPSTREAM[capability.parent.name]
    for overlay in [None, *overlays_for(capability)]:
        cap, ovl = load_pair(capability, overlay)
        plan = build_plan(cap, ovl)
        sp = plan.support_plan
        assert (sp["integration_styles"], sp["primary_integration"], sp["target_families"]) == (styles, primary, [family])
        assert [s["surface"] for s in sp["patch_surfaces"]] == surfaces
        assert ("deployment_overlay" in sp["required_layers"]) == (overlay is not None)
        target_dir, changed = write_plan(plan, tmp_path / "out")
        assert sorted(changed) == sorted(plan.files())
        assert json.loads((target_dir / "support_plan.json").read_text())["target"] == capability.parent.name


def test_plan_is_byte_identical_and_rewrites_nothing(tmp_path: Path) -> None:
    for capability in example_targets() or upstream_targets():
        overlays = overlays_for(capability)
        overlay = overlays[0] if overlays else None
        first = run_cli("targetgen", "plan", str(capability), *(["--overlay", str(overlay)] if overlay else []), "--out-dir", str(tmp_path / "a"), "--json")
        assert first.returncode == 0, first.stderr
        target_dir = Path(json.loads(first.stdout)["target_dir"])
        mtimes = {p.name: p.stat().st_mtime_ns for p in target_dir.iterdir()}
        again = run_cli("targetgen", "plan", str(capability), *(["--overlay", str(overlay)] if overlay else []), "--out-dir", str(tmp_path / "a"), "--json")
        assert json.loads(again.stdout)["changed"] == []
        assert {p.name: p.stat().st_mtime_ns for p in target_dir.iterdir()} == mtimes
        cap, ovl = load_pair(capability, overlay)
        other, _ = write_plan(build_plan(cap, ovl), tmp_path / "b")
        for path in target_dir.iterdir():
            assert path.read_bytes() == (other / path.name).read_bytes(), path.name
        break


def test_plan_leaves_no_temp_files(tmp_path: Path) -> None:
    capability = (example_targets() or upstream_targets())[0]
    target_dir, _ = write_plan(build_plan(load_capability(capability)), tmp_path)
    assert not [p for p in target_dir.iterdir() if p.name.startswith(".")]


def golden_cases() -> list[tuple[Path, Path | None]]:
    cases: list[tuple[Path, Path | None]] = []
    for capability in example_targets():
        cases.append((capability, None))
        cases += [(capability, o) for o in overlays_for(capability)]
    return cases


@pytest.mark.parametrize("capability, overlay", golden_cases(), ids=lambda v: (v.parent.parent.name + "+" + v.stem) if isinstance(v, Path) and v.parent.name == "overlays" else (v.parent.name if isinstance(v, Path) else "none"))
def test_golden_plans(capability: Path, overlay: Path | None, tmp_path: Path) -> None:
    """Example plans match tests/golden/ (regenerate with MERLIN_UPDATE_GOLDEN=1 and review the diff)."""
    cap, ovl = load_pair(capability, overlay)
    files = build_plan(cap, ovl).files()
    golden_dir = GOLDEN / capability.parent.name / (overlay.stem if overlay else "_no_overlay")
    if os.environ.get("MERLIN_UPDATE_GOLDEN"):
        for name, data in files.items():
            (golden_dir / name).parent.mkdir(parents=True, exist_ok=True)
            (golden_dir / name).write_bytes(data)
    assert golden_dir.is_dir(), f"no golden files for {golden_dir}; run MERLIN_UPDATE_GOLDEN=1 ./scripts/test tests/test_planner.py"
    assert sorted(p.name for p in golden_dir.iterdir()) == sorted(files)
    for name, data in files.items():
        assert (golden_dir / name).read_bytes() == data, f"{name} differs from {golden_dir / name}"


def test_explain_shows_reasons() -> None:
    capability = upstream_or_example("radiance_muon", "muon_gpu_hal")
    result = run_cli("targetgen", "explain", str(capability))
    assert result.returncode == 0, result.stderr
    assert "runtime_hal because" in result.stdout and "runtime.required is true" in result.stdout
    assert "Verification ladder" in result.stdout
    as_json = json.loads(run_cli("targetgen", "explain", str(capability), "--json").stdout)
    assert as_json["support_plan"]["reasons"]["integration_styles"]["runtime_hal"]


def test_overlay_only_flag_validation_errors_are_reported_together(tmp_path: Path) -> None:
    cap = tmp_path / "cap.yaml"
    cap.write_text("schema_version: 2\n")
    ovl = tmp_path / "ovl.yaml"
    ovl.write_text("schema_version: 1\ndeployment: {name: x, mode: moon}\n")
    result = run_cli("targetgen", "plan", str(cap), "--overlay", str(ovl), "--out-dir", str(tmp_path))
    assert result.returncode == 2
    assert f"{cap}:1: schema_version: 2 is not supported (expected 1)" in result.stderr
    assert f"{ovl}:2: deployment.mode: 'moon' is not allowed" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x").exists()
