"""JSON Schemas as merlin publishes them: the spec formats' (committed under target_specs/schema/),
and the one way every published schema is stamped (``$schema``, ``$id``) and written, which the
ledger's and lease book's records (merlin.records) and TargetGen's (merlin.targetgen.records) use too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SCHEMA_FILES = {"capability": "capability.schema.json", "overlay": "overlay.schema.json"}
DRAFT = "https://json-schema.org/draft/2020-12/schema"


def published(model: Any, schema_id: str, **options: Any) -> dict[str, Any]:
    """``model``'s JSON Schema (``model_json_schema(**options)``) with the draft it follows and its ``$id``."""
    schema: dict[str, Any] = model.model_json_schema(**options)
    schema["$schema"] = DRAFT
    schema["$id"] = schema_id
    return schema


def write_schemas(directory: Path, schemas: dict[str, dict[str, Any]]) -> list[Path]:
    """Write each ``name -> schema`` into ``directory`` (only those that changed); the paths written."""
    from merlin.atomic import dump_json, write_if_changed

    directory.mkdir(parents=True, exist_ok=True)
    return [directory / name for name, schema in schemas.items() if write_if_changed(directory / name, dump_json(schema).encode("utf-8"))]


def json_schema(kind: str) -> dict[str, Any]:
    from merlin.spec.models import CapabilitySpec, DeploymentOverlay

    model = CapabilitySpec if kind == "capability" else DeploymentOverlay
    return published(model, f"merlin/{SCHEMA_FILES[kind]}", mode="validation")
