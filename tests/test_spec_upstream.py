"""Every real upstream target (../shared/upstream-specs) validates with each of
its overlays: through the API for every pair, and once through the CLI with
--json. These files were written by upstream Merlin, not by us; they are read
in place and never copied into the repo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import conftest
from cli_runner import run_cli
from conftest import REPO
from merlin.spec import load_capability, load_overlay, load_pair
from merlin.spec.pairing import spec_warnings

# ../shared beside the repo; a worktree (wt/<name>/) finds it one level further up.
UPSTREAM = conftest.UPSTREAM if conftest.UPSTREAM.is_dir() else REPO.parent.parent / "shared" / "upstream-specs"


def upstream_targets() -> list[Path]:
    return sorted(UPSTREAM.glob("*/capability.yaml")) if UPSTREAM.is_dir() else []


def overlays_for(capability: Path) -> list[Path]:
    return conftest.overlays_for(capability)

needs_upstream = pytest.mark.skipif(
    not UPSTREAM.is_dir(), reason=f"upstream specs not found at {UPSTREAM} (the shared checkout beside the repo is absent)"
)


def _pairs() -> list[tuple[Path, Path | None]]:
    pairs: list[tuple[Path, Path | None]] = []
    for capability in upstream_targets():
        pairs.append((capability, None))
        pairs += [(capability, overlay) for overlay in overlays_for(capability)]
    return pairs


def _pair_id(pair: tuple[Path, Path | None]) -> str:
    capability, overlay = pair
    return f"{capability.parent.name}+{overlay.stem if overlay else 'no-overlay'}"


PAIRS = _pairs()


@needs_upstream
def test_upstream_targets_present() -> None:
    targets = upstream_targets()
    assert len(targets) >= 8, targets
    assert all(overlays_for(c) for c in targets), "every upstream target ships at least one overlay"


@needs_upstream
@pytest.mark.parametrize("pair", PAIRS, ids=[_pair_id(p) for p in PAIRS])
def test_upstream_pair_validates(pair: tuple[Path, Path | None]) -> None:
    capability, overlay = pair
    cap, ovl = load_pair(capability, overlay)
    assert cap.model.target.name == capability.parent.name, "the target name is also its directory name"
    assert cap.path == capability.resolve()
    assert spec_warnings(cap, ovl) == [], "a real upstream pair passes --strict"
    if overlay is not None:
        assert ovl is not None and ovl.model.deployment.name == overlay.stem
        assert ovl.path == overlay.resolve()


@needs_upstream
def test_upstream_facts_survive_loading() -> None:
    """Spot-check values, so a permissive model cannot pass by dropping fields."""
    by_name = {c.parent.name: load_capability(c).model for c in upstream_targets()}
    gemmini = by_name["gemmini_mx"]
    assert gemmini.execution_model.kind == "rocc_accelerator"
    assert gemmini.geometry.native_tile_options == [[16, 16, 16]]
    assert gemmini.verification.tolerances["fp8"].atol == 0.125
    radiance = by_name["radiance_muon"]
    assert radiance.runtime.required is True
    assert radiance.runtime.driver.uri_schemes == ["radiance://direct", "radiance://rpc", "radiance://kmod"]
    assert radiance.isa.register_constraints.accumulator_register_file is None
    assert by_name["saturn_opu_v128"].memory.packing.supports_k0_eq_1_direct_pack is True
    assert by_name["qualcomm_adreno_vulkan"].access.availability_class == "lab_hardware"
    firesim = load_overlay(UPSTREAM / "gemmini_mx" / "overlays" / "firesim_u250.yaml").model.deployment
    assert firesim.mode == "firesim" and firesim.chipyard.sha and len(firesim.chipyard.sha) == 40
    assert firesim.extra == {"bare_metal_config": "MxGemminiRocketConfig"}


@needs_upstream
def test_upstream_validates_via_cli_json() -> None:
    capability = UPSTREAM / "gemmini_mx" / "capability.yaml"
    overlay = overlays_for(capability)[0]
    result = run_cli("targetgen", "validate", str(capability), "--overlay", str(overlay), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data == {
        "valid": True,
        "target": "gemmini_mx",
        "capability": str(capability),
        "overlay": str(overlay),
        "deployment": overlay.stem,
        "warnings": [],
    }


@needs_upstream
@pytest.mark.parametrize("pair", PAIRS, ids=[_pair_id(p) for p in PAIRS])
def test_upstream_pair_plans(pair: tuple[Path, Path | None], tmp_path: Path) -> None:
    """Every upstream pair plans in-process; every extra fact it carries reaches a view."""
    from merlin.targetgen.planner import build_plan, write_plan

    cap, ovl = load_pair(*pair)
    plan = build_plan(cap, ovl)
    target_dir, changed = write_plan(plan, tmp_path)
    assert target_dir == tmp_path / cap.model.target.name and "compile_view.yaml" in changed
    assert ("deployment_view.yaml" in changed) == (ovl is not None)


@needs_upstream
def test_upstream_plans_via_cli_strict(tmp_path: Path) -> None:
    capability = UPSTREAM / "saturn_opu_v128" / "capability.yaml"  # compile_target saturn_opu: a family name
    overlay = overlays_for(capability)[0]
    result = run_cli("targetgen", "plan", str(capability), "--overlay", str(overlay), "--out-dir", str(tmp_path), "--strict", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["warnings"] == []
