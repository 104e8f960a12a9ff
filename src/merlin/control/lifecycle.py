"""A run's life after submission: cancel, retry, wait; and the runs a cluster stop ends."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from merlin.control.checks import check_env, first_line
from merlin.errors import BadInput, Blocked, MerlinError
from merlin.ledger.paths import validate_name
from merlin.ledger.status import RunStatus, engine_waits, on_its_engine
from merlin.ledger.store import set_status
from merlin.nextsteps import Action, step

if TYPE_CHECKING:  # pragma: no cover
    from merlin.control.plane import Plane
    from merlin.ledger.models import ClusterRecord, RunRecord


def wait(cp: Plane, run_id: str, timeout: float | None = None, poll: float = 0.5) -> RunRecord:
    """The run's record once it has ended (and no retry of it is due), or as it is at ``timeout``. An
    engine whose status is the ledger's own (local) is looked at after 20 ms, then 1.5 times later
    each time up to its interval: a short command's wait ends soon after it; others every interval."""
    deadline = None if timeout is None else time.monotonic() + timeout
    rec = cp.status(run_id)
    eng = cp.engine(rec.engine)
    limit = eng.poll_interval
    interval = poll if limit is None else min(poll, limit)
    from merlin.clock import pauses
    from merlin.control.retries import pending_retry

    pause = pauses(0.02 if eng.reports_own_status else interval, interval)
    while not rec.status.is_terminal() or pending_retry(cp, rec):  # an ended attempt with a retry due: wait for it
        if deadline is not None and time.monotonic() > deadline:
            break
        time.sleep(next(pause))
        rec = cp.status(run_id)
    return rec


def cancel(cp: Plane, run_id: str, grace: float = 5.0, timeout: float = 15.0) -> RunRecord:
    """Stop a run. An engine that reports its own status is told after the ledger says
    cancelled (so its reporter sees it); any other is asked, then observed until it ends."""
    from merlin.clock import utcnow
    from merlin.engines.base import CancelResult

    rec = cp.get(run_id)
    if rec.status.is_terminal() and rec.status != RunStatus.BLOCKED:
        left = leftovers(cp, rec)
        if left:  # a lost run whose processes outlived their supervisor: end them
            cp.ledger.append_event(run_id, "cancel_requested", f"user (pid {os.getpid()}): {left}", attempt=len(rec.attempts))
            cp.engine(rec.engine).cancel(rec, grace=grace)
            if leftovers(cp, rec):
                raise Blocked(f"cannot end what is left of run {run_id}: {leftovers(cp, rec)}", "survivors")
            cp.ledger.append_event(run_id, "note", "the processes left behind by its supervisor were ended", attempt=len(rec.attempts))
        return rec
    again = [step(Action.RETRY, run_id=run_id)]
    if rec.status == RunStatus.WAITING and not engine_waits(rec.status.value, rec.metadata):
        return _cancel_waiting(cp, run_id, again)  # nothing of it at its engine yet (else: its engine ends its job, below)
    if rec.status == RunStatus.BLOCKED or (rec.attempt and not rec.attempt.submission_id):

        def cancel_blocked(r: RunRecord) -> None:
            if r.status in (RunStatus.BLOCKED, RunStatus.PENDING):
                set_status(r, RunStatus.CANCELLED, "cancelled before it ran; retry it to run it", again)

        return cp.ledger.update(run_id, cancel_blocked, cause="cancelled by user")
    eng = cp.engine(rec.engine)
    if eng.reports_own_status:

        def cancel_first(r: RunRecord) -> list[dict[str, Any]]:
            if not r.status.is_active():
                return []
            if r.attempts:
                r.attempts[-1].end_time = utcnow()
            set_status(r, RunStatus.CANCELLED, "cancelled (its processes were ended); retry it to run it again", again)
            return [{"event": "cancel_requested", "cause": f"user (pid {os.getpid()})", "attempt": len(r.attempts)}]

        rec = cp.ledger.update(run_id, cancel_first, cause="cancelled by user")
        eng.cancel(rec, grace=grace)
        return cp.get(run_id)
    cp.ledger.append_event(run_id, "cancel_requested", f"user (pid {os.getpid()})", attempt=len(rec.attempts))
    try:
        result = eng.cancel(rec, grace=grace)
    except MerlinError as exc:
        seen = cp.status(run_id)  # its engine is gone: if that makes it lost, there is nothing left to cancel
        if seen.status.is_terminal():
            return seen
        if isinstance(exc, Blocked):
            raise Blocked(f"cannot cancel run {run_id}: {exc.message}", exc.cause, next_steps=exc.next_steps) from None
        raise
    except Exception as exc:
        seen = cp.status(run_id)
        if seen.status.is_terminal():
            return seen
        raise Blocked(f"cannot cancel run {run_id} on its {rec.engine} engine: {first_line(exc)}", "engine_error") from None
    if result == CancelResult.NEVER_STARTED:
        return _cancel_never_started(cp, run_id)
    deadline = time.monotonic() + timeout
    never_started_by = time.monotonic() + min(timeout, 3.0)
    rec = cp.status(run_id)
    while on_its_engine(rec.status.value, rec.metadata) and time.monotonic() < deadline:
        if rec.status == RunStatus.PENDING and time.monotonic() >= never_started_by:
            return _cancel_never_started(cp, run_id)
        time.sleep(0.3)
        rec = cp.status(run_id)
    return rec


def leftovers(cp: Plane, rec: RunRecord) -> str | None:
    """What of an ended run's latest attempt still runs (its engine's ``leftovers``), or None."""
    probe = getattr(cp.engine(rec.engine), "leftovers", None)
    return probe(rec) if probe is not None and rec.status.is_terminal() else None


def _cancel_waiting(cp: Plane, run_id: str, again: list[dict[str, Any]]) -> RunRecord:
    """A run waiting for its lease: the ledger says cancelled, then its lease request is
    withdrawn (its waiter sees either and exits without starting it)."""
    from merlin.clock import utcnow

    def mark(r: RunRecord) -> None:
        if r.status == RunStatus.WAITING:
            if r.attempts:
                r.attempts[-1].end_time = utcnow()
            set_status(r, RunStatus.CANCELLED, "cancelled while waiting for its lease; retry it to queue again", again)

    rec = cp.ledger.update(run_id, mark, cause="cancelled by user while waiting for its lease")
    for lid in rec.leases:
        try:
            if cp.leases.show(lid)["state"] == "waiting":
                cp.leases.cancel(lid, reason=f"run {run_id} was cancelled")
        except MerlinError:
            pass  # already granted and released, or never written: the waiter settles it
    return rec


def _cancel_never_started(cp: Plane, run_id: str) -> RunRecord:
    """An engine may be unable to stop an attempt it never scheduled (Ray queues the stop
    request in the job's actor). The user asked to cancel, so the ledger says cancelled,
    and the message says what the engine will still show."""
    from merlin.clock import utcnow

    def mark(r: RunRecord) -> None:
        if r.status != RunStatus.PENDING:
            return
        att = r.attempts[-1]
        att.end_time = utcnow()
        att.error_type = "CANCELLED_BEFORE_START"
        set_status(
            r,
            RunStatus.CANCELLED,
            f"cancelled before its engine started it; the {r.engine} engine may list {att.submission_id} as pending until its start "
            f"timeout (Ray: RAY_JOB_START_TIMEOUT_SECONDS, default 900 s); merlin's stop request stays queued for it in case it is ever "
            f"scheduled; retry it to run it again",
            [step(Action.RETRY, run_id=run_id)],
        )

    return cp.ledger.update(run_id, mark, cause="cancelled by user before its engine scheduled it")


def retry(
    cp: Plane, run_id: str, env: Mapping[str, str] | None = None, cluster: str | None = None, wait_for: bool = False, timeout: float | None = None
) -> RunRecord:
    from merlin.control.submit import launch, submitter
    from merlin.ledger.models import Attempt, ClusterRef
    from merlin.ledger.text import has_redacted

    rec = cp.get(run_id)
    if on_its_engine(rec.status.value, rec.metadata):
        rec = cp.status(run_id)  # observe it first: a run whose cluster died is lost, and retryable
    if not rec.status.is_retryable():
        if rec.status == RunStatus.SUCCEEDED:
            raise BadInput(f"run {run_id} succeeded; nothing to retry (submit a new run to run it again)")
        raise BadInput(f"run {run_id} is {rec.status.value}; cancel it first or wait for it", next_steps=[step(Action.CANCEL, run_id=run_id)])
    left = leftovers(cp, rec)
    if left:
        raise Blocked(
            f"run {run_id} is {rec.status.value} but {left}; cancel it to end them before retrying, or a second copy would run beside them",
            "survivors",
            next_steps=[step(Action.CANCEL, run_id=run_id)],
        )
    request = cp.ledger.read_request(run_id)
    if request.runtime is not None and rec.attempt is not None and rec.attempt.error_type == "ENV_BUILD_FAILED":
        from merlin.control.runtime import refresh_for_retry

        request = refresh_for_retry(cp, request)
    if has_redacted(request.command):
        raise BadInput(f"run {run_id}'s command held secret values that the ledger redacted; submit it again")
    real_env, missing = restored_env(request.env, check_env(env))
    if missing:
        raise BadInput(
            f"run {run_id} had secret environment values that the ledger does not keep ({', '.join(missing)}); "
            "export them or give them in `env` to the retry",
            argument="env",
        )
    if cluster is not None:
        validate_name(cluster, "cluster name")
        if not cp.engine(rec.engine).uses_cluster:
            raise BadInput(f"`cluster` applies to runs of engines that run on a cluster; run {run_id} is a {rec.engine} run", argument="cluster")

    def new_attempt(r: RunRecord) -> list[dict[str, Any]]:
        if not r.status.is_retryable():
            raise BadInput(f"run {run_id} changed to {r.status.value} meanwhile; not retried")
        n = len(r.attempts) + 1
        r.attempts = [*r.attempts, Attempt(number=n, engine=r.engine, status=RunStatus.PENDING, **submitter())]
        r.outcome = None  # the new attempt's executor reports its own (the last one's stays in the events)
        if cluster is not None:
            r.cluster = ClusterRef(name=cluster)
        if bundles:  # a run that needs hardware queues for its lease again
            r.leases = [lease_id]
            r.lease_items = []
            set_status(r, RunStatus.WAITING, f"retrying (attempt {n}): waiting for lease {lease_id}")
        else:
            set_status(r, RunStatus.PENDING, f"retrying (attempt {n})")
        return [{"event": "retry", "cause": f"retry requested (pid {os.getpid()})", "attempt": n}]

    bundles: list[dict[str, Any]] = []
    lease_id = ""
    if request.leases:
        from merlin.leases.book import new_lease_id
        from merlin.leases.runs import check_request

        bundles = check_request(cp.leases, list(request.leases))
        lease_id = new_lease_id()
    from merlin.integrations.targetgen_runs import retry_claim

    with retry_claim(cp, rec):  # a TargetGen run: no other run or execute on its target directory
        rec = cp.ledger.update(run_id, new_attempt, cause="retry")
    if bundles:
        from merlin.control.submit import queue_for_lease

        rec = queue_for_lease(cp, rec, list(request.command), real_env, bundles, lease_id)
    else:
        rec = launch(cp, run_id, list(request.command), real_env)
    from merlin.control.retries import keeper_alive, start_keeper, wanted

    if wanted(request) and not keeper_alive(rec.retry_keeper) and rec.status != RunStatus.BLOCKED:
        start_keeper(cp, run_id, list(request.command), real_env)  # what is left of its budgets applies to this attempt too
        rec = cp.get(run_id)
    if wait_for and not rec.status.is_terminal():
        rec = wait(cp, run_id, timeout=timeout)
    return rec


def restored_env(recorded: Mapping[str, str], overrides: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """A run's environment again: ``overrides`` first, then what the request recorded; values the
    ledger redacted come from this process's environment. Returns (env, names still missing)."""
    from merlin.ledger.text import REDACTED

    real_env: dict[str, str] = {}
    missing = []
    for k, v in recorded.items():
        if k in overrides:
            real_env[k] = overrides[k]
        elif REDACTED in v:  # redacted whole (secret name) or in part (secret shape)
            if k in os.environ:
                real_env[k] = os.environ[k]
            else:
                missing.append(k)
        else:
            real_env[k] = v
    for k, v in overrides.items():
        real_env.setdefault(k, v)
    return real_env, missing


def runs_on_cluster(cp: Plane, name: str) -> list[RunRecord]:
    """The runs not over yet on cluster ``name`` (reconciled with their engine first)."""
    ids = []
    for d in cp.ledger.list_raw():
        if RunStatus(d["status"]).is_terminal() or (d.get("cluster") or {}).get("name") != name:
            continue
        if cp.engine(d["engine"]).uses_cluster:
            ids.append(d["run_id"])
    if ids:
        cp.refresh(ids)
    return [r for r in (cp.get(i) for i in ids) if not r.status.is_terminal()]


def stop_cluster(cp: Plane, name: str, grace: float = 5.0, force: bool = False, **kwargs: Any) -> ClusterRecord:
    """Stop a cluster. Runs still active on it are listed and refused without ``force``; with it,
    each is recorded as ended by the stop (cancelled, "cluster stopped", retry step) and its logs
    are copied into the ledger before the cluster (and Ray's copy of the logs) goes."""
    from merlin.clock import utcnow
    from merlin.errors import NotFound

    cp.layout.cluster_record(name)
    record = cp.ledger.read_cluster(name)
    if record is None:
        raise NotFound(f"no cluster '{name}' recorded in {cp.ledger.root}", next_steps=[step(Action.LIST_CLUSTERS)])
    active = runs_on_cluster(cp, name) if record.status.is_live() else []
    foreign = foreign_jobs(cp, record) if record.status.is_live() and not force else []
    if (active or foreign) and not force:
        parts = []
        if active:
            parts.append(f"{len(active)} active run{'s' if len(active) != 1 else ''} ({', '.join(r.run_id for r in active)})")
        if foreign:
            from merlin.ledger.text import jobs_shown

            parts.append(f"{len(foreign)} Ray job{'s' if len(foreign) != 1 else ''} merlin did not submit ({jobs_shown(foreign)})")
        raise Blocked(
            f"cluster '{name}' has {' and '.join(parts)}; stopping it would end them: wait for them or cancel them, "
            "or force the stop (merlin's runs are then recorded as cancelled; the other jobs end with the cluster)",
            "cluster_has_runs",
            next_steps=[step(Action.STATUS, run_id=r.run_id) for r in active],
        )
    by_engine: dict[str, list[RunRecord]] = {}
    for rec in active:

        def ended_by_stop(r: RunRecord) -> list[dict[str, Any]]:
            if r.status.is_terminal():
                return []
            if r.attempts:
                r.attempts[-1].end_time = utcnow()
                r.attempts[-1].error_type = "CLUSTER_STOPPED"
                r.attempts[-1].error_message = f"cluster '{name}' stopped"
            set_status(r, RunStatus.CANCELLED, f"cancelled: cluster stopped ('{name}', by pid {os.getpid()}); retry it to run it again",
                       [step(Action.RETRY, run_id=r.run_id)])
            return [{"event": "cancel_requested", "cause": f"cluster '{name}' stopped with force", "attempt": len(r.attempts) or None}]

        done = cp.ledger.update(rec.run_id, ended_by_stop, cause="cluster stopped")
        eng = cp.engine(done.engine)
        try:
            eng.cancel(done, grace=min(grace, 2.0))  # the job ends before its logs are copied
        except Exception:
            pass
        by_engine.setdefault(done.engine, []).append(done)
    for engine, recs in by_engine.items():
        _wait_for_jobs_to_end(cp, recs, timeout=min(grace, 5.0))
        cp.engine(engine).keep_logs([cp.get(r.run_id) for r in recs])
    backend = cp.cluster_backend(record.kind)
    stopped = backend.stop(record, grace=grace, **kwargs)
    ids = runs_on(cp, name)
    ended = sorted(end_orphans(ids))
    remote, stuck = end_remote_orphans(backend, record, ids)
    if ended or remote or stuck:
        with cp.ledger.cluster_lock(name):
            stopped = cp.ledger.read_cluster(name) or stopped
            if ended:
                stopped.message += f"; ended {len(ended)} process(es) its runs had left running on this machine (pids {', '.join(map(str, ended))})"
            if remote:
                stopped.message += f"; ended {len(remote)} its runs had left on its hosts ({', '.join(remote[:10])})"
            if stuck:
                stopped.message += f"; not ended on its hosts: {', '.join(stuck[:10])}"
            cp.ledger.write_cluster(stopped)
    return stopped


def runs_on(cp: Plane, name: str) -> list[str]:
    """The ids of the runs recorded on cluster ``name`` (every status), read once per stop."""
    from merlin.control.find import select_entries
    from merlin.control.observe import list_entries

    return [d["run_id"] for d, _raw in select_entries(list_entries(cp, None, False), clusters=(name,))]


def end_orphans(ids: list[str]) -> set[int]:
    """End the processes on this machine that carry the ``MERLIN_RUN_ID`` of one of ``ids`` (a stopped
    cluster's runs): what a lost run left outside Ray's reach (reparented to init, in no Ray session)
    that no look ended. One pass over the processes' environments; returns the pids signalled."""
    from merlin.clusters import procs

    ended, left = procs.end_carriers("MERLIN_RUN_ID", ids)
    return ended | left


def end_remote_orphans(backend: Any, record: ClusterRecord, ids: list[str]) -> tuple[list[str], list[str]]:
    """As :func:`end_orphans`, on the cluster's own hosts, for a backend that can reach them
    (``end_run_processes``: SSH); ``(ended, not ended)`` as ``host:pid``."""
    reach = getattr(backend, "end_run_processes", None)
    return reach(record, ids) if reach is not None and ids else ([], [])


def foreign_jobs(cp: Plane, record: ClusterRecord) -> list[dict[str, str]]:
    """Active jobs on ``record``'s cluster that merlin did not submit, from each engine that runs on
    clusters and can tell (``foreign_jobs``); [] when none can be asked."""
    from merlin.engines import registry

    out: list[dict[str, str]] = []
    for name in registry.names():
        eng = cp.engine(name)
        ask = getattr(eng, "foreign_jobs", None) if eng.uses_cluster else None
        found = ask(record) if ask is not None else None
        out.extend(found or [])
    return out


def _wait_for_jobs_to_end(cp: Plane, recs: list[RunRecord], timeout: float) -> None:
    """Give the engine a moment to end the jobs, so the logs copied are complete (best effort)."""
    deadline = time.monotonic() + timeout
    eng = cp.engine(recs[0].engine)
    pending = list(recs)
    while pending and time.monotonic() < deadline:
        try:
            seen = eng.poll_many(pending)
        except Exception:
            return
        pending = [r for r in pending if not ((o := seen.get(r.run_id)) is not None and o.status is not None and o.status.is_terminal())]
        if pending:
            time.sleep(0.3)
