"""The MCP server: one tool per operation of ``merlin.gateway.ops``.

Built on the SDK's low-level ``Server`` so each tool's input schema is exactly
its operation's pydantic model. A tool result carries the operation's JSON as
structured content (and as text for clients that read only text); a merlin
error is a tool error (``isError``) with merlin's code, exit code and message,
never a traceback.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel.server import Server

from merlin import __version__
from merlin.errors import MerlinError
from merlin.gateway.ops import Gateway
from merlin.gateway.steps import map_steps as _map_steps

log = logging.getLogger("merlin.gateway")

INSTRUCTIONS = (
    "merlin drives hardware-target enablement. Typical loop: targetgen_validate, targetgen_plan, "
    "targetgen_execute (stops at a gate), then follow next_steps: targetgen_answer for a question "
    "(review_questions lists them with the recommended choice), review_prompt and review_respond for a "
    "task awaiting a response, targetgen_execute again, until outcome is completed. Every result has "
    "next_steps: the tool calls to make next."
)


def error_code(exc: MerlinError) -> str:
    """``BadInput`` -> ``bad_input``: a stable, machine-readable name of the error class."""
    name = type(exc).__name__
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def error_document(exc: MerlinError) -> dict[str, Any]:
    """The same fields as the CLI's --json failure document, plus the error's code; its
    next steps as tool calls (e.g. clusters_stop with force=true after a refused stop).
    ``argument`` (and ``related``) name the parameters at fault; the text names them as
    the parameters they are (```reason```), as the error does (see ``MerlinError.render``)."""
    return {"error": exc.message, "errors": exc.lines, "exit_code": exc.exit_code, "code": error_code(exc), "argument": exc.argument,
            "related": list(exc.related), "next_steps": _map_steps(exc.next_steps)}  # fmt: skip


def tool_list(gw: Gateway) -> list[types.Tool]:
    return [
        types.Tool(
            name=op.name,
            title=op.name.replace("_", " "),
            description=op.description,
            input_schema=op.input_schema(),
            output_schema=op.output_schema(inline=True),
            annotations=types.ToolAnnotations(read_only_hint=not op.mutating, destructive_hint=op.name in ("runs_cancel", "clusters_stop"), open_world_hint=False),
        )
        for op in gw.operations()
    ]


def _client(ctx: Any, default: str) -> str:
    request = getattr(ctx, "request", None)
    peer = getattr(request, "client", None)
    return f"mcp-http {peer.host}" if peer is not None else default


async def run_tool(gw: Gateway, name: str, arguments: dict[str, Any] | None, client: str, ctx: Any = None) -> types.CallToolResult | dict[str, Any]:
    session = getattr(ctx, "session", None)

    async def progress(n: float, message: str) -> None:  # a no-op unless the call carried a progressToken
        if session is not None:
            await session.report_progress(n, None, message)

    try:
        data = await gw.acall(name, arguments, client=client, progress=progress)
        if name == "targetgen_execute" and _can_elicit(session):
            data = await ask_questions(gw, session, dict(arguments or {}), data, client, progress, getattr(ctx, "request_id", None))
    except MerlinError as exc:
        doc = error_document(exc)
        return types.CallToolResult(content=[types.TextContent(text=f"{doc['code']} (exit {exc.exit_code}): " + "\n".join(exc.lines))], structured_content=doc, is_error=True)
    except Exception as exc:  # a bug: one line for the agent, the traceback in the server's log only
        log.exception("tool %s failed", name)
        doc = {"error": f"merlin: internal error in {name}: {type(exc).__name__}", "errors": [], "exit_code": 70, "code": "internal_error"}
        return types.CallToolResult(content=[types.TextContent(text=doc["error"])], structured_content=doc, is_error=True)
    # The result in its wire form: the SDK validates and dumps it once more anyway, so dumping a model
    # holding the data would walk a 1,000-run listing one extra time. The SDK's model makes the
    # envelope (small); the structured content goes in as it is (plain JSON already).
    envelope = types.CallToolResult(content=[types.TextContent(text=_text(name, data))], structured_content={})
    return envelope.model_dump(by_alias=True, mode="json", exclude_none=True) | {"structuredContent": data}


#: Questions one targetgen_execute call asks in-line at most (then it returns awaiting_operator as usual).
MAX_ELICITED = 20


def _can_elicit(session: Any) -> bool:
    caps = getattr(session, "client_capabilities", None)
    return caps is not None and caps.elicitation is not None and getattr(session, "can_send_request", True)


def question_form(q: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """An operator question as an elicitation: its options a titled single-select enum, the recommended one the default."""
    choice = {
        "type": "string",
        "title": "Choice",
        "description": q.get("question", ""),
        "oneOf": [{"const": o["id"], "title": o.get("label") or o["id"]} for o in q.get("options", [])],
        "default": q.get("recommended_option"),
    }
    note = {"type": "string", "title": "Note", "description": "Recorded with the answer (optional).", "maxLength": 2000}
    message = f"{q.get('question', q['id'])} (question {q['id']} of task {q.get('task_id', '?')})"
    return message, {"type": "object", "properties": {"choice": choice, "note": note}, "required": ["choice"]}


async def ask_questions(
    gw: Gateway, session: Any, args: dict[str, Any], data: dict[str, Any], client: str, progress: Any, request_id: Any = None
) -> dict[str, Any]:
    """While ``data`` (a targetgen_execute result) waits on an operator question, ask the client (elicitation),
    record the answer with targetgen_answer (the durable answer, exactly as that tool records it) and execute
    again. A decline, a cancel, an answer that is not an option or a client that cannot be asked: ``data`` as it is."""
    for _ in range(MAX_ELICITED):
        q = data.get("open_question")
        if data.get("outcome") != "awaiting_operator" or not q:
            break
        message, schema = question_form(q)
        try:
            reply = await session.elicit_form(message, schema, related_request_id=request_id)
        except Exception as exc:  # the client could not ask: the question stays for targetgen_answer
            log.info("elicitation of %s failed: %s", q["id"], exc)
            break
        content = reply.content or {}
        if reply.action != "accept" or content.get("choice") not in {o["id"] for o in q.get("options", [])}:
            break
        answer: dict[str, Any] = {"target_dir": data["target_dir"], "question_id": q["id"], "choice": content["choice"]}
        note = content.get("note")
        if isinstance(note, str) and note.strip():
            answer["note"] = note
        await gw.acall("targetgen_answer", answer, client=client)
        again: dict[str, Any] = {"target_dir": data["target_dir"], **{k: args[k] for k in ("engine", "cluster", "timeout") if k in args}}
        data = await gw.acall("targetgen_execute", again, client=client, progress=progress)
    return data


#: Results up to this many characters of JSON are repeated as text; larger ones get a one-line summary
#: (the structured content holds everything, and serialising 1,000 runs twice costs more than it gives).
TEXT_LIMIT = 64 * 1024


def _text(name: str, data: dict[str, Any]) -> str:
    lists = {k: len(v) for k, v in data.items() if isinstance(v, list) and k != "next_steps"}
    if sum(lists.values()) <= 200:  # a long listing is never small: skip serialising it just to measure
        text = json.dumps(data, sort_keys=True, default=str)
        if len(text) <= TEXT_LIMIT:
            return text
    sizes = ", ".join(f"{k}: {n} items" for k, n in lists.items())
    return f"{name}: the result is in the structured content ({sizes or 'too large to repeat as text'})"


def build_server(gw: Gateway, *, default_client: str | None = None) -> Server:
    """The MCP server over ``gw`` (transports: stdio, streamable HTTP, or in-memory in tests)."""
    tools = tool_list(gw)
    schemas = {t.name: t.input_schema for t in tools}
    fallback = default_client or f"mcp-stdio (parent pid {os.getppid()})"

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult | dict[str, Any]:
        return await run_tool(gw, params.name, params.arguments, _client(ctx, fallback), ctx)

    from merlin.gateway.resources import Resources, templates

    res = Resources(gw)

    @asynccontextmanager
    async def lifespan(server: Any) -> AsyncIterator[dict[str, Any]]:
        """The resource poller lives as long as the server (it sleeps while nothing is subscribed)."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(res.poll_forever)
            try:
                yield {}
            finally:
                tg.cancel_scope.cancel()

    async def list_resources(ctx: Any, params: Any) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=await res.listing())

    async def list_templates(ctx: Any, params: Any) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult(resource_templates=templates())

    async def read_resource(ctx: Any, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        return await res.contents(params.uri)

    async def subscribe(ctx: Any, params: types.SubscribeRequestParams) -> types.EmptyResult:
        await res.subscribe(ctx.session, params.uri)
        return types.EmptyResult()

    async def unsubscribe(ctx: Any, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        res.unsubscribe(ctx.session, params.uri)
        return types.EmptyResult()

    return Server(
        "merlin",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        on_list_tools=list_tools,
        on_call_tool=call_tool,  # type: ignore[arg-type]  # the SDK takes the wire dict too (runner._dump_result)
        on_list_resources=list_resources,
        on_list_resource_templates=list_templates,
        on_read_resource=read_resource,
        on_subscribe_resource=subscribe,
        on_unsubscribe_resource=unsubscribe,
        get_tool_input_schema=schemas.get,
    )


async def serve_stdio(gw: Gateway) -> None:
    """``merlin mcp``: serve over this process's stdin/stdout (the SDK diverts fd 1 so stray output misses the wire)."""
    from mcp.server.stdio import stdio_server

    server = build_server(gw)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())
