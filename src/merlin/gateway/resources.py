"""Runs and TargetGen questions as MCP resources, with update notifications to subscribers.

- ``merlin://runs/{run_id}``: the run's record, its engine asked first (``runs_status``);
- ``merlin://targets/{name}/questions``: the target's open operator questions (``review_questions``,
  one target under the server's output root), empty until the target has one.

A client that subscribes (``resources/subscribe``) is sent ``notifications/resources/updated`` when
what a resource shows changes. The server polls while anything is subscribed, every
:data:`POLL_SECONDS`: one look per subscribed run (its status, outcome, message and
what it waits on) and one review pass for all subscribed targets (their open question ids), compared
with the previous poll (asking a local run's engine is a process check; a Ray run's, one call to its
cluster). An agent thus learns that a question opened, or a run ended, without polling.
Every read goes through the gateway's operations (``Gateway.acall``), so it is redacted as any result.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types

from merlin.errors import MerlinError
from merlin.gateway.ops import Gateway

log = logging.getLogger("merlin.gateway")

RUN_TEMPLATE = "merlin://runs/{run_id}"
QUESTIONS_TEMPLATE = "merlin://targets/{name}/questions"
#: Seconds between two looks at the subscribed resources.
POLL_SECONDS = 1.0
#: JSON-RPC error code of an unknown resource (the MCP specification's).
RESOURCE_NOT_FOUND = -32002

_RUN = re.compile(r"^merlin://runs/([^/]+)$")
_QUESTIONS = re.compile(r"^merlin://targets/([^/]+)/questions$")
CLIENT = "mcp-resources"


def templates() -> list[types.ResourceTemplate]:
    return [
        types.ResourceTemplate(name="run", title="A run's record", uri_template=RUN_TEMPLATE, mime_type="application/json",
                               description="The run's record, its engine asked first (as runs_status); subscribe to hear when it changes."),
        types.ResourceTemplate(name="target-questions", title="A target's open questions", uri_template=QUESTIONS_TEMPLATE, mime_type="application/json",
                               description="The target's open operator questions with their options and the recommended choice; subscribe to hear when one opens or is answered."),
    ]


class Resources:
    """Reads and subscriptions of one server (every session of it)."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self._subs: dict[str, dict[int, Any]] = {}  # uri -> {connection id: session}
        self._last: dict[str, str] = {}
        self._wake = anyio.Event()

    async def listing(self) -> list[types.Resource]:
        """The newest runs and the targets with open questions (the templates reach every other one)."""
        runs = await self.gw.acall("runs_list", {"limit": 20}, client=CLIENT)
        out = [types.Resource(name=f"run {r['run_id']}", uri=f"merlin://runs/{r['run_id']}", mime_type="application/json",
                              description=f"{r.get('status')}: {r.get('target')} / {r.get('workflow')}") for r in runs["runs"]]
        review = await self.gw.acall("review_questions", {}, client=CLIENT)
        names = sorted({Path(q["target_dir"]).name for q in review["questions"]})
        out += [types.Resource(name=f"{n} questions", uri=f"merlin://targets/{n}/questions", mime_type="application/json") for n in names]
        return out

    async def read(self, uri: str) -> dict[str, Any]:
        """The resource's JSON; MerlinError (not found, bad input) as from the operation it reads."""
        from mcp.shared.exceptions import MCPError

        if m := _RUN.match(uri):
            return await self.gw.acall("runs_status", {"run_id": m.group(1)}, client=CLIENT)
        if m := _QUESTIONS.match(uri):
            name = m.group(1)
            review = await self.gw.acall("review_questions", {}, client=CLIENT)
            mine = [q for q in review["questions"] if Path(q["target_dir"]).name == name]
            steps = [s for s in review["next_steps"] if Path(str(s["args"].get("target_dir", ""))).name == name and s["tool"] == "targetgen_answer"]
            return {"target": name, "questions": mine, "next_steps": steps}
        raise MCPError(RESOURCE_NOT_FOUND, f"no resource {uri!r} (templates: {RUN_TEMPLATE}, {QUESTIONS_TEMPLATE})")

    async def contents(self, uri: str) -> types.ReadResourceResult:
        from mcp.shared.exceptions import MCPError

        try:
            data = await self.read(uri)
        except MerlinError as exc:
            raise MCPError(RESOURCE_NOT_FOUND if exc.exit_code == 4 else -32602, exc.message) from None
        return types.ReadResourceResult(contents=[types.TextResourceContents(uri=uri, mime_type="application/json", text=json.dumps(data, sort_keys=True))])

    async def fingerprint(self, uri: str) -> str:
        try:
            data = await self.read(uri)
        except Exception as exc:  # gone or not there yet: that is a state too
            return f"unreadable: {type(exc).__name__}"
        if "questions" in data:
            return json.dumps(sorted(q["id"] for q in data["questions"]))
        return json.dumps([data.get(k) for k in ("status", "outcome", "message", "waiting_on")])

    async def subscribe(self, session: Any, uri: str) -> None:
        if not (_RUN.match(uri) or _QUESTIONS.match(uri)):
            from mcp.shared.exceptions import MCPError

            raise MCPError(RESOURCE_NOT_FOUND, f"no resource {uri!r} to subscribe to")
        if uri not in self._subs:
            self._last[uri] = await self.fingerprint(uri)
        self._subs.setdefault(uri, {})[_key(session)] = session
        self._wake.set()

    def unsubscribe(self, session: Any, uri: str) -> None:
        self._subs.get(uri, {}).pop(_key(session), None)
        if not self._subs.get(uri):
            self._subs.pop(uri, None)
            self._last.pop(uri, None)

    async def poll_forever(self) -> None:
        """Until cancelled: every POLL_SECONDS while anything is subscribed, notify what changed."""
        while True:
            if not self._subs:
                self._wake = anyio.Event()
                await self._wake.wait()
            await anyio.sleep(POLL_SECONDS)
            try:
                await self.poll_once()
            except Exception:  # a bad poll must not end notifications for good
                log.exception("resource poll failed")

    async def poll_once(self) -> None:
        for uri in list(self._subs):
            now = await self.fingerprint(uri)
            if now == self._last.get(uri):
                continue
            self._last[uri] = now
            for key, session in list(self._subs.get(uri, {}).items()):
                try:
                    await session.send_resource_updated(uri)
                except Exception:  # the session ended: forget it
                    self._subs.get(uri, {}).pop(key, None)


def _key(session: Any) -> int:
    """One subscription per connection (a request's session object wraps its connection)."""
    return id(getattr(session, "_connection", session))
