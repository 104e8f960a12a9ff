"""Prompt packets: layered fragments, merge modes, selectors, strict rendering,
and the upstream specs' own fragments being picked up."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from cli_runner import run_cli
from conftest import UPSTREAM, upstream_targets
from merlin.errors import BadInput
from merlin.spec import load_pair
from merlin.targetgen import prompts as pr
from merlin.targetgen.executor import orchestrate
from merlin.targetgen.planner import build_plan

CAPABILITY = yaml.safe_load(
    """
schema_version: 1
target: {name: promptcheck, display_name: Prompt Check}
platform: {host_isa: riscv64}
execution_model: {kind: vector_cpu_extension, compiler_recovery_stage: llvmcpu_codegen}
isa: {base: riscv64, features: [+v, +zvl256b], exposure: {kind: llvm_intrinsics}}
runtime: {required: false}
access: {model: simulator, availability_class: always_local, sdk_requirements: [iree_llvmcpu]}
"""
)
OVERLAY = {"schema_version": 1, "deployment": {"name": "sim", "mode": "simulator"}}


def write_spec(root: Path, fragments: dict[str, str] | None = None) -> tuple[Path, Path]:
    root.mkdir(parents=True, exist_ok=True)
    cap = root / "capability.yaml"
    cap.write_text(yaml.safe_dump(CAPABILITY))
    ovl = root / "overlays" / "sim.yaml"
    ovl.parent.mkdir(parents=True, exist_ok=True)
    ovl.write_text(yaml.safe_dump(OVERLAY))
    for rel, text in (fragments or {}).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return cap, ovl


def frag(section: str, body: str, merge: str = "append", **selectors: object) -> str:
    meta = {"section": section, "merge": merge, **selectors}
    return "---\n" + yaml.safe_dump(meta) + "---\n" + body + "\n"


def render(cap: Path, ovl: Path | None, *, library: Path | None = None) -> pr.RenderedPrompt:
    c, o = load_pair(cap, ovl)
    plan = build_plan(c, o)
    task = next(t for t in plan.tasks if t["needs_proposal"])
    return pr.render_prompt(
        spec=c.model,
        overlay=o.model if o else None,
        capability_path=c.path,
        task=task,
        support_plan=plan.support_plan,
        prompt_backend="manualllm",
        response_file=f"prompts/{task['id']}.response.md",
        library=library,
    )


def section(text: str, heading: str) -> str:
    """The body of one '## heading' section of a rendered prompt."""
    parts = text.split(f"## {heading}\n", 1)
    assert len(parts) == 2, f"no section {heading!r} in:\n{text}"
    return parts[1].split("\n## ", 1)[0].strip()


def test_base_library_ships_in_the_package_and_renders(tmp_path: Path) -> None:
    cap, ovl = write_spec(tmp_path / "spec")
    out = render(cap, ovl)
    for heading in ("System", "Goal", "Target facts", "Implementation focus", "Evidence", "Write scope", "Acceptance", "Validation", "Response contract"):
        section(out.text, heading)
    assert "+v, +zvl256b" in section(out.text, "Target facts")
    assert "`prompts/implement_llvm_ukernel.response.md`" in out.text
    layers = [s["layer"] for s in out.sources]
    assert layers[0] == "base" and "family:llvm_ukernel" in layers
    assert (pr.library_root() / "base").is_dir()


def test_layers_apply_in_order_with_merge_modes(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    files = {
        "base/10.md": frag("goal", "BASE GOAL"),
        "base/20.md": frag("acceptance", "BASE ACCEPT", merge="replace"),
        "families/llvm_ukernel/10.md": frag("goal", "FAMILY FIRST", merge="prepend"),
        "tasks/implement_llvm_ukernel.md": frag("acceptance", "TASK ACCEPT", merge="replace"),
    }
    for rel, text in files.items():
        (lib / rel).parent.mkdir(parents=True, exist_ok=True)
        (lib / rel).write_text(text)
    cap, ovl = write_spec(
        tmp_path / "spec",
        {
            "prompts/target/10.md": frag("goal", "TARGET {{ target.display_name }}"),
            "prompts/overlays/sim/10.md": frag("goal", "OVERLAY {{ deployment.name }}"),
            "prompts/overlays/other/10.md": frag("goal", "NEVER: another deployment's folder"),
        },
    )
    out = render(cap, ovl, library=lib)
    goal = section(out.text, "Goal")
    assert goal.split("\n\n") == ["FAMILY FIRST", "BASE GOAL", "TARGET Prompt Check", "OVERLAY sim"]
    assert section(out.text, "Acceptance") == "TASK ACCEPT"
    assert "NEVER" not in out.text
    assert [s["layer"] for s in out.sources] == ["base", "base", "family:llvm_ukernel", "task:implement_llvm_ukernel", "target", "overlay:sim"]
    # Without the overlay, the overlay layer is not read at all.
    assert "OVERLAY" not in render(cap, None, library=lib).text


def test_selectors_filter_fragments(tmp_path: Path) -> None:
    cap, ovl = write_spec(
        tmp_path / "spec",
        {
            "prompts/target/10.md": frag("goal", "FOR RUNTIME ONLY", families=["runtime_hal"]),
            "prompts/target/20.md": frag("goal", "FOR THIS TASK", task_ids="implement_llvm_ukernel"),
            "prompts/target/30.md": frag("goal", "FOR ANOTHER TARGET", targets=["someone_else"]),
            "prompts/target/40.md": frag("goal", "FOR SIM", deployment_profiles=["sim"]),
            "prompts/target/50.md": frag("goal", "FOR LLVM STYLE", integration_styles=["llvm_ukernel", "runtime_hal"]),
            "prompts/target/60.md": frag("goal", "FOR NONE BACKEND", prompt_backends="none"),
        },
    )
    goal = section(render(cap, ovl).text, "Goal")
    assert "FOR THIS TASK" in goal and "FOR SIM" in goal and "FOR LLVM STYLE" in goal
    for absent in ("FOR RUNTIME ONLY", "FOR ANOTHER TARGET", "FOR NONE BACKEND"):
        assert absent not in goal
    assert "FOR SIM" not in section(render(cap, None).text, "Goal")


def test_target_family_selector_applies(tmp_path: Path) -> None:
    cap, ovl = write_spec(
        tmp_path / "spec",
        {
            "prompts/target/10.md": frag("goal", "FOR RVV TARGETS", families=["rvv_cpu_extension"]),
            "prompts/target/20.md": frag("goal", "FOR GPU TARGETS", families=["simt_gpu_hal"]),
        },
    )
    goal = section(render(cap, ovl).text, "Goal")
    assert "FOR RVV TARGETS" in goal and "FOR GPU TARGETS" not in goal


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("---\nsection: goal\nfamilies: [llvm_ukernell]\n---\nx\n", r"10-bad\.md:3: unknown families value 'llvm_ukernell'.*did you mean 'llvm_ukernel'\?"),
        (
            "---\nsection: goal\nfamilies:\n  - shared\n  - runtime_hall\n---\nx\n",
            r"10-bad\.md:5: unknown families value 'runtime_hall'.*did you mean 'runtime_hal'\?",
        ),
        ("---\nsection: goal\ntask_ids: implement_llvm_kernel\n---\nx\n", r"10-bad\.md:3: unknown task_ids value .*did you mean 'implement_llvm_ukernel'\?"),
        ("---\nsection: goal\nphases: [compile]\n---\nx\n", r"10-bad\.md:3: unknown phases value 'compile'.*did you mean 'compiler'\?"),
        ("---\nsection: goal\nprompt_backends: [zzz]\n---\nx\n", r"10-bad\.md:3: unknown prompt_backends value 'zzz'.*expected one of: none, manualllm"),
    ],
)
def test_unknown_closed_selector_values_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    cap, ovl = write_spec(tmp_path / "spec", {"prompts/target/10-bad.md": text})
    with pytest.raises(BadInput, match=expected):
        render(cap, ovl)


def test_open_selectors_accept_any_name(tmp_path: Path) -> None:
    cap, ovl = write_spec(tmp_path / "spec", {"prompts/target/10.md": frag("goal", "X", targets=["not_yet_written"], deployment_profiles=["lab42"])})
    assert "X" not in section(render(cap, ovl).text, "Goal")


def test_unknown_selector_value_is_one_line_and_exit_2_from_the_cli(tmp_path: Path) -> None:
    cap, ovl = write_spec(tmp_path / "spec", {"prompts/target/10-bad.md": "---\nsection: goal\nfamilies: [llvm_ukernell]\n---\nx\n"})
    proc = run_cli("targetgen", "orchestrate", str(cap), "--overlay", str(ovl), "--out-dir", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "10-bad.md:3:" in lines[0] and "did you mean 'llvm_ukernel'" in lines[0], proc.stderr


def test_comma_list_filter() -> None:
    assert pr.comma_list(["+v", "+m"]) == "+v, +m"
    assert pr.comma_list([]) == ""
    assert pr.comma_list(None) == ""
    assert pr.comma_list("x") == "x"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (frag("goal", "Hello {{ targt.name }}"), r"10-bad\.md:5: undefined template variable: 'targt' is undefined"),
        (frag("goal", "Line one\n{{ deployment.nmae }}"), r"10-bad\.md:6: undefined template variable: .*nmae"),
        (frag("goal", "{% if %}"), r"10-bad\.md:5: template syntax error"),
        ("no frontmatter here\n", r"10-bad\.md:1: prompt fragment must start with YAML frontmatter"),
        ("---\nsection: goal\nbody without end\n", r"10-bad\.md:1: prompt frontmatter is not closed"),
        ("---\nsectoin: goal\n---\nx\n", r"10-bad\.md: unknown prompt frontmatter key 'sectoin' \(did you mean 'section'\?\)"),
        ("---\nsection: goals\n---\nx\n", r"10-bad\.md: unknown prompt section 'goals' .*did you mean 'goal'"),
        ("---\nmerge: append\n---\nx\n", r"10-bad\.md: prompt frontmatter has no 'section'"),
        ("---\nsection: goal\nmerge: overwrite\n---\nx\n", r"10-bad\.md: unknown merge mode 'overwrite'"),
        ("---\nsection: goal\nfamilies: 3\n---\nx\n", r"10-bad\.md: prompt frontmatter 'families' must be"),
        ("---\nsection: [goal\n---\nx\n", r"10-bad\.md:\d+: bad prompt frontmatter"),
        ("---\n- a list\n---\nx\n", r"10-bad\.md:2: prompt frontmatter must be a mapping"),
        (frag("goal", "ok\n{{ 1 / 0 }}"), r"10-bad\.md:6: template error: division by zero"),
    ],
)
def test_strict_rendering_names_the_fragment(tmp_path: Path, text: str, expected: str) -> None:
    cap, ovl = write_spec(tmp_path / "spec", {"prompts/target/10-bad.md": text})
    with pytest.raises(BadInput, match=expected) as info:
        render(cap, ovl)
    assert str(tmp_path / "spec" / "prompts" / "target" / "10-bad.md") in str(info.value)


def test_bad_fragment_is_one_line_and_exit_2_from_the_cli(tmp_path: Path) -> None:
    cap, ovl = write_spec(tmp_path / "spec", {"prompts/target/10-bad.md": frag("target_facts", "{{ isa.featurs | comma_list }}")})
    proc = run_cli("targetgen", "orchestrate", str(cap), "--overlay", str(ovl), "--out-dir", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "10-bad.md:5:" in lines[0] and "featurs" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    # Nothing half-written: no state for a target whose prompts do not render.
    assert not (tmp_path / "out" / "promptcheck" / "execution_state.json").exists()


def test_prompt_backend_none_writes_no_prompts(tmp_path: Path) -> None:
    cap, ovl = write_spec(tmp_path / "spec", {"prompts/target/10-bad.md": frag("goal", "{{ undefined_name }}")})
    # With no prompt backend the fragments are not rendered, so a bad one does not matter.
    result = orchestrate(cap, ovl, out_dir=tmp_path / "out", prompt_backend="none")
    assert not (result.target_dir / "prompts").exists()
    bundle = json.loads((result.target_dir / "execution_bundle.json").read_text())
    assert all(t["prompt_file"] is None for t in bundle["tasks"])


UPSTREAM_WITH_FRAGMENTS = [c for c in upstream_targets() if (c.parent / "prompts").is_dir()]


@pytest.mark.skipif(not UPSTREAM_WITH_FRAGMENTS, reason="no upstream specs with prompt fragments in ../shared")
@pytest.mark.parametrize("capability", UPSTREAM_WITH_FRAGMENTS, ids=[c.parent.name for c in UPSTREAM_WITH_FRAGMENTS])
def test_upstream_fragments_are_picked_up(tmp_path: Path, capability: Path) -> None:
    """Every upstream target/ and overlays/<deployment>/ fragment lands in the prompt packets, rendered."""
    overlays = sorted((capability.parent / "overlays").glob("*.yaml"))
    for overlay in overlays:
        result = orchestrate(capability, overlay, out_dir=tmp_path / overlay.stem)
        bundle = json.loads((result.target_dir / "execution_bundle.json").read_text())
        packets = [result.target_dir / t["prompt_file"] for t in bundle["tasks"] if t["prompt_file"]]
        assert packets
        deployment = yaml.safe_load(overlay.read_text())["deployment"]["name"]
        wanted = sorted((capability.parent / "prompts" / "target").glob("*.md"))
        wanted += sorted((capability.parent / "prompts" / "overlays" / deployment).glob("*.md"))
        assert wanted
        for packet in packets:
            text = packet.read_text()
            assert "{{" not in text and "{%" not in text
            for fragment in wanted:
                first_words = fragment.read_text().split("---\n", 2)[2].strip().split("{{")[0][:40]
                assert first_words in text, f"{fragment} not in {packet}"
            assert f"`{deployment}`" in text or deployment in text
        sources = [s["file"] for t in bundle["tasks"] for s in t["prompt_sources"]]
        assert any(s.startswith("spec:prompts/target/") for s in sources)
        assert any(s.startswith(f"spec:prompts/overlays/{deployment}/") for s in sources)


def test_upstream_spacemit_features_render_with_comma_list(tmp_path: Path) -> None:
    capability = UPSTREAM / "spacemit_x60_xsmtvdot" / "capability.yaml"
    if not capability.exists():
        pytest.skip("upstream spacemit spec not available")
    # Copy so the test does not depend on the shared folder staying writable or unchanged.
    spec = tmp_path / "spacemit"
    shutil.copytree(capability.parent, spec)
    result = orchestrate(spec / "capability.yaml", spec / "overlays" / "board_linux.yaml", out_dir=tmp_path / "out")
    text = (result.target_dir / "prompts" / "implement_llvm_ukernel.prompt.md").read_text()
    assert "keep `+m, +a, +f, +d, +c, +v, +zvl256b, +xsmtvdot` visible" in text
    assert "The `board_linux` overlay is a board-oriented Linux deployment" in text
