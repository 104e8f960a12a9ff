"""The OpenAPI 3.1 document of the REST API, generated from ``OPERATIONS``."""

from __future__ import annotations

from typing import Any

from merlin import __version__
from merlin.gateway.ops import Operation

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "string"}},
        "exit_code": {"type": "integer"},
        "code": {"type": "string"},
        "next_steps": {"type": "array", "items": {"type": "object"}, "description": "The tool calls to make next ({tool, args})."},
    },
    "required": ["error", "exit_code", "code"],
}

RESULT_SCHEMA = {
    "type": "object",
    "description": "The operation's JSON (as the CLI's --json), plus next_steps.",
    "properties": {
        "next_steps": {
            "type": "array",
            "items": {"type": "object", "properties": {"tool": {"type": "string"}, "args": {"type": "object"}}, "required": ["tool", "args"]},
        }
    },
    "required": ["next_steps"],
    "additionalProperties": True,
}


def _schema(op: Operation) -> dict[str, Any]:
    schema = op.input.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return schema


def document(operations: list[Operation]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    components: dict[str, Any] = {"Error": ERROR_SCHEMA, "Result": RESULT_SCHEMA}
    errors = {
        code: {"description": text, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        for code, text in (
            ("400", "bad input (exit code 2)"),
            ("401", "no or wrong bearer token"),
            ("404", "not found (exit code 4)"),
            ("409", "blocked or locked (exit code 3)"),
            ("413", "request body too large"),
            ("429", "rate limit"),
        )
    }
    for op in operations:
        model = f"{op.name}_input"
        components[model] = _schema(op)
        entry = {
            "operationId": op.name,
            "summary": op.description.split(". ")[0].rstrip("."),
            "description": op.description,
            "tags": [op.group],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}}}},
            "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Result"}}}}, **errors},
        }
        paths[op.path] = {"post": entry}
    return {
        "openapi": "3.1.0",
        "info": {"title": "merlin gateway", "version": __version__, "description": "merlin's operations over HTTP; the same operations are MCP tools at /mcp."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    }
