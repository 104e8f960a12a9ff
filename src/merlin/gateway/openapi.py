"""The OpenAPI 3.1 document of the REST API, generated from ``OPERATIONS``."""

from __future__ import annotations

from typing import Any

from merlin import __version__
from merlin.gateway.ops import Operation
from merlin.gateway.registry import NextStep

REF = "#/components/schemas/{model}"

ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "string"}},
        "exit_code": {"type": "integer"},
        "code": {"type": "string"},
        "next_steps": {"type": "array", "items": {"$ref": "#/components/schemas/NextStep"}, "description": "The tool calls to make next."},
    },
    "required": ["error", "exit_code", "code"],
}


def _hoist(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """``schema`` without its ``$defs``, which join the components (one definition per model name)."""
    for name, sub in schema.pop("$defs", {}).items():
        if components.setdefault(name, sub) != sub:
            raise RuntimeError(f"two gateway models are both named {name!r}: their schemas differ")
    return schema


def document(operations: list[Operation]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    components: dict[str, Any] = {"Error": ERROR_SCHEMA}
    errors = {
        code: {"description": text, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        for code, text in (
            ("400", "bad input (exit code 2)"),
            ("401", "no or wrong bearer token"),
            ("404", "not found (exit code 4)"),
            ("409", "blocked or locked (exit code 3)"),
            ("413", "request body too large"),
            ("429", "rate limited (exit code 75: temporary; try again after Retry-After seconds)"),
        )
    }
    for op in operations:
        model, result = f"{op.title}Input", f"{op.title}Result"
        components[model] = _hoist(op.input_schema(REF), components)
        components[result] = _hoist(op.output_schema(REF), components)
        entry = {
            "operationId": op.name,
            "summary": op.description.split(". ")[0].rstrip("."),
            "description": op.description,
            "tags": [op.group],
            # an operation whose every argument has a default takes no body too (the server reads none as {})
            "requestBody": {"required": bool(components[model].get("required")), "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}}}},
            "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{result}"}}}}, **errors},
        }
        paths[op.path] = {"post": entry}
    components.setdefault("NextStep", NextStep.model_json_schema())
    return {
        "openapi": "3.1.0",
        "info": {"title": "merlin gateway", "version": __version__, "description": "merlin's operations over HTTP; the same operations are MCP tools at /mcp."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    }
