"""The OpenAPI input schemas are as strict as the server's own checks (issue 20, item 11): a request
its schema allows is not refused as bad input, for the rules the server applies (run and lease ids,
names, durations, lease bundles, paths, statuses, targetgen_execute's fields), and an operation whose
every argument has a default takes no body. Checked with jsonschema, without schemathesis."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("mcp", reason="the gateway extra is not installed")

from hypothesis import example, given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from merlin.durations import DURATION_PATTERN, POSITIVE_DURATION_PATTERN, parse_duration, seconds
from merlin.errors import BadInput, MerlinError
from merlin.gateway.openapi import document
from merlin.gateway.ops import OPERATIONS, Gateway, by_name
from merlin.leases.book import BUNDLE_PATTERN, parse_bundle
from merlin.ledger.paths import (
    ARTIFACT_NAME_PATTERN,
    LEASE_ID_PATTERN,
    NAME_PATTERN,
    RUN_ID_PATTERN,
    check_relative,
    validate_lease_id,
    validate_name,
    validate_run_id,
)

DOC = document(OPERATIONS)


def schema_accepts(op_name: str, body: dict[str, Any]) -> bool:
    """Whether ``body`` is valid against the operation's request body schema in /openapi.json."""
    root = {"$ref": f"#/components/schemas/{by_name()[op_name].title}Input", "components": DOC["components"]}
    return Draft202012Validator(root).is_valid(body)


def server_refuses(gw: Gateway, op_name: str, body: dict[str, Any]) -> bool:
    try:
        gw.call(op_name, body, client="test")
    except BadInput:
        return True
    except MerlinError:  # not found, blocked: not a refusal of the input
        return False
    return False


def accepted(check: Any, value: str) -> bool:
    try:
        check(value)
    except BadInput:
        return False
    return True


# Each published pattern and the server's check it stands for.
RULES = {
    "run id": (RUN_ID_PATTERN, validate_run_id),
    "lease id": (LEASE_ID_PATTERN, validate_lease_id),
    "name": (NAME_PATTERN, validate_name),
    "duration": (DURATION_PATTERN, seconds),
    "positive duration": (POSITIVE_DURATION_PATTERN, lambda v: parse_duration(v, "ttl", above_zero=True)),
    "bundle": (BUNDLE_PATTERN, parse_bundle),
    "artifact name": (ARTIFACT_NAME_PATTERN, check_relative),
}
# Text near the rules' edges: the characters they are made of, and a few they refuse.
TEXT = st.text(alphabet="abzAZ0179._-:,= /\\\t\x00dhms", max_size=24)


@pytest.mark.parametrize("rule", sorted(RULES))
@given(value=TEXT)
@example(value="")
@example(value="..")
@example(value="abc..d")
@example(value="a/../b")
@example(value="/etc/passwd")
@example(value="a/..")
@example(value="a:1024,k=v")
@example(value="a:1025")
@example(value="1h30m")
@example(value="90")
@example(value="2-03:04:05")
def test_each_pattern_is_the_servers_check(rule: str, value: str) -> None:
    pattern, check = RULES[rule]
    in_schema = Draft202012Validator({"type": "string", "pattern": pattern}).is_valid(value)
    by_server = accepted(check, value)
    if rule == "bundle" and by_server and not in_schema:  # the one place the schema is stricter: a count
        assert ":0" in value  # written with leading zeros (a:007) is read by the server as 7
        return
    assert in_schema == by_server, f"{rule} {value!r}: schema {'allows' if in_schema else 'refuses'} it, the server {'accepts' if by_server else 'refuses'} it"


# The requests schemathesis found the schema allowing and the server refusing (seed 20), one per operation:
# each is now refused by the schema, and still by the server.
FOUND = [
    ("artifacts_fetch", {"name": "", "run_id": ""}),
    ("artifacts_list", {"run_id": ""}),
    ("clusters_status", {"name": ""}),
    ("leases_release", {"lease_id": "", "reason": "0"}),
    ("leases_release", {"lease_id": "lease-1", "force": True}),
    ("leases_release", {"lease_id": "lease-1", "force": True, "reason": "  "}),
    ("leases_renew", {"lease_id": "lease-1", "ttl": "0s"}),
    ("artifacts_fetch", {"name": "", "run_id": "abc"}),
    ("artifacts_fetch", {"name": "/etc/passwd", "run_id": "abc"}),  # (schemathesis, after seed 20)
    ("artifacts_fetch", {"name": "a/../../b", "run_id": "abc"}),
    ("targetgen_execute", {"capability": "a\x00b", "wait": False}),
    ("runs_list", {"full": 0}),
    ("runs_submit", {"command": ["true"], "target": "t", "workflow": "w", "resources": {"x": False}}),
    ("leases_renew", {"lease_id": "lease-1", "ttl": ""}),
    ("leases_reserve", {"bundles": [""], "ttl": "15m"}),
    ("leases_reserve", {"bundles": ["fpga:1"], "ttl": "90"}),
    ("leases_reserve", {"bundles": ["fpga:1"], "priority": 10**7}),
    ("leases_why", {"lease_id": ""}),
    ("review_prompt", {"target_dir": "", "task_id": ""}),
    ("review_questions", {"target_dir": ""}),
    ("review_respond", {"target_dir": "", "task_id": "", "text": "00"}),
    ("runs_cancel", {"run_id": ""}),
    ("runs_list", {"status": ["done"]}),
    ("runs_logs", {"run_id": ""}),
    ("runs_retry", {"cluster": "", "run_id": "abc"}),
    ("runs_status", {"refresh": False, "run_id": "a..b"}),
    ("runs_submit", {"command": ["true"], "target": "", "workflow": "w"}),
    ("runs_wait", {"run_id": "", "timeout": 1}),
    ("runs_why", {"run_id": "AB"}),
    ("targetgen_answer", {"choice": "", "question_id": "", "target_dir": ""}),
    ("targetgen_execute", {}),
    ("targetgen_execute", {"capability": "c.yaml", "target_dir": "t"}),
    ("targetgen_execute", {"target_dir": "t", "overlay": "o.yaml"}),
    ("targetgen_execute", {"target_dir": "t", "strict": True}),
    ("targetgen_explain", {"capability": ""}),
    ("targetgen_orchestrate", {"capability": ""}),
    ("targetgen_plan", {"capability": "c.yaml", "out_dir": ""}),
    ("targetgen_retry", {"target_dir": ""}),
    ("targetgen_status", {"target_dir": ""}),
    ("targetgen_validate", {"capability": ""}),
]


@pytest.mark.parametrize(("name", "body"), FOUND, ids=[f"{n}-{i}" for i, (n, _) in enumerate(FOUND)])
def test_what_the_server_refuses_the_schema_refuses(tmp_path: Any, name: str, body: dict[str, Any]) -> None:
    assert not schema_accepts(name, body), f"{name}: the schema allows {body}"
    assert server_refuses(Gateway(tmp_path / "state"), name, body), f"{name}: the server accepts {body}"


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("targetgen_execute", {"capability": "c.yaml", "overlay": "o.yaml", "strict": True}),
        ("targetgen_execute", {"target_dir": "t", "capability": None, "strict": False}),
        ("leases_reserve", {"bundles": ["board:2,board=u250", "fpga"], "ttl": "1h30m", "priority": -5}),
        ("runs_list", {"status": ["running", "lost"]}),
        ("runs_status", {"run_id": "job-20260101-000000-abcdef"}),
        ("clusters_status", {}),
        ("runs_list", {"limit": 5.0}),
    ],
)
def test_good_requests_stay_allowed(tmp_path: Any, name: str, body: dict[str, Any]) -> None:
    assert schema_accepts(name, body)
    if not name.startswith("targetgen") and name != "leases_reserve":  # (those act; their inputs are read alike)
        assert not server_refuses(Gateway(tmp_path / "state"), name, body), body


def test_a_body_is_required_only_where_an_argument_is() -> None:
    """The server reads no body as {}: an operation whose every argument has a default takes none."""
    optional = []
    for op in OPERATIONS:
        entry = DOC["paths"][op.path]["post"]
        required = DOC["components"]["schemas"][f"{op.title}Input"].get("required", [])
        assert entry["requestBody"]["required"] is bool(required), op.name
        if not required:
            optional.append(op.name)
    assert {"runs_list", "leases_list", "leases_queue", "review_questions", "clusters_status"} <= set(optional)
    assert "runs_submit" not in optional
