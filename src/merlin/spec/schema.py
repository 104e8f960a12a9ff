"""JSON Schemas of the spec formats (committed under target_specs/schema/)."""

from __future__ import annotations

from typing import Any

from merlin.spec.models import CapabilitySpec, DeploymentOverlay

SCHEMA_FILES = {"capability": "capability.schema.json", "overlay": "overlay.schema.json"}


def json_schema(kind: str) -> dict[str, Any]:
    model = CapabilitySpec if kind == "capability" else DeploymentOverlay
    schema = model.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"merlin/{SCHEMA_FILES[kind]}"
    return schema
