"""The local engine's memory limit (``RunRequest.memory``, ``--memory``): the supervisor samples the
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

    from merlin.clusters import procs

    roots = set(roots)
    pids = roots | procs.descendants(roots)
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
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
        from merlin.clusters import procs

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
            procs.signal_pids(pids - {os.getpid()}, signal.SIGKILL)
            return
