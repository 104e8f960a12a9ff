"""docs/gateway.md's tools-and-endpoints reference is generated from the one
list of operations and must not drift from it (nor from the served tools)."""

from __future__ import annotations

import pytest

from conftest import REPO

pytest.importorskip("mcp", reason="the gateway extra is not installed")

from merlin.gateway import docs
from merlin.gateway.ops import OPERATIONS


def test_reference_in_sync() -> None:
    text = (REPO / "docs" / "gateway.md").read_text(encoding="utf-8")
    assert docs.splice(text) == text, "docs/gateway.md is stale: run .venv/bin/python -m merlin.gateway.docs docs/gateway.md"


def test_every_operation_is_documented_with_its_endpoint() -> None:
    text = (REPO / "docs" / "gateway.md").read_text(encoding="utf-8")
    for op in OPERATIONS:
        assert f"| `{op.name}` | `POST /api/{op.name}` |" in text
        assert f"#### `{op.name}`" in text
    for topic in ("## Threat model", "## Authentication and limits", "### Agent client configuration (stdio)", "## Walk-through"):
        assert topic in text
