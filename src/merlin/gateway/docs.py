"""The tools-and-endpoints reference in docs/gateway.md, generated from ``OPERATIONS``.

``python -m merlin.gateway.docs docs/gateway.md`` rewrites the part between the
markers; tests/test_gateway_docs.py fails when it is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from merlin.gateway.ops import OPERATIONS

BEGIN = "<!-- BEGIN GENERATED: python -m merlin.gateway.docs docs/gateway.md -->"
END = "<!-- END GENERATED -->"


def _type(prop: dict[str, Any]) -> str:
    if "anyOf" in prop:
        return " or ".join(_type(p) for p in prop["anyOf"] if p.get("type") != "null")
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    if prop.get("type") == "array":
        return f"list of {_type(prop.get('items', {}))}"
    if prop.get("type") == "object":
        return "object"
    return str(prop.get("type", "any"))


def reference() -> str:
    lines = [BEGIN, ""]
    groups: dict[str, list[Any]] = {}
    for op in OPERATIONS:
        groups.setdefault(op.group, []).append(op)
    lines += ["| tool (MCP) | endpoint (REST) | mutates | what it does |", "|---|---|---|---|"]
    for ops in groups.values():
        for op in ops:
            flag = "yes" if op.mutating else "no"
            if op.requires:
                flag += f" (only with `--allow-{op.requires.replace('_', '-')}`)"
            lines.append(f"| `{op.name}` | `POST {op.path}` | {flag} | {op.description} |")
    lines.append("")
    for group, ops in groups.items():
        lines.append(f"### {group}")
        lines.append("")
        for op in ops:
            schema = op.input.model_json_schema()
            props = schema.get("properties", {})
            required = set(schema.get("required", []))
            lines.append(f"#### `{op.name}`")
            lines.append("")
            lines.append(op.description)
            lines.append("")
            if not props:
                lines.append("No arguments.")
                lines.append("")
                continue
            lines += ["| argument | type | default | meaning |", "|---|---|---|---|"]
            for name, prop in props.items():
                default = "required" if name in required else f"`{prop['default']!r}`" if "default" in prop else "-"
                desc = prop.get("description", "").replace("|", "\\|")
                lines.append(f"| `{name}` | {_type(prop)} | {default} | {desc} |")
            lines.append("")
    lines.append(END)
    return "\n".join(lines)


def splice(text: str) -> str:
    """``text`` with its generated part replaced by the current reference."""
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return head + reference() + tail


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else "docs/gateway.md")
    path.write_text(splice(path.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
