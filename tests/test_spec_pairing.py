"""A spec and an overlay that load but do not belong together (issue 8):
located warnings in validate, plan and explain, a ``warnings`` list in their
--json, and --strict turning them into exit 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cli_runner import run_cli
from conftest import EXAMPLES, REPO
from merlin.spec.loader import load_pair
from merlin.spec.pairing import spec_warnings

DATA = REPO / "tests" / "bad_inputs"
BASE_CAPABILITY = DATA / "base_capability.yaml"
BASE_OVERLAY = DATA / "base_overlay.yaml"
RVV = EXAMPLES / "rvv_generic_zvl256" / "capability.yaml"
GEMMINI_FIRESIM = EXAMPLES / "gemmini_rocc_dev" / "overlays" / "firesim_u250.yaml"


def _overlay(tmp_path: Path, old: str, new: str) -> Path:
    text = BASE_OVERLAY.read_text()
    assert text.count(old) == 1
    path = tmp_path / "overlay.yaml"
    path.write_text(text.replace(old, new))
    return path


def _capability_with_sdk(tmp_path: Path) -> Path:
    """The base spec, requiring the `python` SDK its base overlay probes (so the base pair is clean)."""
    path = tmp_path / "capability.yaml"
    path.write_text(BASE_CAPABILITY.read_text() + "  sdk_requirements: [python]\n")
    return path


def test_clean_pair_has_no_warnings(tmp_path: Path) -> None:
    cap, ovl = load_pair(_capability_with_sdk(tmp_path), BASE_OVERLAY)
    assert spec_warnings(cap, ovl) == []
    result = run_cli("targetgen", "validate", str(tmp_path / "capability.yaml"), "--overlay", str(BASE_OVERLAY), "--strict", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["warnings"] == []


def test_compile_target_naming_another_target(tmp_path: Path) -> None:
    cap = _capability_with_sdk(tmp_path)
    overlay = _overlay(tmp_path, "  mode: simulator\n", "  mode: simulator\n  compile_target: gemmini_rocc_dev\n")
    c, o = load_pair(cap, overlay)
    assert spec_warnings(c, o) == [
        f"{overlay}:6: deployment.compile_target: warning: 'gemmini_rocc_dev' names another target; "
        "this spec is 'base_target' (expected 'base_target', a family name it starts with, or null)"
    ]


@pytest.mark.parametrize("compile_target", ["base_target", "base", "null"])
def test_compile_target_of_the_same_target_or_family_is_fine(compile_target: str, tmp_path: Path) -> None:
    """Upstream's saturn_opu_v128 compiles as `saturn_opu`: a family name it starts with is not a mismatch."""
    cap = _capability_with_sdk(tmp_path)
    overlay = _overlay(tmp_path, "  mode: simulator\n", f"  mode: simulator\n  compile_target: {compile_target}\n")
    assert spec_warnings(*load_pair(cap, overlay)) == []


def test_overlay_of_another_example_target_warns_in_validate_and_plan(tmp_path: Path) -> None:
    """The issue's case: an overlay from another target's directory, whose compile_target names that target."""
    shown = str(GEMMINI_FIRESIM)
    result = run_cli("targetgen", "validate", str(RVV), "--overlay", shown)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if ": warning: " in line]
    assert [w.split(": warning: ")[0] for w in warnings] == [
        f"{shown}:4: deployment",
        f"{shown}:8: deployment.compile_target",
        f"{shown}:21: deployment.preflight.probes.firesim",
    ]
    assert "this overlay sits in target 'gemmini_rocc_dev''s overlays/" in warnings[0]
    assert "is that target" in warnings[1]
    plan = run_cli("targetgen", "plan", str(RVV), "--overlay", shown, "--out-dir", str(tmp_path / "out"), "--json")
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["warnings"] == warnings
    assert [line for line in plan.stderr.splitlines() if ": warning: " in line] == warnings
    explain = run_cli("targetgen", "explain", str(RVV), "--overlay", shown, "--json")
    assert explain.returncode == 0 and json.loads(explain.stdout)["warnings"] == warnings


def test_strict_turns_warnings_into_exit_2(tmp_path: Path) -> None:
    out = tmp_path / "out"
    for command in (["validate"], ["plan", "--out-dir", str(out)]):
        result = run_cli("targetgen", *command, str(RVV), "--overlay", str(GEMMINI_FIRESIM), "--strict")
        assert result.returncode == 2, result.stderr
        lines = result.stderr.splitlines()
        assert len(lines) == 4 and all(": warning: " in line for line in lines[:3])
        assert lines[3] == "--strict: 3 warnings treated as errors"
        assert "Traceback" not in result.stderr and result.stdout == ""
    assert not out.exists(), "a refused plan writes nothing"
    result = run_cli("targetgen", "validate", str(RVV), "--overlay", str(GEMMINI_FIRESIM), "--strict", "--json")
    data = json.loads(result.stdout)
    assert result.returncode == 2 and data["exit_code"] == 2 and len(data["warnings"]) == 3
    assert data["errors"] == [*data["warnings"], "--strict: 3 warnings treated as errors"]


def test_probe_matching_no_sdk_requirement(tmp_path: Path) -> None:
    cap = _capability_with_sdk(tmp_path)
    overlay = _overlay(tmp_path, "      python: python3 --version\n", "      pyhton: python3 --version\n")
    assert spec_warnings(*load_pair(cap, overlay)) == [
        f"{overlay}:13: deployment.preflight.probes.pyhton: warning: probe 'pyhton' matches no SDK requirement of "
        "target 'base_target' (access.sdk_requirements: python), so it is never used; did you mean 'python'?"
    ]


def test_overlay_credential_matching_no_credential_requirement(tmp_path: Path) -> None:
    cap = _capability_with_sdk(tmp_path)
    overlay = _overlay(tmp_path, "    timeout_s: 30\n", "    timeout_s: 30\n    credentials: {api_token: MY_TOKEN}\n")
    assert spec_warnings(*load_pair(cap, overlay)) == [
        f"{overlay}:15: deployment.preflight.credentials.api_token: warning: credential 'api_token' matches no "
        "credential requirement of target 'base_target' (access.credential_requirements: none), so it is never used"
    ]


def test_overlay_copied_beside_its_own_spec_is_fine(tmp_path: Path) -> None:
    """The directory check compares the target: an overlay of the same target in another checkout is not a mismatch."""
    target = tmp_path / "rvv_generic_zvl256"
    shutil.copytree(EXAMPLES / "rvv_generic_zvl256", target)
    assert spec_warnings(*load_pair(RVV, target / "overlays" / "qemu_user.yaml")) == []
