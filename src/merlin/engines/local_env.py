"""The local supervisor's environment phase: build (or reuse) the run's env before its command.

While uv builds, the run is ``waiting`` (``waiting_on``: the env and uv's last line;
``metadata.waiting_for = "env"``; the supervisor is recorded as its waiter, so a
supervisor that dies leaves the run ``lost``, not waiting forever). A build that
fails records the run ``blocked`` (its command never ran) with uv's error line; a
cancel while it builds stops uv.
"""

from __future__ import annotations

import os
import socket
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from merlin.ledger import Ledger
    from merlin.ledger.models import RunRecord, RunRequest

#: metadata keys the env phase sets while the run waits (cleared when it starts)
WAIT_KEYS = ("waiting_for", "env_id", "env_cache_dir", "lease_waiter_pid", "lease_waiter_start", "lease_waiter_host", "lease_waiter_attempt")


def env_phase(ledger: Ledger, run_id: str, attempt: int, request: RunRequest) -> dict[str, Any] | None:
    """``{env_id, env_cache}`` once the env is ready ({} when the run has no env to build), or
    None when the command must not start (the build failed, or the run was cancelled)."""
    from merlin.envs.build import BuildFailed, BuildStopped, ensure
    from merlin.envs.cache import EnvCache
    from merlin.envs.spec import env_id, needs_build
    from merlin.ledger.status import RunStatus
    from merlin.ledger.store import set_status
    from merlin.nextsteps import Action, step

    rt = request.runtime.model_dump(mode="json") if request.runtime is not None else None
    if not needs_build(rt):
        return {}
    assert rt is not None
    cache = EnvCache(ledger.layout.env_cache())
    eid = env_id(rt)
    if cache.ready(eid):
        cache.touch(eid)
        return {"env_id": eid, "env_cache": "hit"}
    from merlin.procid import start_time

    short = eid[:12]

    def mark_waiting(r: RunRecord) -> None:
        if r.status != RunStatus.PENDING or len(r.attempts) != attempt:
            return
        set_status(r, RunStatus.WAITING, f"waiting for its environment {short} to build", [step(Action.WHY, run_id=run_id), step(Action.CANCEL, run_id=run_id)])
        r.waiting_on = f"env {short} building"
        r.metadata.update({"waiting_for": "env", "env_id": eid, "env_cache_dir": str(cache.root), "lease_waiter_pid": os.getpid(),
                           "lease_waiter_start": start_time(os.getpid()), "lease_waiter_host": socket.gethostname(), "lease_waiter_attempt": attempt})  # fmt: skip

    rec = ledger.update(run_id, mark_waiting, cause=f"its environment {short} is not built yet: building it")
    if rec.status != RunStatus.WAITING:
        return None
    last: dict[str, Any] = {"line": "", "at": 0.0, "checked": 0.0, "stop": False}

    def progress(state: dict[str, Any]) -> None:
        line = str(state.get("line") or "")
        now = time.monotonic()
        if line and line != last["line"] and now - float(last["at"]) >= 1.0:
            last["line"], last["at"] = line, now

            def note(r: RunRecord) -> None:
                if r.status == RunStatus.WAITING and len(r.attempts) == attempt:
                    r.waiting_on = f"env {short} building: {line}"[:200]

            ledger.update(run_id, note, cause="environment build progress")

    def should_stop() -> bool:
        now = time.monotonic()
        if now - float(last["checked"]) >= 1.0:
            last["checked"] = now
            r = ledger.read_record(run_id)
            last["stop"] = r.status != RunStatus.WAITING or len(r.attempts) != attempt
        return bool(last["stop"])

    try:
        _dir, eid, how = ensure(rt, cache, progress=progress, should_stop=should_stop)
    except BuildStopped:
        return None
    except BuildFailed as exc:
        failed = exc
        from merlin.atomic import open_state_file

        with open_state_file(ledger.layout.attempt_log(run_id, attempt)) as log:
            log.write(f"merlin: environment {eid} could not be built; uv said: {exc.line}\n".encode())

        def mark_blocked(r: RunRecord) -> None:
            if r.status != RunStatus.WAITING or len(r.attempts) != attempt:
                return
            from merlin.clock import utcnow

            att = r.attempts[-1]
            att.env_id = eid
            att.error_type = "ENV_BUILD_FAILED"
            att.error_message = failed.line
            att.end_time = utcnow()
            clear(r)
            set_status(r, RunStatus.BLOCKED, build_failed_message(eid, failed.line, failed.no_space, cache.root), [step(Action.RETRY, run_id=run_id)])

        ledger.update(run_id, mark_blocked, cause=f"environment {short} failed to build")
        return None
    return {"env_id": eid, "env_cache": how}


def build_failed_message(env_id: str, line: str, no_space: bool, cache_root: Any) -> str:
    """The message of a run blocked by its env's failed build, on every engine: uv's line, then the fix."""
    return f"blocked: its environment {env_id[:12] or '(unknown)'} could not be built (its command never ran): {line.rstrip('.')}. {fix_for(no_space, cache_root)}, then retry it"


def fix_for(no_space: bool, cache_root: Any) -> str:
    """What to do about a failed build: space when uv (or merlin) found the disk full, else the inputs."""
    if no_space:
        return (f"The filesystem of the env cache ({cache_root}) is full: free space there (prune the envs no run uses) "
                "or put the cache on a larger filesystem (`MERLIN_ENV_CACHE`, or the cluster's `env_cache`)")  # fmt: skip
    return "Fix the requirements (or the lockfile, or the index options)"


def clear(r: RunRecord) -> None:
    """Forget the env phase's waiting marks."""
    r.waiting_on = None
    for k in WAIT_KEYS:
        r.metadata.pop(k, None)
