"""The committed JSON Schemas (target_specs/schema/) are what
`merlin targetgen schema` prints, and they really describe the format: every
upstream and example spec validates against them with the `jsonschema`
library (so editors can use them), and broken specs do not."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

import conftest
from cli_runner import run_cli
from conftest import REPO, example_targets, overlays_for
from merlin.spec.schema import SCHEMA_FILES, json_schema

# ../shared beside the repo; a worktree (wt/<name>/) finds it one level further up.
UPSTREAM = conftest.UPSTREAM if conftest.UPSTREAM.is_dir() else REPO.parent.parent / "shared" / "upstream-specs"


def upstream_targets() -> list[Path]:
    return sorted(UPSTREAM.glob("*/capability.yaml")) if UPSTREAM.is_dir() else []

SCHEMA_DIR = REPO / "target_specs" / "schema"
BAD_INPUTS = REPO / "tests" / "bad_inputs"


def _committed(kind: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / SCHEMA_FILES[kind]).read_text())


def _validator(kind: str) -> jsonschema.protocols.Validator:
    schema = _committed(kind)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _errors(kind: str, data: Any) -> list[str]:
    return sorted(f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in _validator(kind).iter_errors(data))


@pytest.mark.parametrize("kind", sorted(SCHEMA_FILES))
def test_committed_schema_matches_cli_output(kind: str) -> None:
    result = run_cli("targetgen", "schema", kind)
    assert result.returncode == 0, result.stderr
    committed = (SCHEMA_DIR / SCHEMA_FILES[kind]).read_text()
    regenerate = f".venv/bin/python -m merlin targetgen schema {kind} > target_specs/schema/{SCHEMA_FILES[kind]}"
    assert result.stdout == committed, f"target_specs/schema/{SCHEMA_FILES[kind]} is stale; regenerate with: {regenerate}"
    assert json.loads(committed) == json_schema(kind)


def test_schema_command_rejects_unknown_kind() -> None:
    result = run_cli("targetgen", "schema", "widget")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "expected capability or overlay" in result.stderr


def _spec_files() -> list[tuple[str, Path]]:
    files: list[tuple[str, Path]] = []
    for capability in upstream_targets() + example_targets():
        files.append(("capability", capability))
        files += [("overlay", overlay) for overlay in overlays_for(capability)]
    files.append(("capability", BAD_INPUTS / "base_capability.yaml"))
    files.append(("overlay", BAD_INPUTS / "base_overlay.yaml"))
    files.append(("capability", BAD_INPUTS / "open_facts_capability.yaml"))  # a fact in every open mapping
    files.append(("overlay", BAD_INPUTS / "open_facts_overlay.yaml"))
    return files


def _file_id(item: tuple[str, Path]) -> str:
    kind, path = item
    if kind == "overlay":
        return f"{path.parent.parent.name}+{path.stem}"
    return path.parent.name if path.name == "capability.yaml" else path.stem


SPEC_FILES = _spec_files()


def test_examples_exist() -> None:
    assert len(example_targets()) >= 6


@pytest.mark.parametrize("item", SPEC_FILES, ids=[_file_id(i) for i in SPEC_FILES])
def test_spec_validates_against_committed_schema(item: tuple[str, Path]) -> None:
    kind, path = item
    assert _errors(kind, yaml.safe_load(path.read_text())) == []


def _base(kind: str) -> dict[str, Any]:
    name = "base_capability.yaml" if kind == "capability" else "base_overlay.yaml"
    return yaml.safe_load((BAD_INPUTS / name).read_text())


def _broken(kind: str, path: tuple[str, ...], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(_base(kind))
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return data


BROKEN = [
    ("capability", ("schema_version",), 2, "schema_version"),
    ("capability", ("schema_version",), True, "schema_version"),
    ("capability", ("execution_model", "kind"), "gpu", "execution_model.kind"),
    ("capability", ("isa", "exposure", "kind"), "llvm", "isa.exposure.kind"),
    ("capability", ("geometry", "vector", "vlen_bits"), True, "geometry.vector.vlen_bits"),
    ("capability", ("isa", "exposure", "needs_new_intrinsics"), 1, "isa.exposure.needs_new_intrinsics"),
    ("capability", ("target", "name"), "../evil", "target.name"),
    ("capability", ("target", "nmae"), "x", "target"),
    ("capability", ("runtime",), None, "runtime"),
    ("capability", ("access", "verification_gates"), ["smoke"], "access.verification_gates.0"),
    ("capability", ("access", "verification_gates"), ["compile_only", "compile_only"], "access.verification_gates"),
    ("overlay", ("deployment", "mode"), "fpga", "deployment.mode"),
    ("overlay", ("deployment", "chipyard", "sha"), "HEAD", "deployment.chipyard.sha"),
    ("overlay", ("deployment", "colour"), "blue", "deployment"),
]


@pytest.mark.parametrize("kind, path, value, where", BROKEN, ids=[f"{k}:{'.'.join(p)}={v!r}" for k, p, v, _ in BROKEN])
def test_broken_spec_fails_schema(kind: str, path: tuple[str, ...], value: Any, where: str) -> None:
    errors = _errors(kind, _broken(kind, path, value))
    assert errors, f"the schema accepted {'.'.join(path)} = {value!r}"
    assert any(e.startswith(where + ":") for e in errors), errors


def test_missing_required_section_fails_schema() -> None:
    data = _base("capability")
    del data["execution_model"]
    assert any("'execution_model' is a required property" in e for e in _errors("capability", data))


# Exactly the open fact mappings accept keys beyond their properties (issue 8).
OPEN_DEFS = {
    "capability": {"ComputeArray", "VectorGeometry", "Facility", "Tolerance", "Layouts", "Packing", "Quantization", "RuntimeSync"},
    "overlay": {"Chipyard", "DeploymentRuntime"},
}


@pytest.mark.parametrize("kind", sorted(SCHEMA_FILES))
def test_additional_properties_exactly_in_open_mappings(kind: str) -> None:
    schema = _committed(kind)
    open_defs = {name for name, d in schema["$defs"].items() if d.get("additionalProperties") is not False}
    assert open_defs == OPEN_DEFS[kind]
    assert all(schema["$defs"][name]["additionalProperties"] is True for name in open_defs)
    assert schema["additionalProperties"] is False, "the top level is strict, as upstream's"
    if kind == "overlay":
        extra = schema["$defs"]["Deployment"]["properties"]["extra"]
        assert extra["type"] == "object" and extra.get("additionalProperties", True) is not False


@pytest.mark.parametrize(
    "kind, path, key",
    [
        ("capability", ("geometry", "compute_array"), "rows"),
        ("capability", ("verification", "simulator"), "cycle_accurate"),
        ("capability", ("numeric", "quantization"), "scale_granularity"),
        ("overlay", ("deployment", "chipyard"), "submodules"),
    ],
)
def test_schema_accepts_facts_and_refuses_typos_beside_them(kind: str, path: tuple[str, ...], key: str) -> None:
    data = copy.deepcopy(_base(kind))
    node = data
    for part in path:
        node = node.setdefault(part, {})
    node[key] = 1
    assert _errors(kind, data) == []
    typo = copy.deepcopy(_base(kind))
    node = typo
    for part in path[:-1]:
        node = node[part]
    node[path[-1] + "s_typo"] = {key: 1}
    assert any(e.startswith(".".join(path[:-1]) + ":") for e in _errors(kind, typo))


def test_schema_refuses_empty_compute_and_spaces_and_dot_dot_names() -> None:
    assert any(e.startswith("operations.compute:") for e in _errors("capability", _broken("capability", ("operations", "compute"), [])))
    assert any(e.startswith("memory.spaces:") for e in _errors("capability", _broken("capability", ("memory",), {"spaces": []})))
    assert any(e.startswith("target.name:") for e in _errors("capability", _broken("capability", ("target", "name"), "ok..name")))
    assert _errors("capability", _broken("capability", ("access", "credential_requirements"), "aihub_api_token")) == []
