"""Ports and HTTP probes for local clusters (standard library only: no Ray import)."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def port_free(port: int, host: str = "") -> bool:
    """True if nothing listens on ``port`` (checked on all interfaces, like Ray binds GCS)."""
    for family, addr in ((socket.AF_INET, host or "0.0.0.0"), (socket.AF_INET, "127.0.0.1")):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((addr, port))
            except OSError:
                return False
    return True


def free_ports(n: int, avoid: set[int] | None = None) -> list[int]:
    """``n`` distinct ports the kernel says are free right now (bind to port 0)."""
    avoid = set(avoid or ())
    out: list[int] = []
    socks = []
    try:
        while len(out) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("0.0.0.0", 0))
            socks.append(s)
            port = s.getsockname()[1]
            if port not in avoid and port not in out:
                out.append(port)
    finally:
        for s in socks:
            s.close()
    return out


@dataclass
class Probe:
    """What the jobs API said: ``ok``, ``auth`` (answers, wants a token), or ``down``."""

    state: str
    detail: str = ""
    version: dict[str, Any] | None = None


def probe(address: str, headers: dict[str, str] | None = None, timeout: float = 2.0) -> Probe:
    """GET <address>/api/version: served by Ray's job module, so 200 means the jobs API is up."""
    if not address:  # a Slurm/PBS cluster still queued has no head yet
        return Probe("down", "no jobs API address yet (the cluster has no head)")
    try:
        req = urllib.request.Request(address.rstrip("/") + "/api/version", headers=headers or {})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Probe("ok", version=json.loads(resp.read().decode("utf-8")))
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            return Probe("auth", f"HTTP {exc.code}: the cluster requires a valid token")
        return Probe("down", f"HTTP {exc.code}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Probe("down", str(reason))


def get_json(address: str, path: str, headers: dict[str, str] | None = None, timeout: float = 5.0) -> Any:
    req = urllib.request.Request(address.rstrip("/") + path, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read().decode("utf-8"))
