"""``merlin mcp`` and ``merlin serve``: the agent gateway (needs the ``gateway`` extra).

Nothing here is imported by other commands; the SDK, Starlette and uvicorn are
imported inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import typer

from merlin.cli.options import StateRootOpt


def _need_extra() -> None:
    from merlin.errors import Blocked

    try:
        import mcp  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise Blocked(f"the gateway needs the 'gateway' extra ({exc.name} is missing): run `.venv/bin/pip install -e '.[gateway]'` or ./merlin (it installs it by default)") from None


def _gateway(state_root: Path | None, allow_cluster_control: bool, transport: str):
    """The gateway over ``state_root``; a state root that exists and is no directory is bad input (exit 2)."""
    import threading

    from merlin.cli.config import live_retention_policy
    from merlin.errors import BadInput
    from merlin.gateway.ops import Gateway

    live_retention_policy()  # a bad config is exit 2 at the start; later edits apply as they are made
    one_at_a_time = threading.Lock()  # the handlers' threads share the config's cache

    def retention() -> tuple[float, list[str]] | None:
        with one_at_a_time:
            return live_retention_policy()

    gw = Gateway(state_root, allow_cluster_control=allow_cluster_control, transport=transport, retention=retention)
    if gw.cp.root.exists() and not gw.cp.root.is_dir():
        raise BadInput(f"--state-root {gw.cp.root}: not a directory (pass a directory, or set $MERLIN_STATE_ROOT to one)")
    return gw


def mcp(
    state_root: Path | None = StateRootOpt,
    allow_cluster_control: bool = typer.Option(False, "--allow-cluster-control", help="Also offer clusters_start and clusters_stop."),
) -> None:
    """Serve merlin's tools over MCP on stdin/stdout (what agent clients start as a subprocess)."""
    _need_extra()
    import anyio

    from merlin.gateway.mcp_server import serve_stdio

    gw = _gateway(state_root, allow_cluster_control, "mcp-stdio")
    anyio.run(serve_stdio, gw)


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback unless --allow-remote)."),
    port: int = typer.Option(8765, "--port", help="TCP port."),
    socket: Path | None = typer.Option(None, "--socket", help="Serve on this Unix socket instead of a TCP port."),
    allow_remote: bool = typer.Option(False, "--allow-remote", help="Allow a non-loopback --host (the token is still required)."),
    rotate_token: bool = typer.Option(False, "--rotate-token", help="Replace the token first (clients need the new one)."),
    allow_cluster_control: bool = typer.Option(False, "--allow-cluster-control", help="Also offer clusters_start and clusters_stop."),
    allow_host: list[str] | None = typer.Option(None, "--allow-host", help="Extra Host header value HOST:PORT to accept (repeatable; e.g. behind a proxy)."),
    cors_origin: list[str] | None = typer.Option(None, "--cors-origin", help="Origin allowed cross-origin requests (repeatable; none by default)."),
    max_body: int = typer.Option(1024 * 1024, "--max-body", help="Largest request body in bytes."),
    rate_limit: float = typer.Option(1000.0, "--rate-limit", help="Requests per second per credential (the token, or a page session), bursts up to twice that; 0: no limit."),
    state_root: Path | None = StateRootOpt,
) -> None:
    """REST API, /openapi.json, MCP at /mcp and a live page at /, behind a bearer token."""
    from merlin.cli.output import message
    from merlin.errors import BadInput

    if not _is_loopback(host) and not allow_remote:
        raise BadInput(f"--host {host} is not a loopback address: refusing to serve beyond this machine without --allow-remote")
    from merlin.safety import check_number

    check_number(rate_limit, "--rate-limit")  # finite: NaN would pass every comparison below
    if max_body < 1024:
        raise BadInput(f"--max-body {max_body}: must be at least 1024 bytes")
    if not 0 < port < 65536:
        raise BadInput(f"--port {port}: expected 1..65535")
    _need_extra()
    import uvicorn

    from merlin.gateway.auth import Sessions, load_or_create_token, token_path
    from merlin.gateway.http import ServeConfig, build_app

    gw = _gateway(state_root, allow_cluster_control, "http")
    token, created = load_or_create_token(token_path(gw.cp), rotate=rotate_token)
    cfg = ServeConfig(host=host, port=None if socket else port, socket=str(socket) if socket else None, token=token,
                      cors_origins=list(cors_origin or []), max_body=max_body, rate_limit=rate_limit)
    cfg.allowed_hosts += list(allow_host or [])
    cfg.allowed_origins += [f"http://{h}" for h in allow_host or []]
    sessions = Sessions()
    app = build_app(gw, cfg, sessions)
    where = f"unix socket {socket}" if socket else f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    how = "created" if created else ("rotated" if rotate_token else "in")
    message(f"merlin serve: {where} (MCP at /mcp, API at /api, OpenAPI at /openapi.json); token {how} {token_path(gw.cp)}")
    if not socket:
        message(f"open the page (one-time link): {where}/login?once={sessions.new_code()}")
    listener = _unix_listener(socket) if socket else None
    config = uvicorn.Config(app, host=host, port=port, fd=listener.fileno() if listener else None, log_level="warning", access_log=False,
                            lifespan="on", server_header=False, timeout_graceful_shutdown=5)
    try:
        uvicorn.Server(config).run()
    finally:
        if listener is not None:
            listener.close()
            socket.unlink(missing_ok=True)  # type: ignore[union-attr]


def _unix_listener(path: Path):
    """A Unix socket bound with mode 0600 (uvicorn's own ``uds=`` makes it 0666: anyone on the machine could connect)."""
    import os
    import socket as sk

    from merlin.errors import BadInput

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        probe = sk.socket(sk.AF_UNIX, sk.SOCK_STREAM)
        try:
            probe.connect(str(path))
            raise BadInput(f"--socket {path}: another server is listening there")
        except (ConnectionRefusedError, FileNotFoundError):
            path.unlink(missing_ok=True)  # a stale socket from a server that died
        except OSError as exc:
            raise BadInput(f"--socket {path}: exists and is not a usable socket ({exc.strerror})") from None
        finally:
            probe.close()
    listener = sk.socket(sk.AF_UNIX, sk.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        listener.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    listener.listen(128)
    return listener


def register(app: typer.Typer) -> None:
    """Add ``merlin mcp`` and ``merlin serve``."""
    app.command("mcp")(mcp)
    app.command("serve")(serve)
