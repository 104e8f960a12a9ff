"""A retention policy that applies itself (``[retention] auto = true``, docs/config.md).

A command that records a run asks :func:`keep` after it: at most once every :data:`EVERY`
seconds per state root, that starts a detached prune by the policy and returns at once. The
day's first command pays a stat and a fork; every other one, a stat. The prune is the one
``jobs prune`` runs (:func:`merlin.control.find.prune`): it never removes an active run, one a
live lease names, or one being written. Two commands at the day's turn may both start one; each
run is still removed once (under its lock), and the second finds nothing left to do.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence

from merlin.control.plane import Plane

#: seconds between two prunes of one state root
EVERY = 86400.0


def due(cp: Plane, every: float = EVERY) -> bool:
    """No prune began in the last ``every`` seconds (by the stamp's mtime)."""
    try:
        return time.time() - cp.layout.retention_stamp.stat().st_mtime >= every
    except FileNotFoundError:
        return True


def keep(cp: Plane, older_than: float, statuses: Sequence[str] = (), *, every: float = EVERY) -> int | None:
    """Start the detached prune of runs that ended more than ``older_than`` seconds ago (of ``statuses``,
    if given) when one is due; its pid, or None when the last one is recent."""
    from merlin.control.find import check_policy

    check_policy(older_than, statuses)
    if not due(cp, every):
        return None
    from merlin.atomic import atomic_write_text, open_state_file
    from merlin.clock import iso

    atomic_write_text(cp.layout.retention_stamp, json.dumps({"started_at": iso(time.time()), "older_than": older_than, "status": list(statuses)}) + "\n")
    with open_state_file(cp.layout.retention_log) as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "merlin.cli.retention_prune", str(cp.root), repr(float(older_than)), *statuses],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=str(cp.root),
            start_new_session=True, close_fds=True,
        )  # fmt: skip
    return proc.pid
