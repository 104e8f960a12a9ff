"""A run's memory limit (``RunRequest.memory``, ``--memory``), held by whoever waits for the command: the
local engine's supervisor, and the env launcher on engines that only reserve memory (Ray). It samples the
resident memory of the command's process tree every :data:`EVERY` seconds and ends the tree with
SIGKILL once it is over the limit, as a batch scheduler's cgroup would; the attempt then fails with
``MEMORY_LIMIT`` (a program failure: ``--retries`` counts it). Between two samples a command can go
past the limit for a moment; what is sampled is the sum over the tree, so a command that forks
workers is held to the limit as a whole."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterable

#: seconds between two samples of the tree's resident memory
EVERY = 0.25


def tree_rss(roots: Iterable[int]) -> tuple[int, set[int]]:
    """The resident memory (bytes) of ``roots`` and every process below them, and their pids."""
    import psutil

    total, pids = 0, set()
    for root in set(roots):
        try:
            tree = [psutil.Process(root)]
            tree += tree[0].children(recursive=True)
        except (psutil.Error, OSError):
            continue
        for proc in tree:
            try:
                total += proc.memory_info().rss
                pids.add(proc.pid)
            except (psutil.Error, OSError):
                continue
    return total, pids


class MemoryWatch:
    """Within ``with``: a thread that ends ``roots``' tree (and the process group ``pgid``) once its
    resident memory is over ``limit`` bytes; ``over`` is the memory it saw then (None: never over)."""

    def __init__(self, roots: Iterable[int], limit: int, pgid: int | None = None) -> None:
        self.roots, self.limit, self.pgid = set(roots), limit, pgid
        self.over: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="merlin-memory-watch", daemon=True)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(EVERY):
            used, pids = tree_rss(self.roots)
            if used <= self.limit:
                continue
            self.over = used
            if self.pgid:
                try:
                    os.killpg(self.pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for pid in pids - {os.getpid()}:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            return


def over_text(used: int, limit: int) -> str:
    """``its processes used X of memory, over its limit of Y``: the attempt's error message wherever a
    command was ended for its memory (the local supervisor, the launcher on a Ray node, a gang's replica)."""
    from merlin.units import human_bytes

    return f"its processes used {human_bytes(used)} of memory, over its limit of {human_bytes(limit)}"


def failed_message(why: str) -> str:
    """The run's message once it failed ``MEMORY_LIMIT``, ``why`` being what :func:`over_text` said."""
    return f"failed: ended by merlin (SIGKILL): {why}; give it more (memory) or make it use less, then retry it"
