"""The server's bearer token, one-time login links and page sessions.

The token lives in ``<state root>/gateway/token`` (mode 0600), generated on
first start and replaced by ``merlin serve --rotate-token``. It is only ever
accepted in the ``Authorization: Bearer`` header and compared in constant
time. A person's browser gets in through a one-time link printed by ``merlin
serve``: it sets an HttpOnly, SameSite=Strict session cookie that is good for
read-only (GET) requests only.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from merlin.controlplane import ControlPlane

SESSION_COOKIE = "merlin_session"
SESSION_SECONDS = 12 * 3600


def token_path(cp: ControlPlane) -> Path:
    """The token file of the control plane ``cp``'s state root (its ``Layout`` names it)."""
    return cp.layout.gateway_token


def load_or_create_token(path: Path, *, rotate: bool = False) -> tuple[str, bool]:
    """(token, created_now) of the token file ``path``. The file is written atomically with mode 0600."""
    from merlin.atomic import atomic_write_bytes, make_dir

    if not rotate and path.is_file():
        text = path.read_text(encoding="utf-8").strip()
        if len(text) >= 32:
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)
            return text, False
    token = secrets.token_urlsafe(32)
    make_dir(path.parent, private=True)  # the state root too, when the gateway is its first user
    atomic_write_bytes(path, (token + "\n").encode(), mode=0o600)
    return token, True


def bearer_ok(header: str | None, token: str) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time."""
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode(), token.encode())


class Sessions:
    """One-time login codes and the cookie sessions they open (in memory: a restart logs people out)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._codes: set[str] = set()
        self._sessions: dict[str, float] = {}

    def new_code(self) -> str:
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes.add(code)
        return code

    def redeem(self, code: str) -> str | None:
        """A new session id if ``code`` is an unused one-time code (then it is used up)."""
        with self._lock:
            match = next((c for c in self._codes if hmac.compare_digest(c.encode(), code.encode())), None)
            if match is None:
                return None
            self._codes.discard(match)
            return self._open()

    def open(self) -> str:
        with self._lock:
            return self._open()

    def _open(self) -> str:
        sid = secrets.token_urlsafe(32)
        self._sessions[sid] = time.monotonic() + SESSION_SECONDS
        return sid

    def valid(self, sid: str | None) -> bool:
        if not sid:
            return False
        with self._lock:
            now = time.monotonic()
            for key, until in list(self._sessions.items()):
                if until < now:
                    del self._sessions[key]
            return any(hmac.compare_digest(key.encode(), sid.encode()) for key in self._sessions)
