"""Automatic retries by failure class (docs/retries.md).

A run submitted with a budget (``max_retries_failure`` for program failures,
``max_retries_preemption`` for infrastructure ends, see :mod:`merlin.ledger.failures`)
gets a *retry keeper*: ``python -m merlin.cli.retry_keeper RUN_DIR`` (its entry point;
the life is :func:`keep` here), a small detached process (its own session) started
only when a budget is above 0. It watches the run through its engine, and when an
attempt ends in a class whose budget is not used up it confirms that nothing of the
attempt still runs (ending what its supervisor left), records a new attempt of the
same run (``pending``, "attempt 3 of 4, retrying in 20 s after lost: ..."), waits the
backoff and hands it to the engine again. One keeper per run (a lock it holds while it
lives). The next look at the run (``jobs status``, ``jobs list --refresh``, ``jobs
wait``, the gateway) starts a new keeper when the old one is gone and a retry is due.

If the run's cluster is down when its retry is due, a cluster the infrastructure ended (a local
head killed, an allocation that ended under the run) is started again as recorded
(:func:`restart_dead_head`); any other is waited for, up to ``MERLIN_RETRY_CLUSTER_WAIT``
seconds (default 900), saying so with a ``start_cluster`` step; then the run is recorded
blocked with the fix, as any submit to a stopped cluster is.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from merlin.errors import Blocked, LockBusy, MerlinError
from merlin.ledger.failures import PROGRAM, attempt_class
from merlin.ledger.status import RunStatus
from merlin.nextsteps import Action, step
from merlin.values import Value

if TYPE_CHECKING:  # pragma: no cover
    from merlin.control.plane import Plane
    from merlin.ledger.models import RunRecord, RunRequest

#: seconds between looks at the run while an attempt is active
POLL = 0.5
#: the longest backoff between attempts
MAX_BACKOFF = 600.0
#: engine block causes that a due retry waits out (the cluster is being started again)
WAIT_CAUSES = frozenset({"no_cluster", "cluster_unreachable", "cluster_not_active"})
#: submits a due retry's engine may refuse (not a block) before the refusal is recorded
ENGINE_ERRORS = 5
_RETRYABLE = (RunStatus.FAILED, RunStatus.LOST, RunStatus.CANCELLED)
#: ended, and never retried automatically
_FINAL = frozenset(s.value for s in RunStatus if s.is_terminal() and s not in _RETRYABLE)


def cluster_wait() -> float:
    return float(os.environ.get("MERLIN_RETRY_CLUSTER_WAIT") or 900)


def wanted(request: RunRequest) -> bool:
    """A keeper is started only for a run with a retry budget."""
    return request.max_retries_failure > 0 or request.max_retries_preemption > 0


def most_attempts(max_retries_failure: int, max_retries_preemption: int) -> int:
    """The "of" in "attempt 3 of 4": the first attempt and every retry both budgets allow."""
    return 1 + max_retries_failure + max_retries_preemption


class Due(Value):
    """A retry the latest attempt's end earns: its class, the budget's use so far, the delay."""

    failure_class: str
    used: int
    budget: int
    delay: float
    reason: str
    number: int
    of: int

    def message(self) -> str:
        return f"attempt {self.number} of {self.of}, retrying in {self.delay:g} s after {self.reason}"


def reason(att: Any) -> str:
    """``lost: node died``: how an attempt ended, in a few words."""
    from merlin.ledger.failures import ended_how

    return ended_how(att.model_dump(mode="json"))


def due(rec: RunRecord, request: RunRequest) -> Due | None:
    """The retry the run's latest attempt earns, or None (succeeded, cancelled by a person,
    blocked, still running, or its class's budget is used up)."""
    if rec.status not in _RETRYABLE or not rec.attempts:
        return None
    att = rec.attempts[-1]
    cls = attempt_class(att)
    if cls is None:
        return None
    used = sum(1 for a in rec.attempts if attempt_class(a) == cls)
    budget = request.max_retries_failure if cls == PROGRAM else request.max_retries_preemption
    if used > budget:
        return None
    delay = min(request.retry_backoff * 2 ** (len(rec.attempts) - 1), MAX_BACKOFF)
    of = most_attempts(request.max_retries_failure, request.max_retries_preemption)
    return Due(cls, used, budget, delay, reason(att), len(rec.attempts) + 1, of)


def retry_line(rec: RunRecord) -> str | None:
    """``attempt 3 of 4, retrying in 12 s after lost: node died`` while an automatic retry is pending."""
    if rec.retry_at is None or rec.status != RunStatus.PENDING:
        return None
    from merlin.clock import utcnow
    from merlin.ledger.failures import attempt_line

    return attempt_line(rec.model_dump(mode="json"), utcnow())


def retry_conditions(rec: RunRecord, at: str) -> list[dict[str, Any]]:
    """The run layer of ``jobs why`` for a run waiting out its retry backoff."""
    from merlin.conditions import condition

    line = retry_line(rec)
    if line is None:
        return []
    prev = rec.attempts[-2]
    evidence = {"attempt": len(rec.attempts), "retry_at": rec.retry_at.isoformat() if rec.retry_at else None,
                "after": prev.status.value, "failure_class": attempt_class(prev), "keeper": dict(rec.retry_keeper)}  # fmt: skip
    return [condition("run", "retry_backoff", line, evidence, at, [step(Action.CANCEL, run_id=rec.run_id)], "it starts by itself")]


# ------------------------------------------------------------------- the keeper's identity


def keeper_alive(keeper: Mapping[str, Any]) -> bool:
    """The recorded keeper still runs (pid and start time; a keeper on another host counts as alive)."""
    pid = keeper.get("pid")
    if not isinstance(pid, int):
        return False
    import socket

    if keeper.get("host") not in (None, socket.gethostname()):
        return True
    from merlin.clusters import procs

    return procs.alive(pid, keeper.get("start"))


def start_keeper(cp: Plane, run_id: str, command: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Start the detached keeper of ``run_id``; the real argv and environment travel in its environment
    (the request on disk holds redacted copies; without them the keeper restores what it can)."""
    import socket
    import subprocess

    from merlin.atomic import open_state_file

    mark(cp, run_id)  # before the keeper exists: a look always finds a run whose keeper may have died
    full = dict(os.environ)
    full["MERLIN_KEEPER_SPEC"] = json.dumps({"command": list(command) if command is not None else None, "env": dict(env or {})})
    with open_state_file(cp.layout.retry_keeper_log(run_id)) as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "merlin.cli.retry_keeper", str(cp.layout.run_dir(run_id))],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(cp.layout.run_dir(run_id)),
            env=full,
            start_new_session=True,
            close_fds=True,
        )
    from merlin.clusters import procs

    me = {"pid": proc.pid, "start": procs.start_of(proc.pid), "host": socket.gethostname()}

    def note(r: RunRecord) -> None:
        if not keeper_alive(r.retry_keeper) or r.retry_keeper.get("pid") == proc.pid:
            r.retry_keeper = me

    cp.ledger.update(run_id, note, cause=f"retry keeper (pid {proc.pid}) started")
    return proc.pid


def pending_retry(cp: Plane, rec: RunRecord) -> bool:
    """The run has ended but a retry is due (its keeper, alive or started now, will make it):
    what ``wait`` waits through. Only runs that were given a keeper are asked."""
    if rec.retry_keeper and rec.retry_at is not None and rec.status == RunStatus.PENDING:
        if not keeper_alive(rec.retry_keeper):  # a retry recorded, not started: a new keeper takes it over
            try:
                start_keeper(cp, rec.run_id)
            except (OSError, MerlinError):
                return False
        return False  # not ended: nothing to wait through
    if not rec.retry_keeper or rec.status not in _RETRYABLE:
        return False
    try:
        request = cp.ledger.read_request(rec.run_id)
    except MerlinError:
        return False
    if due(rec, request) is None:
        if not keeper_alive(rec.retry_keeper):
            _release(cp, rec, None)  # its keeper died with nothing more due: no later look asks again
        return False
    if not keeper_alive(rec.retry_keeper):
        try:
            start_keeper(cp, rec.run_id)  # the next look notices: a keeper that died is replaced
        except (OSError, MerlinError):
            return False
    return True


def mark(cp: Plane, run_id: str) -> None:
    """Note that ``run_id`` has a retry keeper recorded (``keepers/<run_id>``, an empty file)."""
    from merlin.atomic import make_dir, write_if_changed

    make_dir(cp.layout.retry_keepers, private=True)
    write_if_changed(cp.layout.retry_keeper_mark(run_id), b"")
    os.utime(cp.layout.retry_keeper_mark(run_id))  # when it was marked: a look spares a keeper still starting


def unmark(cp: Plane, run_id: str) -> None:
    try:
        os.unlink(cp.layout.retry_keeper_mark(run_id))
    except FileNotFoundError:
        pass


def _just_marked(cp: Plane, run_id: str, within: float = 60.0) -> bool:
    try:
        return time.time() - cp.layout.retry_keeper_mark(run_id).stat().st_mtime < within
    except OSError:
        return False


def notice_all(cp: Plane, skip: frozenset[str] = frozenset()) -> None:
    """The next look's duty (``jobs list``, ``jobs list --refresh``): every run with a keeper recorded
    whose keeper is gone gets a new one when a retry is due. Reads only the runs marked in ``keepers/``
    (cheap when none); a mark whose run has no keeper recorded any more is removed."""
    try:
        marked = os.listdir(cp.layout.retry_keepers)
    except OSError:
        return
    for run_id in marked:
        if run_id.startswith(".") or run_id in skip:
            continue
        try:
            raw = cp.ledger.read_raw(run_id)
        except (MerlinError, OSError, ValueError):  # one unreadable record never fails the listing
            continue
        if raw is None or not raw.get("retry_keeper"):
            if raw is None or not _just_marked(cp, run_id):  # a keeper being started records itself a moment after its mark
                unmark(cp, run_id)  # pruned, or its keeper ended with nothing more due
            continue
        if raw.get("status") in _FINAL and not keeper_alive(raw["retry_keeper"]):
            unmark(cp, run_id)  # succeeded (or blocked): nothing is ever due
            continue
        try:
            notice_raw(cp, raw)
        except (OSError, MerlinError):
            continue


def notice_raw(cp: Plane, raw: Mapping[str, Any]) -> None:
    """:func:`pending_retry` for a record read as JSON (the listing and ``jobs status`` paths): only a
    run that has a keeper recorded and ended retryably is read in full."""
    ended = raw.get("status") in {s.value for s in _RETRYABLE}
    if raw.get("retry_keeper") and (ended or raw.get("retry_at")) and not keeper_alive(raw["retry_keeper"]):
        pending_retry(cp, cp.get(str(raw["run_id"])))


# ---------------------------------------------------------------------------- its life


def keep(cp: Plane, run_id: str) -> int:
    """Watch ``run_id`` and retry it while its budgets allow; return when nothing more is due."""
    from merlin.atomic import file_lock

    spec = json.loads(os.environ.pop("MERLIN_KEEPER_SPEC", "{}") or "{}")
    try:
        with file_lock(cp.layout.retry_keeper_lock(run_id), timeout=0.0, holder=f"retry keeper pid {os.getpid()}"):
            return _keep(cp, run_id, spec)
    except LockBusy:
        return 0  # another keeper has the run


def _keep(cp: Plane, run_id: str, spec: Mapping[str, Any]) -> int:
    import socket

    from merlin.clusters import procs

    me = {"pid": os.getpid(), "start": procs.start_of(os.getpid()), "host": socket.gethostname()}

    def note(r: RunRecord) -> None:
        r.retry_keeper = me

    cp.ledger.update(run_id, note, cause=f"retry keeper (pid {os.getpid()}) watching")
    request = cp.ledger.read_request(run_id)
    while True:
        rec = cp.status(run_id)
        if rec.status == RunStatus.PENDING and rec.attempt is not None and rec.attempt.submission_id is None and rec.retry_at:
            _hand_over(cp, rec, request, spec)  # a retry this keeper's predecessor recorded and did not start
            continue
        if not rec.status.is_terminal():
            time.sleep(POLL)
            continue
        plan = due(rec, request)
        if plan is None:
            if _release(cp, rec, me):
                return 0
            continue  # the run moved meanwhile (a retry by hand): watch it again
        if not _confirm_gone(cp, rec):
            return 1
        fresh = _new_attempt(cp, rec, plan)
        if fresh is None:
            continue  # someone else moved the run first: look again
        _hand_over(cp, fresh, request, spec)


def _release(cp: Plane, seen: RunRecord, me: Mapping[str, Any] | None) -> bool:
    """Nothing more is due: the record forgets its keeper (``me``, or a dead one), so no later look
    reads the run's request to ask whether a retry is due, and the run's mark goes. False if the
    run moved since ``seen``."""
    n = len(seen.attempts)
    moved: list[bool] = []

    def forget(r: RunRecord) -> None:
        if len(r.attempts) != n or not r.status.is_terminal():
            moved.append(True)
        elif (me is not None and r.retry_keeper.get("pid") == me["pid"]) or not keeper_alive(r.retry_keeper):
            r.retry_keeper = {}

    rec = cp.ledger.update(seen.run_id, forget, cause="retry keeper done: nothing more is due")
    if moved:
        return False
    if not rec.retry_keeper:
        unmark(cp, seen.run_id)
    return True


def _confirm_gone(cp: Plane, rec: RunRecord) -> bool:
    """Nothing of the ended attempt runs any more (ending what its supervisor left behind), or the
    run is recorded as not retried, with the reason."""
    from merlin.control.lifecycle import leftovers

    left = leftovers(cp, rec)
    if left:
        try:
            cp.engine(rec.engine).cancel(rec, grace=2.0)
        except Exception:
            pass
        left = leftovers(cp, rec)
    if not left:
        return True
    cp.ledger.append_event(rec.run_id, "note", f"not retried automatically: {left}", attempt=len(rec.attempts))
    return False


def _new_attempt(cp: Plane, seen: RunRecord, plan: Due) -> RunRecord | None:
    from datetime import timedelta

    from merlin.clock import utcnow
    from merlin.control.submit import submitter
    from merlin.ledger.models import Attempt
    from merlin.ledger.store import set_status

    n = len(seen.attempts)
    moved: list[bool] = []

    def add(r: RunRecord) -> list[dict[str, Any]]:
        if len(r.attempts) != n or r.status != seen.status:
            return []
        moved.append(True)
        r.attempts[-1].failure_class = plan.failure_class  # type: ignore[assignment]
        if r.attempts[-1].end_time is None:
            r.attempts[-1].end_time = utcnow()  # a lost attempt: confirmed gone now
        r.attempts = [*r.attempts, Attempt(number=n + 1, engine=r.engine, status=RunStatus.PENDING, **submitter())]
        r.outcome = None  # the new attempt's executor reports its own
        r.retry_at = utcnow() + timedelta(seconds=plan.delay)
        set_status(r, RunStatus.PENDING, plan.message(), [step(Action.STATUS, run_id=r.run_id), step(Action.CANCEL, run_id=r.run_id)])
        detail = {"failure_class": plan.failure_class, "used": plan.used, "budget": plan.budget, "delay": plan.delay}
        return [{"event": "retry", "cause": f"automatic retry after {plan.reason} ({plan.failure_class} {plan.used} of {plan.budget})", "attempt": n + 1, "detail": detail}]

    rec = cp.ledger.update(seen.run_id, add, cause="automatic retry")
    return rec if moved else None


def _still_ours(cp: Plane, run_id: str, n: int) -> RunRecord | None:
    r = cp.get(run_id)
    ok = r.status == RunStatus.PENDING and len(r.attempts) == n and r.attempt is not None and r.attempt.submission_id is None
    return r if ok else None


def _hand_over(cp: Plane, rec: RunRecord, request: RunRequest, spec: Mapping[str, Any]) -> RunRecord:
    """Wait the backoff (a cancel meanwhile ends it), wait for the cluster if it is down, then launch."""
    from merlin.clock import utcnow
    from merlin.control.lifecycle import restored_env
    from merlin.control.submit import launch

    run_id, n = rec.run_id, len(rec.attempts)
    while rec.retry_at is not None and utcnow() < rec.retry_at:
        time.sleep(min(POLL, max(0.0, (rec.retry_at - utcnow()).total_seconds())))
        got = _still_ours(cp, run_id, n)
        if got is None:
            return cp.get(run_id)
        rec = got
    env, missing = restored_env(request.env, spec.get("env") or {})
    command = spec.get("command") or list(request.command)
    from merlin.ledger.text import has_redacted

    if missing or has_redacted(command):
        return _block(cp, run_id, n, f"its secret values ({', '.join(missing) or 'in the command'}) are not kept by the ledger; retry it by hand with them")
    deadline = time.monotonic() + cluster_wait()

    def started(r: RunRecord) -> None:
        r.retry_at = None

    # after an infrastructure end, a head proven dead is started again before a submit meets it (a dead
    # GCS's dashboard can hold the submit for its whole timeout); after a program's failure the cluster is
    # not asked first; either way a cluster that turns out down gets the same one chance below
    cluster = request.cluster or (rec.cluster.name if rec.cluster else None)
    infra = len(rec.attempts) > 1 and rec.attempts[-2].failure_class == "infrastructure"
    restarted = infra and cp.engine(rec.engine).uses_cluster and restart_dead_head(cp, cluster, run_id, n)
    refusals = 0
    while True:
        if _still_ours(cp, run_id, n) is None:
            return cp.get(run_id)
        waits = WAIT_CAUSES if time.monotonic() < deadline else frozenset()
        if refusals < ENGINE_ERRORS and waits:
            waits = waits | {"engine_error"}  # a cluster just started again may refuse a submit or two
        try:
            launched = launch(cp, run_id, list(command), env, wait_causes=waits)
        except Blocked as exc:  # its cluster is down: wait for it to be started again (docs/retries.md)
            refusals += exc.cause == "engine_error"
            if not restarted and exc.cause != "engine_error":
                restarted = True
                if restart_dead_head(cp, cluster, run_id, n):
                    continue
            cp.ledger.update(run_id, _waiting_for_cluster(n, exc), cause="its cluster is down")
            time.sleep(2.0)
            continue
        cp.ledger.update(run_id, started, cause="handed to its engine")
        return launched


def restart_dead_head(cp: Plane, name: str | None, run_id: str, n: int) -> bool:
    """Start again, as it was recorded (:func:`merlin.clusters.start_args`), the cluster a retry is due
    on, when the infrastructure ended it: a local or SSH head whose GCS and raylet are proven dead
    (SIGKILLed, OOM-killed; an SSH head's host answers and they are gone) while its record still
    says active, or a Slurm or PBS allocation that ended after the run's last attempt was handed to
    it (walltime, preemption, failed, cancelled outside merlin);
    True once it is active. Never a cluster a person stopped or that idled out, nor a local head that
    still runs (it may only be slow). Concurrent keepers meet at the cluster's lock: one starts it,
    the others find it live and wait for it with their own start."""
    from merlin.clusters import ENDED_ON_PURPOSE, start_args
    from merlin.clusters.base import DEFAULT_KIND
    from merlin.ledger.status import ClusterStatus

    record = cp.ledger.read_cluster(name) if name else None
    if record is None:
        return False
    backend = cp.cluster_backend(record.kind)
    head_alive = getattr(backend, "head_alive", None)  # a local head's own check, an SSH head's over ssh (not in the protocol)
    if record.kind == DEFAULT_KIND or head_alive is not None:
        if record.status != ClusterStatus.ACTIVE or head_alive is None or head_alive(record) is not False:
            return False
        why = "its head was dead (its GCS and raylet gone)"
    else:
        record = backend.observe(record)  # its end is noticed here if nothing has looked since
        prior = cp.get(run_id).attempts[-2:-1]
        handed = prior[0].submitted_at if prior else None
        ended_after = record.stopped_at is not None and handed is not None and record.stopped_at >= handed
        if not record.status.is_terminal() or record.stop_reason in ENDED_ON_PURPOSE or not ended_after:
            return False
        why = f"its {record.kind} cluster ended under the last attempt ({record.stop_reason or record.status.value})"

    def say(r: RunRecord) -> list[dict[str, Any]]:
        if r.status != RunStatus.PENDING or len(r.attempts) != n:
            return []
        r.message = f"attempt {n}: {why}; starting cluster {record.name} again as recorded"
        return [{"event": "note", "cause": f"{why}: the retry keeper starts it again as recorded", "attempt": n,
                 "detail": {"cluster": record.name}}]  # fmt: skip

    cp.ledger.update(run_id, say, cause="its cluster is down: starting it again")
    try:
        started, _ = cp.start_cluster(record.kind, record.name, wait=True, **start_args(record))
    except MerlinError:
        return False  # the wait below says why, with the step that starts it by hand
    return started.status == ClusterStatus.ACTIVE


def _waiting_for_cluster(n: int, exc: Blocked) -> Any:
    text = f"attempt {n}: waiting for its cluster before retrying ({exc.message})"

    def say(r: RunRecord) -> None:
        if r.status == RunStatus.PENDING and len(r.attempts) == n and r.message != text:
            r.message = text
            r.next_steps = [*exc.next_steps, step(Action.CANCEL, run_id=r.run_id)]  # type: ignore[list-item]

    return say


def _block(cp: Plane, run_id: str, n: int, why: str) -> RunRecord:
    from merlin.ledger.store import set_status

    def mark(r: RunRecord) -> None:
        if r.status == RunStatus.PENDING and len(r.attempts) == n:
            r.retry_at = None
            set_status(r, RunStatus.BLOCKED, f"blocked: {why}", [step(Action.RETRY, run_id=run_id)])

    return cp.ledger.update(run_id, mark, cause="automatic retry blocked")
