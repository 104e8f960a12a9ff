"""The gateway's one list of operations, and what an operation is.

Each ``Operation`` has a name (the MCP tool name and the REST path), a group, a
description (its handler's docstring), a typed pydantic input model (its JSON
Schema is the tool's input schema and the endpoint's request body), a handler
that calls the ControlPlane facade, and whether it mutates state (then it is
audited). The operation groups (``merlin.gateway.operations``) register here;
``merlin.gateway.mcp_server``, ``merlin.gateway.http``, the OpenAPI document and
the generated docs are all built from ``OPERATIONS``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:  # pragma: no cover
    from merlin.gateway.ops import Gateway


class Input(BaseModel):
    """Closed inputs: an unknown argument is an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class NoInput(Input):
    pass


@dataclass(frozen=True)
class Operation:
    name: str
    group: str
    description: str
    input: type[Input]
    handler: Callable[[Gateway, Any], Any]
    mutating: bool
    requires: str | None = None  # a server flag that must be on ("cluster_control")
    #: The result is ledger run records as stored: the ledger's models redacted them when they were
    #: written (env, metadata, messages: the same functions), so the response pass is skipped.
    stored_records: bool = False

    @property
    def path(self) -> str:
        return f"/api/{self.name}"


#: Every operation, in the order of the groups (``merlin.gateway.operations``) and of each group's module.
OPERATIONS: list[Operation] = []


def operation(name: str, group: str, input: type[Input], *, mutating: bool, requires: str | None = None, stored_records: bool = False) -> Callable:
    def register(fn: Callable[[Gateway, Any], Any]) -> Callable[[Gateway, Any], Any]:
        doc = " ".join((fn.__doc__ or "").split())
        OPERATIONS.append(Operation(name, group, doc, input, fn, mutating, requires, stored_records))
        return fn

    return register


def by_name() -> dict[str, Operation]:
    return {op.name: op for op in OPERATIONS}


def step(tool: str, **args: Any) -> dict[str, Any]:
    """A next step as a tool call: ``{tool, args}``."""
    return {"tool": tool, "args": args}


@dataclass
class Later:
    """A handler's answer "not yet": ``check()`` returns the result once ready (else None);
    past ``deadline`` (monotonic) ``expired()`` gives the answer instead. Polled by the caller,
    so a server waits on its event loop, not in a worker thread."""

    check: Callable[[], dict[str, Any] | None]
    expired: Callable[[], dict[str, Any]]
    deadline: float
    interval: float = 0.2

    def poll(self) -> dict[str, Any] | Later:
        done = self.check()
        if done is not None:
            return done
        if time.monotonic() >= self.deadline:
            return self.expired()
        return self
