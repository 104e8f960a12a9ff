"""The pydantic-free checker (merlin.spec.fast) against the pydantic models.

The fast checker may only accept what the models accept, with the same
result: the same dump, the same given keys, the same facts, the same plan.
Checked on every example and upstream spec, and on thousands of seeded
mutations of them (keys dropped, values swapped for wrong types, unknown keys
added, names made unsafe). Where the models accept a plain-JSON document the
fast checker must accept it too, or validate/plan would quietly pay for
pydantic again.
"""

from __future__ import annotations

import copy
import math
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from merlin.errors import SpecError
from merlin.spec import fast, models, shape
from merlin.spec.yamlsafe import load_yaml
from tests.conftest import EXAMPLES, UPSTREAM

REPO = Path(__file__).resolve().parents[1]
BAD_INPUTS = Path(__file__).parent / "bad_inputs"


def _corpus() -> list[Path]:
    files = sorted(EXAMPLES.rglob("*.yaml")) + sorted(UPSTREAM.rglob("*.yaml")) if UPSTREAM.is_dir() else sorted(EXAMPLES.rglob("*.yaml"))
    files += sorted(BAD_INPUTS.glob("*.yaml"))
    found = []
    for f in files:
        try:
            if isinstance(load_yaml(f, kind="spec", duplicates="collect").data, dict):
                found.append(f)
        except SpecError:  # empty, a tab: refused before any checker runs
            continue
    return found


def _kind(data: dict[str, Any]) -> str:
    return "overlay" if "deployment" in data else "capability"


def _pydantic(data: Any, kind: str) -> Any:
    model = models.CapabilitySpec if kind == "capability" else models.DeploymentOverlay
    try:
        return model.model_validate(data)
    except Exception:
        return None


def _same_given(view: Any, model: Any, where: str = "") -> None:
    """model_fields_set agrees at every level (the planner reads it)."""
    if isinstance(model, models.BaseModel):
        assert isinstance(view, fast.SpecView), where
        assert view.model_fields_set == model.model_fields_set, where
        assert fast.facts_of(view) == fast.facts_of(model), where
        for name in type(model).model_fields:
            _same_given(getattr(view, name), getattr(model, name), f"{where}.{name}")
    elif isinstance(model, list):
        assert len(view) == len(model), where
        for i, (a, b) in enumerate(zip(view, model, strict=True)):
            _same_given(a, b, f"{where}[{i}]")
    elif isinstance(model, dict):
        assert list(view) == list(model), where
        for key in model:
            _same_given(view[key], model[key], f"{where}.{key}")
    else:
        assert view == model and type(view) is type(model), (where, view, model)


def _json_native(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if value is None or isinstance(value, (str, int, bool)):
        return True
    if isinstance(value, list):
        return all(_json_native(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_native(v) for k, v in value.items())
    return False


def _compare(data: Any, kind: str, label: str) -> bool:
    """Both checkers on one document; True when the models accept it."""
    view = fast.check(copy.deepcopy(data), kind)
    model = _pydantic(copy.deepcopy(data), kind)
    if view is not None:
        assert model is not None, f"{label}: the fast checker accepted what the models refuse"
        assert view.model_dump() == model.model_dump(), label
        assert view.model_dump(mode="json") == model.model_dump(mode="json"), label
        assert fast.open_facts(view) == fast.open_facts(model), label
        _same_given(view, model, label)
        if kind == "capability":
            assert [c.model_dump() for c in view.access.credentials()] == [c.model_dump() for c in model.access.credentials()], label
    elif model is not None:
        assert not _json_native(data), f"{label}: the models accept a plain-JSON document the fast checker did not vouch for"
    return model is not None


def test_shape_is_generated_from_the_models() -> None:
    assert shape.TARGET.read_text(encoding="utf-8") == shape.render(), "run: python -m merlin.spec.shape --write"


def test_every_corpus_document_agrees() -> None:
    files = _corpus()
    accepted = []
    for f in files:
        data = load_yaml(f, kind="spec", duplicates="collect").data
        if _compare(data, _kind(data), str(f)):
            accepted.append(f)
    assert len(accepted) >= 20, f"only {len(accepted)} valid documents in the corpus"


_WRONG: list[Any] = [None, True, False, 0, -1, 1, 2, 1.5, -0.5, float("nan"), float("inf"), "", "x", "..", "a..b", "ok-name", "a\n", "a/b",
                     "cpu_only", "none", "llvm_intrinsics", "board", "compile_only", [], [1], ["x"], ["x", "x"], ["compile_only", "compile_only"], [[1, 2]], {}, {"a": 1}, {"name": "c"}, {1: "x"}]  # fmt: skip


def _paths(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [at]
    if isinstance(value, dict):
        for k, v in value.items():
            found += _paths(v, (*at, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _paths(v, (*at, i))
    return found


def _mutate(data: Any, rng: random.Random) -> Any:
    doc = copy.deepcopy(data)
    for _ in range(rng.choice((1, 1, 2, 3))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = rng.choice(paths)
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        op = rng.random()
        if op < 0.25 and isinstance(parent, dict):
            del parent[path[-1]]
        elif op < 0.4 and isinstance(parent, dict):
            parent[rng.choice(("extra_fact", "rtl", "kindd", "vlen", path[-1] + "_x"))] = rng.choice(_WRONG)
        else:
            parent[path[-1]] = copy.deepcopy(rng.choice(_WRONG))
    return doc


@pytest.mark.parametrize("seed", range(4))
def test_mutations_agree(seed: int) -> None:
    """Seeded mutations of every valid document: the fast checker never accepts what the models refuse."""
    rng = random.Random(seed)
    bases = [load_yaml(f, kind="spec", duplicates="collect").data for f in _corpus()]
    bases = [b for b in bases if _pydantic(b, _kind(b)) is not None]
    accepted = refused = 0
    for n in range(600):
        base = bases[n % len(bases)]
        doc = _mutate(base, rng)
        if _compare(doc, _kind(base), f"seed {seed} #{n}: {doc!r:.300}"):
            accepted += 1
        else:
            refused += 1
    assert accepted > 50 and refused > 200, (accepted, refused)  # both sides of the line were exercised


def _plan(tmp: Path, cap: Path, overlay: Path | None, checker: str) -> dict[str, bytes]:
    out = tmp / checker
    cmd = [sys.executable, "-m", "merlin", "targetgen", "plan", str(cap), "--out-dir", str(out)]
    if overlay is not None:
        cmd += ["--overlay", str(overlay)]
    env = {**os.environ, "MERLIN_SPEC_CHECKER": checker}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _pairs() -> list[tuple[Path, Path | None]]:
    pairs: list[tuple[Path, Path | None]] = []
    for root in [EXAMPLES, UPSTREAM]:
        for cap in sorted(root.glob("*/capability.yaml")) if root.is_dir() else []:
            overlays = sorted((cap.parent / "overlays").glob("*.yaml"))
            pairs.append((cap, overlays[0] if overlays else None))
    return pairs


@pytest.mark.parametrize("pair", _pairs(), ids=lambda p: p[0].parent.name)
def test_plans_are_identical_with_either_checker(pair: tuple[Path, Path | None], tmp_path: Path) -> None:
    cap, overlay = pair
    fast_files = _plan(tmp_path, cap, overlay, "fast")
    assert fast_files, "the plan wrote nothing"
    assert fast_files == _plan(tmp_path, cap, overlay, "pydantic")


def test_validate_and_plan_of_a_valid_spec_never_import_pydantic(tmp_path: Path) -> None:
    cap = EXAMPLES / "gemmini_rocc_dev" / "capability.yaml"
    probe = (
        "import runpy, sys\n"
        "sys.argv = ['merlin'] + sys.argv[1:]\n"
        "try:\n    runpy.run_module('merlin', run_name='__main__')\n"
        "except SystemExit as exc:\n    code = exc.code\n"
        "print('PYDANTIC' if any(m == 'pydantic' or m.startswith('pydantic.') for m in sys.modules) else 'CLEAN', code)\n"
    )
    for args in (["targetgen", "validate", str(cap)], ["targetgen", "plan", str(cap), "--out-dir", str(tmp_path / "p")]):
        proc = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=60)
        assert proc.stdout.strip().splitlines()[-1] == "CLEAN 0", (args, proc.stdout, proc.stderr)
    bad = tmp_path / "bad.yaml"
    bad.write_text(cap.read_text(encoding="utf-8").replace("schema_version: 1", "schema_version: 2"), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-c", probe, "targetgen", "validate", str(bad)], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip().splitlines()[-1] == "PYDANTIC 2", "an invalid spec is worded by the models"
    assert "schema_version: 2 is not supported (expected 1)" in proc.stderr


def test_a_view_reads_as_its_model() -> None:
    data = load_yaml(EXAMPLES / "gemmini_rocc_dev" / "capability.yaml", kind="spec").data
    view = fast.check(data, "capability")
    assert view is not None
    with pytest.raises(TypeError):
        view.target = None  # frozen, as the models are
    with pytest.raises(AttributeError):
        _ = view.no_such_field
    assert view.target.name == data["target"]["name"]
    assert view == fast.check(copy.deepcopy(data), "capability")


_EDGES: dict[str, list[tuple[tuple[str, ...], Any]]] = {
    "capability": [
        (("access", "verification_gates"), ["compile_only", "compile_only"]),
        (("access", "verification_gates"), ["compile_only", "smoke_run"]),
        (("access", "credential_requirements"), "none"),
        (("access", "credential_requirements"), "my-cred"),
        (("access", "credential_requirements"), "a..b"),
        (("access", "credential_requirements"), [{"name": "c", "env": "1BAD"}]),
        (("access", "credential_requirements"), [{"name": "c", "env": "GOOD_ENV"}]),
        (("target", "name"), "a..b"),
        (("target", "name"), "name\n"),
        (("target", "name"), "x" * 128),
        (("target", "name"), "x" * 129),
        (("schema_version",), True),
        (("schema_version",), 1.0),
        (("geometry", "vector", "vlen_bits"), 0),
        (("geometry", "vector", "vlen_bits"), True),
        (("geometry", "vector", "vlen_bits"), 128),
        (("geometry", "native_tile_options"), [[1, 2, 3, 4, 5]]),
        (("geometry", "native_tile_options"), [[]]),
        (("geometry", "native_tile_options"), [[16, 16]]),
        (("verification", "tolerances"), {"fp8": {"atol": -1}}),
        (("verification", "tolerances"), {"fp8": {"atol": 1, "note": "x"}}),
        (("operations", "compute"), []),
        (("memory", "spaces"), []),
        (("memory", "packing"), {"requires_pack": True}),
    ],
    "overlay": [
        (("deployment", "chipyard", "sha"), "ABCDEF0"),
        (("deployment", "chipyard", "sha"), "abcdef0"),
        (("deployment", "preflight", "timeout_s"), 0),
        (("deployment", "preflight", "timeout_s"), 3600),
        (("deployment", "preflight", "timeout_s"), 3601),
        (("deployment", "resources"), [{"pool": "p", "count": 0}]),
        (("deployment", "resources"), [{"pool": "p", "count": 2, "labels": {"board": "u250"}}]),
        (("deployment", "name"), ".."),
        (("deployment", "mode"), "firesim"),
        (("deployment", "mode"), "fire-sim"),
        (("deployment", "extra"), {"when": "2024-01-01", "n": [1, {"k": None}]}),
    ],
}


def _set(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        doc = doc.setdefault(part, {}) if isinstance(doc.get(part, {}), dict) else doc
    doc[path[-1]] = copy.deepcopy(value)


def test_every_constraint_edge_agrees() -> None:
    """Each constraint the shape compiles, just inside and just outside, on every valid document."""
    bases = [load_yaml(f, kind="spec", duplicates="collect").data for f in _corpus()]
    outcomes = set()
    for base in (b for b in bases if _pydantic(b, _kind(b)) is not None):
        for path, value in _EDGES[_kind(base)]:
            doc = copy.deepcopy(base)
            _set(doc, path, value)
            outcomes.add(_compare(doc, _kind(base), f"{'.'.join(path)} = {value!r}"))
    assert outcomes == {True, False}
