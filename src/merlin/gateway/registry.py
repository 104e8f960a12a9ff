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
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:  # pragma: no cover
    from merlin.gateway.ops import Gateway


class Input(BaseModel):
    """Closed inputs: an unknown argument is an error, not silently ignored; a value of another JSON type
    than declared too (strict: 0 is no boolean, false no number). Patterns are read by Python's re (the
    server's own checks' patterns say "never '..'" as a look-ahead)."""

    model_config = ConfigDict(extra="forbid", regex_engine="python-re", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _whole_numbers(cls, data: Any) -> Any:
        """JSON Schema's integer is any number without a fraction (``5.0`` too): read it as the int."""
        if isinstance(data, dict):
            return {k: int(v) if isinstance(v, float) and v.is_integer() and _takes_int(cls, k) else v for k, v in data.items()}
        return data


def _takes_int(model: type[BaseModel], name: str) -> bool:
    field = model.model_fields.get(name)
    return field is not None and field.annotation in (int, int | None)


class NoInput(Input):
    pass


class NextStep(BaseModel):
    """A tool call to make next."""

    model_config = ConfigDict(extra="forbid")
    tool: str = Field(description="The tool (MCP) or operation (REST: POST /api/<tool>).")
    args: dict[str, Any] = Field(description="Its arguments.")


class Result(BaseModel):
    """An operation's result: its declared fields, possibly more (records carry every field they store),
    and the tool calls to make next. The MCP tool's outputSchema and the REST 200 response schema."""

    model_config = ConfigDict(extra="allow")
    next_steps: list[NextStep] = Field(description="The tool calls to make next.")


@dataclass(frozen=True)
class Operation:
    name: str
    group: str
    description: str
    input: type[Input]
    output: type[BaseModel]  # a Result, or a record model with next_steps (RunResult)
    handler: Callable[[Gateway, Any], Any]
    mutating: bool
    requires: str | None = None  # a server flag that must be on ("cluster_control")
    #: The result is ledger run records as stored: the ledger's models redacted them when they were
    #: written (env, metadata, messages: the same functions), so the response pass is skipped.
    stored_records: bool = False

    @property
    def path(self) -> str:
        return f"/api/{self.name}"

    @property
    def title(self) -> str:
        """``runs_list`` -> ``RunsList``: the stem of this operation's schema titles (unique per operation)."""
        return "".join(part.capitalize() for part in self.name.split("_"))

    def input_schema(self, ref_template: str = "#/$defs/{model}") -> dict[str, Any]:
        """The input model's JSON Schema, titled ``<Title>Input`` (models shared by operations get one title each)."""
        return {**self.input.model_json_schema(ref_template=ref_template), "title": f"{self.title}Input"}

    def output_schema(self, ref_template: str = "#/$defs/{model}", *, inline: bool = False) -> dict[str, Any]:
        """The result model's JSON Schema (MCP outputSchema, REST 200 response), titled ``<Title>Result``;
        ``inline``: every ``$ref`` replaced by its definition (MCP: a client validates a 1,000-run listing
        against it in half the time; OpenAPI keeps the references, which name the generated classes)."""
        schema = {**compact(self.output.model_json_schema(ref_template=ref_template)), "title": f"{self.title}Result"}
        return _inline(schema, schema.get("$defs", {})) if inline else schema


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.rsplit("/", 1)[1]], defs)
        return {k: _inline(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline(x, defs) for x in node]
    return node


def compact(node: Any) -> Any:
    """``anyOf: [{type: A}, {type: null}]`` as ``type: [A, null]``: the same schema, and checking it is about
    twice as fast (the SDK's client validates every result against its tool's outputSchema)."""
    if isinstance(node, dict):
        any_of = node.get("anyOf")
        if any_of and all(set(a) == {"type"} and isinstance(a["type"], str) for a in any_of):
            node = {k: v for k, v in node.items() if k != "anyOf"} | {"type": [a["type"] for a in any_of]}
        return {k: compact(v) for k, v in node.items()}
    if isinstance(node, list):
        return [compact(x) for x in node]
    return node


#: Every operation, in the order of the groups (``merlin.gateway.operations``) and of each group's module.
OPERATIONS: list[Operation] = []


def operation(
    name: str, group: str, input: type[Input], output: type[BaseModel], *, mutating: bool, requires: str | None = None, stored_records: bool = False
) -> Callable:
    def register(fn: Callable[[Gateway, Any], Any]) -> Callable[[Gateway, Any], Any]:
        doc = " ".join((fn.__doc__ or "").split())
        OPERATIONS.append(Operation(name, group, doc, input, output, fn, mutating, requires, stored_records))
        return fn

    return register


def by_name() -> dict[str, Operation]:
    return {op.name: op for op in OPERATIONS}


def step(tool: str, **args: Any) -> dict[str, Any]:
    """A next step as a tool call: ``{tool, args}``."""
    return {"tool": tool, "args": args}


#: The caller's progress reporter while an operation runs: set by a transport whose client asked for
#: progress (MCP's progressToken), called with a one-line message from the handler's worker thread.
PROGRESS: ContextVar[Callable[[str], None] | None] = ContextVar("merlin_gateway_progress", default=None)


def report(message: str) -> None:
    """Tell the caller how the operation goes, if it asked (else nothing)."""
    fn = PROGRESS.get()
    if fn is not None:
        fn(message)


@dataclass
class Later:
    """A handler's answer "not yet": ``check()`` returns the result once ready (else None);
    past ``deadline`` (monotonic) ``expired()`` gives the answer instead. Polled by the caller,
    so a server waits on its event loop, not in a worker thread."""

    check: Callable[[], dict[str, Any] | None]
    expired: Callable[[], dict[str, Any]]
    deadline: float
    interval: float = 0.2
    #: what it waits on now, one line (set by ``check``): the progress message while it waits
    note: str = ""

    def poll(self) -> dict[str, Any] | Later:
        done = self.check()
        if done is not None:
            return done
        if time.monotonic() >= self.deadline:
            return self.expired()
        return self
