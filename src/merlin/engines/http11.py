"""One HTTP/1.1 request over a plain socket: the jobs API client's transport for ``http://`` heads.

``http.client`` imports ``email`` (its header parser) and ``ssl``, about a fifth of
a ``jobs submit``'s CPU, for a request that needs neither: a loopback or lab
network head speaks plain HTTP, with a JSON body of a known length. So a plain
``http://`` address gets this: one request, ``Connection: close``, the answer read
until its ``Content-Length``, its chunks, or the end of the stream. ``https://``
keeps ``http.client`` (:mod:`merlin.engines.ray_api`).

Failures are raised as ``http.client`` raises them, by the same names and words
(``RemoteDisconnected``, ``BadStatusLine``, ``IncompleteRead``, the socket's own
``OSError``), so a cluster that does not answer reads the same either way.
"""

from __future__ import annotations

# The C module under the socket module: socket.py adds enum types of every constant and imports
# selectors and array on top of it, 3-4 ms of a submit's CPU, for nothing a request uses.
# The errors are the same classes (gaierror, TimeoutError, ConnectionRefusedError).
import _socket

#: the most a status line plus headers may take (http.client allows 100 headers of 64 KiB each)
MAX_HEAD = 1 << 20


class RemoteDisconnected(ConnectionResetError):
    """The server closed the connection before its status line (as ``http.client.RemoteDisconnected``)."""


class BadStatusLine(OSError):
    """The server's first line is no HTTP status line (as ``http.client.BadStatusLine``)."""

    def __init__(self, line: bytes | str) -> None:
        text = line.decode("latin-1") if isinstance(line, bytes) else line
        super().__init__(text or "''")


class IncompleteRead(OSError):
    """The body ended before its length (as ``http.client.IncompleteRead``)."""

    def __init__(self, partial: bytes, expected: int | None = None) -> None:
        more = f", {expected} more expected" if expected is not None else ""
        super().__init__(f"IncompleteRead({len(partial)} bytes read{more})")


class InvalidURL(OSError):
    """A path with a space or a control character, refused before anything is sent (as ``http.client.InvalidURL``)."""


def _checked(text: str, what: str) -> str:
    """A header name or value that is one line (CR, LF, NUL refused with ValueError, as ``http.client`` refuses them)."""
    if any(ord(c) < 0x20 and c != "\t" or c == "\x7f" for c in text):
        raise ValueError(f"Invalid header {what} {text!r}")
    return text


def request(host: str, port: int | None, method: str, path: str, body: bytes | None, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
    """(status, body) of one request to ``http://host:port``; OSError (or one of the classes above)
    when there is no whole answer. Sends what ``http.client`` sends for the same call."""
    port = port or 80
    if any(c <= " " or c == "\x7f" for c in path):
        raise InvalidURL(f"URL can't contain control characters. {path!r} (found at least {next(c for c in path if c <= ' ' or c == chr(0x7F))!r})")
    shown = f"[{host}]" if ":" in host else host
    lines = [f"{method} {path} HTTP/1.1", f"Host: {shown}" if port == 80 else f"Host: {shown}:{port}", "Accept-Encoding: identity", "Connection: close"]
    lines += [f"{_checked(k, 'name')}: {_checked(v, 'value')}" for k, v in headers.items()]
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    # an ASCII host as bytes: getaddrinfo would otherwise import the idna codec (and unicodedata) to encode it
    sock = _connect(host.encode("ascii") if host.isascii() else host, port, timeout)
    try:
        sock.sendall(head + body if body else head)
        return _Answer(sock).read(method)
    finally:
        sock.close()


def _connect(host: bytes | str, port: int, timeout: float) -> _socket.socket:
    """A connected stream socket, as ``socket.create_connection`` makes one: each address
    ``getaddrinfo`` gives, in turn; the first one's error when none connects."""
    errors: list[OSError] = []
    for family, kind, proto, _name, address in _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM):
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
            return sock
        except OSError as exc:
            errors.append(exc)
            sock.close()
    raise errors[0] if errors else OSError("getaddrinfo returns an empty list")


class _Answer:
    """The server's answer, read from ``sock`` as it arrives."""

    def __init__(self, sock: _socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()  # appended to and cut from the front in place: a big body is read in linear time
        self._ended = False

    def _fill(self) -> bool:
        """One more read into the buffer; False at the end of the stream."""
        if self._ended:
            return False
        chunk = self._sock.recv(65536)
        if not chunk:
            self._ended = True
            return False
        self._buffer += chunk
        return True

    def _line(self) -> bytes | None:
        """The next line with its line end (the rest of the stream when it ended first); None at its end."""
        while b"\n" not in self._buffer:
            if len(self._buffer) > MAX_HEAD:
                raise BadStatusLine(bytes(self._buffer[:80]))
            if not self._fill():
                line = bytes(self._buffer)
                self._buffer.clear()
                return line or None
        end = self._buffer.index(b"\n") + 1
        line = bytes(self._buffer[:end])
        del self._buffer[:end]
        return line

    def _take(self, n: int) -> bytes:
        while len(self._buffer) < n:
            if not self._fill():
                raise IncompleteRead(bytes(self._buffer), n - len(self._buffer))
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out

    def read(self, method: str) -> tuple[int, bytes]:
        while True:  # informational answers (100 Continue) come before the real one
            status, fields = self._head()
            if status >= 200:
                break
        if method == "HEAD" or status in (204, 304):
            return status, b""
        if "chunked" in fields.get("transfer-encoding", "").lower():
            return status, self._chunks()
        length = fields.get("content-length")
        if length is not None:
            try:
                n = int(length)
            except ValueError:
                n = -1
            if n < 0:
                raise BadStatusLine(f"Content-Length: {length}")
            return status, self._take(n)
        while self._fill():  # no length: the body runs to the end of the stream
            pass
        return status, bytes(self._buffer)

    def _head(self) -> tuple[int, dict[str, str]]:
        """The status and the header fields (names in lower case), read as http.client reads them:
        the end of the stream also ends the header."""
        raw = self._line()
        if raw is None:
            raise RemoteDisconnected("Remote end closed connection without response")
        line = raw.decode("latin-1")
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit() or len(parts[1]) != 3:
            raise BadStatusLine(line)
        fields: dict[str, str] = {}
        size = len(raw)
        while True:
            field = self._line()
            if field is None or field in (b"\r\n", b"\n"):
                return int(parts[1]), fields
            size += len(field)
            if size > MAX_HEAD:
                raise BadStatusLine("got more than 1 MiB of headers")
            name, _, value = field.decode("latin-1").partition(":")
            fields[name.strip().lower()] = value.strip()

    def _chunks(self) -> bytes:
        body: list[bytes] = []
        while True:
            line = self._line()
            if line is None:
                raise IncompleteRead(b"".join(body))
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise IncompleteRead(b"".join(body)) from None
            if size < 0:
                raise IncompleteRead(b"".join(body))
            if size == 0:
                while self._line() not in (None, b"\r\n", b"\n"):  # trailers, up to the blank line
                    pass
                return b"".join(body)
            body.append(self._take(size))
            self._take(2)  # the chunk's CRLF
