"""TargetGen's record files have published JSON Schemas (docs/records/targetgen/):
the committed schemas equal what merlin.targetgen.records produces, and real
outputs for every example target and overlay validate against them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import EXAMPLES, REPO
from merlin.targetgen import executor as ex
from merlin.targetgen import state as st

jsonschema = pytest.importorskip("jsonschema")

SCHEMAS = REPO / "docs" / "records" / "targetgen"
REGEN = "run `python -m merlin.targetgen.records docs/records/targetgen`"
CASES = [
    pytest.param(cap, ovl, id=f"{cap.parent.name}-{ovl.stem}")
    for cap in sorted(EXAMPLES.glob("*/capability.yaml"))
    for ovl in sorted((cap.parent / "overlays").glob("*.yaml"))
]


def schema(stem: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{stem}.schema.json").read_text())


def check(path: Path, stem: str) -> None:
    data = json.loads(path.read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema(stem)).iter_errors(data), key=str)
    assert not errors, f"{path} does not match {stem}.schema.json: " + "; ".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5]
    )


def test_committed_schemas_match_models() -> None:
    from merlin.targetgen.records import schemas

    produced = schemas()
    committed = {p.name for p in SCHEMAS.glob("*.schema.json")}
    assert committed == set(produced), REGEN
    for name, value in produced.items():
        assert json.loads((SCHEMAS / name).read_text()) == value, f"docs/records/targetgen/{name} is stale: {REGEN}"


def test_every_example_has_overlays() -> None:
    assert len(CASES) >= 7


@pytest.mark.parametrize(("cap", "ovl"), CASES)
def test_example_outputs_validate(tmp_path: Path, cap: Path, ovl: Path) -> None:
    ex.orchestrate(cap, ovl, out_dir=tmp_path)
    target = tmp_path / cap.parent.name
    ex.execute(target)
    # Drive a few rounds (answers, responses, a paused answer), so answers, waivers,
    # request answers and pauses, proposals and ignored answers are all written.
    paused = False
    for _ in range(6):
        status = ex.status(target)
        if status.open_question:
            q = status.open_question
            if not paused:
                ex.answer(target, q["id"], "pause")
                paused = True
            ex.answer(target, q["id"], q["recommended_option"], note="schema test")
        elif status.awaiting_response:
            (target / status.awaiting_response["response_file"]).write_text("# Proposal\n\nDo the thing.\n")
        else:
            break
        ex.execute(target)
    blocked = [t for t, r in json.loads((target / "execution_state.json").read_text())["tasks"].items() if r["state"] == "blocked"]
    if blocked:
        ex.retry(target, blocked[0], reason="schema test")

    for name in ("support_plan", "task_graph", "verification_manifest", "execution_bundle", "execution_state"):
        check(target / f"{name}.json", name)
    views = sorted((target / "task_states").glob("*.json"))
    assert views
    for view in views:
        assert json.loads(view.read_text())["schema_version"] == st.TASK_STATE_SCHEMA_VERSION
        check(view, "task_state")
    for request in sorted((target / "operator_requests").glob("*.json")):
        check(request, "operator_request")
    answer_schema = schema("answer")
    for line in (target / "answers.jsonl").read_text().splitlines() if (target / "answers.jsonl").exists() else []:
        record = json.loads(line)
        assert record["schema_version"] == st.ANSWER_SCHEMA_VERSION
        jsonschema.validate(record, answer_schema)


def test_old_files_without_schema_version_are_still_valid_and_read(tmp_path: Path) -> None:
    cap = EXAMPLES / "x86_cpu_baseline" / "capability.yaml"
    ex.orchestrate(cap, None, out_dir=tmp_path)
    target = tmp_path / "x86_cpu_baseline"
    view = json.loads(next((target / "task_states").glob("*.json")).read_text())
    del view["schema_version"]
    jsonschema.validate(view, schema("task_state"))
    old_answer = {"answer_id": "a1", "question_id": "q1", "choice": "pause", "at": "2026-01-01T00:00:00Z", "by": "pid 1"}
    jsonschema.validate(old_answer, schema("answer"))
    (target / "answers.jsonl").write_text(json.dumps(old_answer) + "\n")
    assert [a["answer_id"] for a in st.read_answers(st.open_target_dir(target))] == ["a1"]


def test_schemas_reject_what_merlin_never_writes(tmp_path: Path) -> None:
    cap = EXAMPLES / "x86_cpu_baseline" / "capability.yaml"
    ex.orchestrate(cap, None, out_dir=tmp_path)
    target = tmp_path / "x86_cpu_baseline"
    state = json.loads((target / "execution_state.json").read_text())
    first = state["task_order"][0]
    for broken in (
        {**state, "schema_version": 2},
        {**state, "surprise": 1},
        {**state, "tasks": {**state["tasks"], first: {**state["tasks"][first], "state": "done"}}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema("execution_state"))
