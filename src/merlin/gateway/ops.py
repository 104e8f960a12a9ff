"""The gateway: every operation (``merlin.gateway.operations``, one module per group) bound to one
state root and one server's flags, with validation, redaction and the audit log.

``merlin.gateway.mcp_server`` and ``merlin.gateway.http`` are generated from ``OPERATIONS``
(``merlin.gateway.registry``); neither defines an operation of its own. Handlers call the
ControlPlane facade only (an import-linter contract in pyproject.toml).
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import merlin.gateway.operations  # noqa: F401  (registers every operation, in group order)
from merlin.errors import BadInput, MerlinError, NotFound
from merlin.gateway.registry import OPERATIONS, PROGRESS, Input, Later, Operation, by_name, operation, step
from merlin.gateway.steps import ACTION_TOOLS, NO_TOOL, map_steps

__all__ = ["ACTION_TOOLS", "NO_TOOL", "OPERATIONS", "Gateway", "Input", "Later", "Operation", "by_name", "map_steps", "operation", "step"]

#: the name the MCP server and the tests know the step mapping by
_map_steps = map_steps

#: Seconds between progress messages of an unchanged wait (a changed one is sent at once).
PROGRESS_EVERY = 2.0

#: the fields of a mutating request's arguments that name what it acted on (the audit line's subject)
SUBJECT_FIELDS = ("run_id", "target_dir", "target", "capability", "name", "question_id", "task_id", "task")

#: the operations that record runs: after one, a retention policy given to the server applies itself
#: (as after the CLI's ``jobs submit`` and ``sweep submit``; docs/config.md)
RECORDS_RUNS = frozenset({"runs_submit", "sweeps_submit"})


class Gateway:
    """The operations bound to one state root and one server's flags.

    Handlers are synchronous (they take file locks and may wait on a run);
    transports call ``call`` in a worker thread so the server loop never blocks.
    """

    def __init__(
        self,
        state_root: str | os.PathLike[str] | None = None,
        *,
        allow_cluster_control: bool = False,
        transport: str = "api",
        retention: tuple[float, Sequence[str]] | Callable[[], tuple[float, Sequence[str]] | None] | None = None,
    ) -> None:
        """``retention``: (older_than seconds, statuses) of a policy that applies itself after each
        operation that records runs (``ControlPlane.keep_retention``), or a function that says the
        policy at that moment (``merlin serve``: the config files as they are now); None: none."""
        from merlin.controlplane import ControlPlane

        self.cp = ControlPlane(state_root)
        self.allow_cluster_control = allow_cluster_control
        self.transport = transport
        self.retention = retention

    def operations(self) -> list[Operation]:
        """The operations this server offers (cluster control only when allowed)."""
        return [op for op in OPERATIONS if op.requires != "cluster_control" or self.allow_cluster_control]

    def call(self, name: str, arguments: dict[str, Any] | None, *, client: str = "local") -> dict[str, Any]:
        """Validate, run, redact and (if mutating) audit one operation, waiting here if it waits. Raises MerlinError only."""
        op, args, result = self.start(name, arguments, client)
        while isinstance(result, Later):
            time.sleep(result.interval)
            result = self.step(op, args, client, result)
        return self.finish(op, args, client, result)

    async def acall(
        self, name: str, arguments: dict[str, Any] | None, *, client: str = "local", progress: Callable[[float, str], Awaitable[None]] | None = None
    ) -> dict[str, Any]:
        """As :meth:`call`, for servers: the work runs in a worker thread, and a wait (an execute
        until its gate) sleeps on the event loop between quick polls, so it holds no worker.

        ``progress(n, message)``, if given, hears how it goes (n increases): the handler's own
        messages (a cluster starting) and, while it waits, what it waits on (when that changes, or
        every few seconds). Cancelling the caller's scope stops the waiting, never the work it waits on."""
        import anyio
        import anyio.from_thread
        import anyio.to_thread

        count = 0

        async def send(message: str) -> None:
            nonlocal count
            if progress is not None:
                count += 1
                await progress(float(count), message)

        token = PROGRESS.set((lambda m: anyio.from_thread.run(send, m)) if progress is not None else None)
        try:
            op, args, result = await anyio.to_thread.run_sync(self.start, name, arguments, client)
            said, when = "", 0.0
            while isinstance(result, Later):
                if result.note and (result.note != said or time.monotonic() - when >= PROGRESS_EVERY):
                    said, when = result.note, time.monotonic()
                    await send(said)
                await anyio.sleep(result.interval)
                result = await anyio.to_thread.run_sync(self.step, op, args, client, result)
            return await anyio.to_thread.run_sync(self.finish, op, args, client, result)
        finally:
            PROGRESS.reset(token)

    def start(self, name: str, arguments: dict[str, Any] | None, client: str) -> tuple[Operation, Input, Any]:
        from pydantic import ValidationError

        op = {o.name: o for o in self.operations()}.get(name)
        if op is None:
            raise NotFound(f"no operation {name!r} (see tools/list or /openapi.json)")
        try:
            args = op.input.model_validate(arguments or {})
        except ValidationError as exc:
            lines = [f"{name}: {'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()]
            if op.mutating:
                self.audit(op, arguments or {}, client, f"error {BadInput.exit_code}")
            first = exc.errors()[0]["loc"] if exc.errors() else ()
            raise BadInput(lines[0], lines=lines, argument=str(first[0]) if first else None) from None
        return op, args, self._guarded(op, args, client, lambda: op.handler(self, args))

    def step(self, op: Operation, args: Input, client: str, later: Later) -> Any:
        """One poll of a waiting operation: its result, or the same Later while it still waits."""
        return self._guarded(op, args, client, later.poll)

    def _guarded(self, op: Operation, args: Input, client: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except MerlinError as exc:
            if op.mutating:
                self.audit(op, args.model_dump(), client, f"error {exc.exit_code}: {exc.message}")
            raise
        except OSError as exc:  # a path the caller named is unusable: their input, not a crash
            if op.mutating:
                self.audit(op, args.model_dump(), client, f"error 2: {exc}")
            raise BadInput(f"{exc.filename or op.name}: {exc.strerror or exc}") from None

    def finish(self, op: Operation, args: Input, client: str, result: Any) -> dict[str, Any]:
        from merlin.controlplane import redact

        data = result if isinstance(result, dict) else {"items": result}
        if not op.stored_records:
            data = redact(data)
        data["next_steps"] = map_steps(data.get("next_steps"))
        if op.mutating:
            self.audit(op, args.model_dump(), client, "ok")
        if self.retention is not None and op.name in RECORDS_RUNS:
            self.keep_retention()
        return data

    def keep_retention(self) -> None:
        """The day's prune by the server's policy, detached; one that cannot start (or a policy that
        cannot be read: a config file edited into an error) is a line in the audit log, never the
        caller's error (its run is recorded)."""
        try:
            policy = self.retention() if callable(self.retention) else self.retention
            if policy is None:
                return
            older_than, statuses = policy
            self.cp.keep_retention(older_than, statuses)
        except (MerlinError, OSError) as exc:
            why = getattr(exc, "message", None) or str(exc)
            self.cp.append_audit({"client": "server", "transport": self.transport, "operation": "retention", "subject": {}, "result": f"error: the day's prune did not start: {why}"})

    def audit(self, op: Operation, args: dict[str, Any], client: str, result: str) -> None:
        """One JSONL line per mutating request: time, client, operation, target or run, result
        (the facade writes it, at ``Layout.gateway_audit``)."""
        subject = {k: args[k] for k in SUBJECT_FIELDS if args.get(k)}
        self.cp.append_audit({"client": client, "transport": self.transport, "operation": op.name, "subject": subject, "result": result})
