"""The agent gateway: merlin's operations over MCP (stdio and streamable HTTP),
a small REST API with its OpenAPI document, and a read-only live page.

Everything is generated from one list of operations (``merlin.gateway.registry``,
one module per group in ``merlin.gateway.operations``; ``merlin.gateway.ops`` binds
them to a control plane), so the MCP tools and the HTTP endpoints cannot drift.
The gateway calls the ControlPlane facade only (an import-linter contract). Only ``merlin mcp`` and
``merlin serve`` import this package (it needs the ``gateway`` extra).
"""
