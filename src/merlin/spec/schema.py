"""JSON Schemas as merlin publishes them: the spec formats' (committed under target_specs/schema/),
and the one way every published schema is stamped (``$schema``, ``$id``), which the ledger's and lease
book's records (merlin.records) and TargetGen's (merlin.targetgen.records) use too.
"""

from __future__ import annotations

from typing import Any

SCHEMA_FILES = {"capability": "capability.schema.json", "overlay": "overlay.schema.json"}
DRAFT = "https://json-schema.org/draft/2020-12/schema"


def published(model: Any, schema_id: str, **options: Any) -> dict[str, Any]:
    """``model``'s JSON Schema (``model_json_schema(**options)``) with the draft it follows and its ``$id``."""
    schema: dict[str, Any] = model.model_json_schema(**options)
    schema["$schema"] = DRAFT
    schema["$id"] = schema_id
    return schema


def json_schema(kind: str) -> dict[str, Any]:
    from merlin.spec.models import CapabilitySpec, DeploymentOverlay

    model = CapabilitySpec if kind == "capability" else DeploymentOverlay
    return published(model, f"merlin/{SCHEMA_FILES[kind]}", mode="validation")
