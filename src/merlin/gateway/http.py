"""``merlin serve``: one ASGI app with the REST API, /openapi.json, MCP at /mcp and the page at /.

Every request passes ``Guard`` first, in this order: Host allowlist, Origin
allowlist (DNS rebinding), body size limit, bearer token (or, for GET only,
the page's session cookie), then the rate limit: per credential (the bearer
token, or one page session) once authenticated, so every local client of one
server shares a budget sized for many agents at full speed; per client address
for requests that fail authentication (guessing the token stays slow). Operations run in worker
threads, so a long execute never blocks the loop.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from merlin.errors import ExitCode, MerlinError
from merlin.gateway import page
from merlin.gateway.auth import SESSION_COOKIE, SESSION_SECONDS, Sessions, bearer_ok, token_path
from merlin.gateway.mcp_server import build_server, error_document
from merlin.gateway.ops import Gateway

HTTP_STATUS = {ExitCode.BAD_INPUT: 400, ExitCode.NOT_FOUND: 404, ExitCode.BLOCKED: 409, ExitCode.RUN_FAILED: 409}
PUBLIC_PATHS = ("/login",)
PAGE_PATHS = ("/", "/page/tables")
#: Requests per second per credential (bursts of two seconds' worth): far above what one agent, or
#: fifty local clients at full speed, send to a server on one machine (benchmarks/bench_gateway.py).
DEFAULT_RATE_LIMIT = 1000.0
#: Requests per second per client address that fail authentication (bursts of twice that).
UNAUTHENTICATED_RATE = 10.0
#: A refused request's exit code: temporary (EX_TEMPFAIL), try again after Retry-After; never 2, which
#: would tell an agent its own input was wrong.
RATE_LIMITED_EXIT = ExitCode.ENVIRONMENT


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int | None = None
    socket: str | None = None
    token: str = ""
    allowed_hosts: list[str] = field(default_factory=list)
    allowed_origins: list[str] = field(default_factory=list)
    cors_origins: list[str] = field(default_factory=list)
    max_body: int = 1024 * 1024
    rate_limit: float = DEFAULT_RATE_LIMIT  # requests per second per credential; 0 = off

    @property
    def burst(self) -> int:
        """Requests a client may send at once before the rate applies: two seconds' worth."""
        return max(1, int(2 * self.rate_limit))

    def __post_init__(self) -> None:
        if not self.allowed_hosts:
            names = ["127.0.0.1", "localhost", "[::1]"] if self.host in ("127.0.0.1", "localhost", "::1") else [self.host if ":" not in self.host else f"[{self.host}]"]
            ports = [str(self.port)] if self.port else []
            self.allowed_hosts = [f"{n}:{p}" for n in names for p in ports] + (names if self.socket else [])
        if not self.allowed_origins:
            self.allowed_origins = [f"http://{h}" for h in self.allowed_hosts] + list(self.cors_origins)


def _error(exc: MerlinError) -> JSONResponse:
    return JSONResponse(error_document(exc), status_code=HTTP_STATUS.get(exc.exit_code, 500))


def _plain_error(status: int, text: str, code: str, headers: dict[str, str] | None = None, exit_code: int = ExitCode.BAD_INPUT) -> JSONResponse:
    return JSONResponse({"error": text, "errors": [text], "exit_code": exit_code, "code": code}, status_code=status, headers=headers)


def _rate_limited(text: str, retry_after: float) -> JSONResponse:
    wait = str(max(1, math.ceil(retry_after)))
    return _plain_error(429, f"{text}; retry after {wait} s", "rate_limited", {"Retry-After": wait}, RATE_LIMITED_EXIT)


class RateLimiter:
    """A token bucket per key (a credential, or a client address)."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> bool:
        return self.wait(client) == 0.0

    def wait(self, client: str) -> float:
        """0.0 if ``client`` may go now (and it is counted), else the seconds until it may."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            level, last = self._buckets.get(client, (float(self.burst), now))
            level = min(float(self.burst), level + (now - last) * self.rate)
            if level < 1:
                self._buckets[client] = (level, now)
                return (1 - level) / self.rate
            self._buckets[client] = (level - 1, now)
            return 0.0


async def read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None past ``limit`` bytes (a chunked body has no Content-Length to check first)."""
    chunks, seen = [], 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> JSONResponse:
    return _plain_error(413, f"request body over {limit} bytes", "body_too_large")


class Guard:
    """Host/Origin allowlist, body limit, authentication and rate limit in front of the whole app."""

    def __init__(self, app: Any, cfg: ServeConfig, sessions: Sessions, token_file: Path) -> None:
        self.app, self.cfg, self.sessions, self.token_file = app, cfg, sessions, token_file
        self.limiter = RateLimiter(cfg.rate_limit, cfg.burst)
        self.guesses = RateLimiter(UNAUTHENTICATED_RATE if cfg.rate_limit > 0 else 0, int(2 * UNAUTHENTICATED_RATE))
        self.hosts = {h.lower() for h in cfg.allowed_hosts}
        self.origins = {o.lower() for o in cfg.allowed_origins}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        reply = self.check(scope, headers)
        if reply is not None:
            await reply(scope, receive, send)
            return
        cors = {o.lower() for o in self.cfg.cors_origins}
        origin = headers.get("origin", "").lower()

        async def cors_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and origin and origin in cors:
                message.setdefault("headers", []).append((b"access-control-allow-origin", origin.encode()))
            await send(message)

        await self.app(scope, receive, cors_send if cors else send)

    def check(self, scope: dict[str, Any], headers: dict[str, str]) -> Response | None:
        host = headers.get("host", "").lower()
        if host not in self.hosts:
            return _plain_error(421 if host else 400, f"Host {host or '(none)'} is not served here (allowed: {', '.join(sorted(self.hosts))})", "bad_host")
        origin = headers.get("origin")
        if origin is not None and origin.lower() not in self.origins:
            return _plain_error(403, f"Origin {origin} is not allowed", "bad_origin")
        if scope["method"] == "OPTIONS" and origin and origin.lower() in {o.lower() for o in self.cfg.cors_origins}:
            return Response(status_code=204, headers={
                "access-control-allow-origin": origin, "access-control-allow-methods": "GET, POST, DELETE",
                "access-control-allow-headers": "authorization, content-type, mcp-session-id, mcp-protocol-version", "access-control-max-age": "600"})
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.cfg.max_body):
            return _too_large(self.cfg.max_body)
        client = scope.get("client")
        peer = client[0] if client else "unix"
        path = scope.get("path", "")
        who = self.credential(scope, headers)
        if who is None and path not in PUBLIC_PATHS or path == "/login":
            wait = self.guesses.wait(peer)  # guessing the token is limited per address
            if wait:
                return _rate_limited(f"rate limit: over {UNAUTHENTICATED_RATE:g} unauthenticated requests per second from {peer}", wait)
        elif who is not None:
            wait = self.limiter.wait(who)
            if wait:
                return _rate_limited(f"rate limit: over {self.cfg.rate_limit:g} requests per second with this credential", wait)
        if path not in PUBLIC_PATHS and who is None:
            if path == "/" and scope["method"] == "GET":
                return HTMLResponse(page.login_page(str(self.token_file)), status_code=401, headers={"WWW-Authenticate": 'Bearer realm="merlin"'})
            return _plain_error(401, "a bearer token is required (Authorization: Bearer TOKEN; the token is in the state root's gateway/token)", "unauthorized", {"WWW-Authenticate": 'Bearer realm="merlin"'})
        return None

    def credential(self, scope: dict[str, Any], headers: dict[str, str]) -> str | None:
        """What authenticates the request (the rate limit's key: ``bearer``, or one page session), or None."""
        if bearer_ok(headers.get("authorization"), self.cfg.token):
            return "bearer"
        if scope["method"] != "GET" or scope.get("path") not in PAGE_PATHS:  # the cookie opens the read-only page only
            return None
        cookies = headers.get("cookie", "")
        for part in cookies.split(";"):
            name, _, value = part.strip().partition("=")
            if name == SESSION_COOKIE and self.sessions.valid(value):
                return f"session {hashlib.sha256(value.encode()).hexdigest()[:16]}"
        return None


def build_app(gw: Gateway, cfg: ServeConfig, sessions: Sessions | None = None) -> Any:
    """The whole server as one ASGI app (Guard in front of Starlette with MCP's session manager as lifespan)."""
    from mcp.server.transport_security import TransportSecuritySettings

    sessions = sessions or Sessions()
    server = build_server(gw, default_client="mcp-http")
    ops = {op.name: op for op in gw.operations()}

    async def call(name: str, args: dict[str, Any], client: str) -> dict[str, Any]:
        return await gw.acall(name, args, client=client)

    async def api(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ops:
            return _plain_error(404, f"no operation {name!r} (see /openapi.json)", "not_found")
        body = await read_body(request, cfg.max_body)
        if body is None:
            return _too_large(cfg.max_body)
        try:
            args = json.loads(body) if body else {}  # no body: {}; blanks are no JSON
        except ValueError as exc:
            return _plain_error(400, f"{name}: the body is not JSON ({exc})", "bad_input")
        except RecursionError:  # nested past the parser's depth: the caller's input, never a 500
            return _plain_error(400, f"{name}: the body is JSON nested too deeply (more than about 1,000 levels)", "bad_input")
        if not isinstance(args, dict):
            return _plain_error(400, f"{name}: the body must be a JSON object", "bad_input")
        peer = request.client.host if request.client else "unix"
        try:
            return JSONResponse(await call(name, args, f"http {peer}"))
        except MerlinError as exc:
            return _error(exc)

    async def openapi(request: Request) -> Response:
        from merlin.gateway.openapi import document

        return JSONResponse(document(gw.operations()))

    def page_call(name: str, args: dict[str, Any]) -> dict[str, Any]:
        return gw.call(name, args, client="page")

    async def index(request: Request) -> Response:
        body = await anyio.to_thread.run_sync(page.tables, page_call)
        return HTMLResponse(page.full_page(body), headers={"Cache-Control": "no-store"})

    async def tables(request: Request) -> Response:
        return HTMLResponse(await anyio.to_thread.run_sync(page.tables, page_call), headers={"Cache-Control": "no-store"})

    async def login(request: Request) -> Response:
        sid = None
        if request.method == "GET":
            code = request.query_params.get("once")
            if not code:
                return HTMLResponse(page.login_page(str(token_path(gw.cp))))
            sid = sessions.redeem(code)
            note = "that link was already used or is unknown; ask for a new one (restart merlin serve) or paste the token"
        else:
            raw = await read_body(request, 4096)
            if raw is None:
                return _too_large(4096)
            form = parse_qs(raw.decode("utf-8", errors="replace"))
            if bearer_ok("Bearer " + (form.get("token") or [""])[0], cfg.token):
                sid = sessions.open()
            note = "wrong token"
        if sid is None:
            return HTMLResponse(page.login_page(str(token_path(gw.cp)), note), status_code=401, headers={"WWW-Authenticate": 'Bearer realm="merlin"'})
        reply = RedirectResponse("/", status_code=303)
        reply.set_cookie(SESSION_COOKIE, sid, max_age=SESSION_SECONDS, httponly=True, samesite="strict", path="/")
        return reply

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "operations": len(ops)})

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/page/tables", tables, methods=["GET"]),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/healthz", health, methods=["GET"]),
        Route("/api/{name}", api, methods=["POST"]),
    ]
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=list(cfg.allowed_hosts), allowed_origins=list(cfg.allowed_origins)
    )
    app = server.streamable_http_app(
        streamable_http_path="/mcp", transport_security=security, host=cfg.host, max_request_body_size=cfg.max_body, custom_starlette_routes=routes
    )
    return Guard(app, cfg, sessions, token_path(gw.cp))
