"""Wake a waiting process the moment its lease is granted, instead of letting it poll.

The waiter binds an abstract Unix datagram socket named after the book and the
lease; the pass that grants the lease sends it one byte after its records are
written. Abstract sockets are Linux-only and local to a host (and a network
namespace): elsewhere, or for a grant made on another host sharing the state
root, nothing arrives and the waiter's slower poll of its lease file notices.
A datagram carries no data that is trusted: a stray one only makes the waiter
read its lease file once more, and a local process that binds a waiter's name
first only sends that waiter back to polling.
"""

from __future__ import annotations

import hashlib
import socket


def address(book_dir: str, lease_id: str) -> bytes:
    """The abstract socket name of one lease of one book (at most 107 bytes, whatever the id's length)."""
    digest = hashlib.sha1(f"{book_dir}\0{lease_id}".encode(), usedforsecurity=False).hexdigest()
    return b"\0merlin-lease-" + digest.encode()


class Doorbell:
    """The waiter's end: ``bell = Doorbell.open(dir, lid)`` (None where not supported), ``bell.wait(0.1)``."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    @classmethod
    def open(cls, book_dir: str, lease_id: str) -> Doorbell | None:
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        except (AttributeError, OSError):
            return None
        try:
            sock.bind(address(book_dir, lease_id))
        except OSError:  # not Linux, or another process already waits on this lease
            sock.close()
            return None
        return cls(sock)

    def wait(self, timeout: float) -> bool:
        """True when rung within ``timeout`` seconds (every pending ring is consumed)."""
        self._sock.settimeout(max(timeout, 0.0))
        try:
            self._sock.recv(16)
        except (TimeoutError, BlockingIOError):
            return False
        self._sock.setblocking(False)
        try:
            while True:
                self._sock.recv(16)
        except (BlockingIOError, OSError):
            pass
        return True

    def close(self) -> None:
        self._sock.close()


class Ringer:
    """The granter's end, one unbound socket per book, kept between passes."""

    def __init__(self, book_dir: str) -> None:
        self._dir = book_dir
        self._sock: socket.socket | None = None
        self._broken = False

    def ring(self, lease_id: str) -> None:
        if self._broken:
            return
        if self._sock is None:
            try:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.setblocking(False)
            except (AttributeError, OSError):
                self._broken = True
                return
        try:
            self._sock.sendto(b"!", address(self._dir, lease_id))
        except OSError:  # nobody waits there (ECONNREFUSED), its queue is full, or not Linux
            pass

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
