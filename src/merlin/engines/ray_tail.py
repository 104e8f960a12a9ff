"""Ray's log tail, ``GET /api/jobs/{id}/logs/tail``: a websocket read with the standard library.

Ray's dashboard streams a job's driver log over this websocket from its first
byte, each new chunk once, and closes it when the job is terminal and the log
is drained: following a log moves each byte once, where polling ``/logs``
would move the whole log again every time. The client side of RFC 6455 that
this needs is small (a handshake, then frames read; the only frames sent are
the answers to ping and close), so no websocket library, no asyncio and no
Ray import are needed, and Ctrl-C ends it like any blocking read.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
_CONTINUATION, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_HEADER = 65536


class HandshakeRefused(Exception):
    """The server answered the upgrade with an HTTP status instead of switching protocols."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body


class Tail:
    """One tail websocket: ``with Tail.open(url, path, headers, timeout) as tail: for text in tail: ...``.

    ``timeout`` bounds the connection and the handshake. Ray sends nothing while the log does
    not grow: after ``idle`` seconds of silence ``on_idle()`` is called (it raises to give up,
    e.g. when the cluster no longer answers) and the read goes on."""

    def __init__(self, sock: socket.socket, on_idle: Callable[[], object] | None = None) -> None:
        self._sock = sock
        self._buffer = b""
        self._on_idle = on_idle

    @classmethod
    def open(
        cls, url: Any, path: str, headers: dict[str, str], timeout: float, *, idle: float | None = None, on_idle: Callable[[], object] | None = None
    ) -> Tail:
        """Connect to ``url`` (a ``urllib.parse.SplitResult``) and upgrade ``path``; HandshakeRefused or OSError."""
        host = url.hostname or "127.0.0.1"
        port = url.port or (443 if url.scheme == "https" else 80)
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            if url.scheme == "https":
                import ssl

                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
            tail = cls(sock)
            tail._handshake(host if port in (80, 443) else f"{host}:{port}", path, headers)
            sock.settimeout(idle)
            tail._on_idle = on_idle
            return tail
        except BaseException:
            sock.close()
            raise

    def _handshake(self, host: str, path: str, headers: dict[str, str]) -> None:
        key = base64.b64encode(os.urandom(16))
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key.decode()}", "Sec-WebSocket-Version: 13"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self._sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        while b"\r\n\r\n" not in self._buffer:
            if len(self._buffer) > MAX_HEADER:
                raise OSError("the tail endpoint sent an endless header")
            self._fill()
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        status_line, *fields = head.decode("latin-1").split("\r\n")
        parts = status_line.split()
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        found = {k.strip().lower(): v.strip() for k, _, v in (f.partition(":") for f in fields)}
        if status != 101:
            length = int(found.get("content-length", "0") or 0)
            while len(self._buffer) < min(length, MAX_HEADER):
                try:
                    self._fill()
                except OSError:
                    break
            raise HandshakeRefused(status, self._buffer[:length])
        accept = base64.b64encode(hashlib.sha1(key + _GUID, usedforsecurity=False).digest()).decode()
        if found.get("sec-websocket-accept") != accept:
            raise OSError("the tail endpoint answered the upgrade with a wrong Sec-WebSocket-Accept")

    # ------------------------------------------------------------------ reading

    def _recv(self, n: int) -> bytes:
        """One read from the network: every byte the tail receives passes here."""
        return self._sock.recv(n)

    def _fill(self) -> None:
        while True:
            try:
                chunk = self._recv(65536)
                break
            except TimeoutError:
                if self._on_idle is None:
                    raise
                self._on_idle()
        if not chunk:
            raise ConnectionError("the tail endpoint closed the connection")
        self._buffer += chunk

    def _take(self, n: int) -> bytes:
        while len(self._buffer) < n:
            self._fill()
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def _send(self, opcode: int, payload: bytes = b"") -> None:
        """A client frame (masked, as RFC 6455 requires of a client); only pong and close are sent."""
        mask = os.urandom(4)
        head = bytes([0x80 | opcode])
        n = len(payload)
        head += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n) if n < 65536 else bytes([0x80 | 127]) + struct.pack("!Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        try:
            self._sock.sendall(head + mask + masked)
        except OSError:
            pass  # the server is gone already: nothing to answer

    def frames(self) -> Iterator[tuple[int, bytes]]:
        """(opcode, payload) of each whole message; ends at the server's close frame."""
        message: list[bytes] = []
        kind = _TEXT
        while True:
            b0, b1 = self._take(2)
            fin, opcode, n = b0 & 0x80, b0 & 0x0F, b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", self._take(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", self._take(8))
            mask = self._take(4) if b1 & 0x80 else b""
            payload = self._take(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == _CLOSE:
                self._send(_CLOSE, payload[:2])
                return
            if opcode == _PING:
                self._send(_PONG, payload)
                continue
            if opcode == _PONG:
                continue
            if opcode != _CONTINUATION:
                kind, message = opcode, []
            message.append(payload)
            if fin:
                yield kind, b"".join(message)
                message = []

    def __iter__(self) -> Iterator[str]:
        """The log's text, chunk by chunk, as Ray sends it."""
        for kind, payload in self.frames():
            if kind in (_TEXT, _BINARY) and payload:
                yield payload.decode("utf-8", errors="replace")

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass

    def __enter__(self) -> Tail:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
