"""Our own example targets (target_specs/examples/): each validates with each of
its overlays, together they cover every integration style and deployment mode,
the README's table says what they really exercise, and their prompt fragments
use upstream's frontmatter and render against the spec's fields."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import EXAMPLES, example_targets, overlays_for
from merlin.spec import load_capability, load_overlay, load_pair
from merlin.spec.models import DeploymentMode
from merlin.spec.pairing import spec_warnings
from merlin.targetgen.rules import STYLES, integration_styles

TARGETS = example_targets()
IDS = [c.parent.name for c in TARGETS]


def _readme_styles() -> dict[str, list[str]]:
    """Target -> styles, from the table in target_specs/examples/README.md."""
    rows: dict[str, list[str]] = {}
    for line in (EXAMPLES / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = [s.strip() for s in cells[2].split("+")]
    return rows


def test_enough_examples() -> None:
    assert len(TARGETS) >= 6, TARGETS


@pytest.mark.parametrize("capability", TARGETS, ids=IDS)
def test_example_validates_with_each_overlay(capability: Path) -> None:
    assert load_capability(capability).model.target.name == capability.parent.name
    overlays = overlays_for(capability)
    assert 1 <= len(overlays) <= 2, "each example has one or two overlays"
    for overlay in overlays:
        cap, ovl = load_pair(capability, overlay)
        assert ovl is not None and ovl.model.deployment.name == overlay.stem
        assert spec_warnings(cap, ovl) == [], "an example must pass --strict"


def test_readme_lists_every_example_with_its_styles() -> None:
    table = _readme_styles()
    assert sorted(table) == sorted(IDS)
    for capability in TARGETS:
        styles, _ = integration_styles(load_capability(capability).model)
        assert sorted(table[capability.parent.name]) == sorted(styles), capability.parent.name


def test_examples_cover_every_style_and_mode() -> None:
    styles_by_target = {c.parent.name: integration_styles(load_capability(c).model)[0] for c in TARGETS}
    assert set().union(*styles_by_target.values()) == set(STYLES)
    assert any(len(styles) >= 2 for styles in styles_by_target.values())
    modes = {load_overlay(o).model.deployment.mode for c in TARGETS for o in overlays_for(c)}
    assert modes == set(DeploymentMode.__args__)  # type: ignore[attr-defined]


def test_cloud_example_declares_its_credential() -> None:
    spec = load_capability(EXAMPLES / "cloud_tpu_like" / "capability.yaml").model
    assert spec.access.model == "cloud_service"
    assert spec.access.availability_class == "cloud_token_required"
    assert [(c.name, c.env) for c in spec.access.credentials()] == [("cloud_matrix_token", "MERLIN_CLOUD_MATRIX_TOKEN")]


def test_preflight_examples() -> None:
    """One example's preflight passes on a plain Linux machine; some overlays have a device probe,
    and some override the probe of an SDK their target requires."""
    preflights = [load_overlay(o).model.deployment.preflight for c in TARGETS for o in overlays_for(c)]
    assert any(p.device_probe for p in preflights)
    assert sum(1 for p in preflights if p.probes) >= 4
    passing = load_overlay(EXAMPLES / "x86_cpu_baseline" / "overlays" / "host_local.yaml").model.deployment.preflight
    commands = [*passing.probes.values(), passing.device_probe]
    assert commands
    for command in commands:
        assert command is not None
        result = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=passing.timeout_s)
        assert result.returncode == 0, f"{command!r} failed: {result.stderr}"


FRAGMENTS = sorted(EXAMPLES.glob("*/prompts/target/*.md"))


def test_at_least_two_examples_have_target_facts() -> None:
    assert len({f.parent.parent.parent.name for f in FRAGMENTS if f.name == "10-target-facts.md"}) >= 2


@pytest.mark.parametrize("fragment", FRAGMENTS, ids=[f.parent.parent.parent.name for f in FRAGMENTS])
def test_prompt_fragment_renders_against_spec(fragment: Path) -> None:
    import jinja2

    _, front, body = fragment.read_text().split("---\n", 2)
    assert yaml.safe_load(front) == {"section": "target_facts", "merge": "append"}
    spec = load_capability(fragment.parent.parent.parent / "capability.yaml").model
    text = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(body).render(**spec.model_dump())
    assert spec.target.name in text or (spec.target.display_name or "") in text
    assert "{{" not in text and "{%" not in text
