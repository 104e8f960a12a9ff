"""Job names: one live run per name, whoever submits it and however often.

A submit that names its job (``ControlPlane.submit(name=...)``, ``merlin.client``'s
``JobRequest.name``, ``jobs submit --name``) holds the name's lock
(``Layout.job_name_lock``) while it looks up the run the name was last given to
(``names/<name>.json``), asks that run's engine where it is, and, unless it is
live, submits a new run and points the name at it. Two concurrent submits of one
name therefore start one run: the second finds the first's run live and adopts it
(or, with ``adopt_existing`` off, raises :class:`merlin.errors.AlreadyExists`
carrying its run id). A name whose run ended (succeeded, failed, cancelled, lost,
blocked) is free again. The name is also written into the run's request record.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from merlin.errors import AlreadyExists, BadInput, NotFound
from merlin.nextsteps import Action, step

if TYPE_CHECKING:  # pragma: no cover
    from merlin.control.plane import Plane
    from merlin.ledger.models import RunRecord

#: what a job name may be: a file name, a Ray submission-id prefix and a shell word, no spaces
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
#: how long a submit waits for another submit of the same name (it may be starting a Ray job)
LOCK_TIMEOUT = 120.0


def check_name(name: object) -> str:
    """A job name, or :class:`BadInput` naming the argument ``name``."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or ".." in name:  # (fullmatch: '$' lets a trailing newline through)
        raise BadInput(f"`name` {name!r} is not a job name: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit (no spaces)", argument="name")
    return name


def live_run(cp: Plane, name: str) -> RunRecord | None:
    """The live run (waiting, pending or running, after asking its engine) the name was last given to."""
    path = cp.layout.job_name(name)
    try:
        run_id = json.loads(path.read_text(encoding="utf-8"))["run_id"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        rec = cp.status(run_id)
    except NotFound:
        return None
    return None if rec.status.is_terminal() else rec


def submit_named(cp: Plane, name: str, adopt_existing: bool, submit: Callable[[], RunRecord]) -> RunRecord:
    """Under the name's lock: the live run of that name (adopted, or :class:`AlreadyExists`), else ``submit()``'s new run."""
    from merlin.atomic import atomic_write_json, file_lock, make_dir

    check_name(name)
    path = cp.layout.job_name(name)
    make_dir(path.parent, private=True)
    with file_lock(cp.layout.job_name_lock(name), timeout=LOCK_TIMEOUT, holder=f"pid {os.getpid()} (job name {name})"):
        live = live_run(cp, name)
        if live is not None:
            if adopt_existing:
                return live
            raise AlreadyExists(
                f"job `name` {name!r} is taken by run {live.run_id} ({live.status.value}); adopt it, or cancel it first",
                run_id=live.run_id,
                next_steps=[step(Action.STATUS, run_id=live.run_id), step(Action.CANCEL, run_id=live.run_id)],
            )
        rec = submit()
        atomic_write_json(path, {"name": name, "run_id": rec.run_id})
        return rec
