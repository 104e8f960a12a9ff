"""Submission: record a run, then hand its latest attempt to its engine.

A run that cannot be handed over is still recorded, as ``blocked``, with the
fix in its message and next steps. Engines that can name an attempt before
submitting (:class:`merlin.engines.base.Preflight` with a submission id) get a
write-ahead submission: one record write on the happy path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from merlin.control.checks import check_env, check_resources, check_target_dir, no_nul, no_nul_env, no_nul_in
from merlin.errors import BadInput, Blocked
from merlin.ledger.paths import STATE_ROOT_ENV, new_run_id, validate_name, validate_run_id
from merlin.ledger.status import RunStatus
from merlin.ledger.store import set_status
from merlin.nextsteps import Action, step

if TYPE_CHECKING:  # pragma: no cover
    from merlin.control.plane import Plane
    from merlin.ledger.models import RunRecord, RunRequest


def blocked_steps(blocked: Blocked, run_id: str) -> list[dict[str, Any]]:
    """The engine's own steps (start the cluster, install Ray...), then retry this run."""
    return [*blocked.next_steps, step(Action.RETRY, run_id=run_id)]


def submit(
    cp: Plane,
    command: Sequence[str],
    *,
    target: str,
    workflow: str,
    engine: str,
    target_dir: str | os.PathLike[str] | None,
    workdir: str | os.PathLike[str] | None,
    num_cpus: float | None,
    num_gpus: float | None,
    resources: Mapping[str, float] | None,
    env: Mapping[str, str] | None,
    cluster: str | None,
    source: str,
    metadata: Mapping[str, Any] | None,
    run_id: str | None,
    leases: Sequence[str] = (),
    runtime: Any = None,
    retries: Mapping[str, Any] | None = None,
    name: str | None = None,
    memory: int | str | None = None,
) -> RunRecord:
    from merlin.engines.registry import check_name
    from merlin.ledger.models import Attempt, ClusterRef, RunRecord, RunRequest
    from merlin.ledger.text import redact_argv

    command = [str(c) for c in command]
    if not command:
        raise BadInput("`command` is empty: give the program to run and its arguments", argument="command")
    validate_name(target, "target name")
    validate_name(workflow, "workflow name")
    check_name(engine)
    eng = cp.engine(engine)
    if cluster is not None:
        validate_name(cluster, "cluster name")
        cp.layout.cluster_record(cluster)
        if not eng.uses_cluster:
            raise BadInput(f"`cluster` applies to engines that run on a cluster; `engine` {engine} does not", argument="cluster", related="engine")
    check_resources(num_cpus, num_gpus, resources)
    from merlin.units import memory_bytes

    memory = memory_bytes(memory)
    no_nul_in(command, "command argument")
    no_nul_env(env)
    no_nul(str(target_dir) if target_dir is not None else None, "target_dir")
    no_nul(str(workdir) if workdir is not None else None, "workdir")
    real_env = check_env(env)
    budget = check_retries(dict(retries or {}))
    from merlin.control.runtime import prepare
    from merlin.control.runtime import summary as runtime_summary

    frozen, runtime_env = prepare(cp, runtime)
    real_env = {**check_env(runtime_env), **real_env}
    run_id = validate_run_id(run_id) if run_id else new_run_id(target)
    tdir = check_target_dir(Path(target_dir).expanduser().resolve()) if target_dir else cp.layout.default_target_dir(run_id)
    wdir = Path(workdir).expanduser().resolve() if workdir else Path.cwd().resolve()
    if not wdir.is_dir():
        raise BadInput(f"working directory {wdir} does not exist")
    cluster_name = (cluster or "default") if eng.uses_cluster else None
    bundles: list[dict[str, Any]] = []
    if leases:
        from merlin.leases.runs import check_request, placement

        bundles = check_request(cp.leases, list(leases))
        # pools whose items sit on a host are Ray resources of that node: ask for them too,
        # so the run lands where the hardware is (engines without placement ignore them)
        resources = {**placement(cp.leases, bundles), **dict(resources or {})}
    request = RunRequest(
        run_id=run_id,
        target=target,
        workflow=workflow,
        source=source,
        engine=engine,
        command=redact_argv(command),
        workdir=str(wdir),
        target_dir=str(tdir),
        cluster=cluster_name,
        env=real_env,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        memory=memory,
        resources={k: float(v) for k, v in (resources or {}).items()},
        leases=[str(x) for x in leases],
        runtime=frozen,
        metadata=dict(metadata or {}),
        **budget,
        name=name,
    )
    from merlin.control.retries import most_attempts, start_keeper, wanted

    record = RunRecord(
        run_id=run_id,
        target=target,
        workflow=workflow,
        source=source,
        engine=engine,
        status=RunStatus.PENDING,
        command=request.command,
        workdir=str(wdir),
        target_dir=str(tdir),
        cluster=ClusterRef(name=cluster_name) if cluster_name else None,
        attempts=[Attempt(number=1, engine=engine, status=RunStatus.PENDING, **submitter())],
        environment=runtime_summary(frozen),
        message="submitting",
        metadata=dict(metadata or {}),
        max_attempts=most_attempts(request.max_retries_failure, request.max_retries_preemption) if wanted(request) else None,
    )
    if bundles:
        rec = _waiting_attempt(cp, record, request, command, real_env, bundles)
    else:
        rec = _first_attempt(cp, record, request, command, real_env)
    if wanted(request) and rec.status != RunStatus.BLOCKED:
        start_keeper(cp, run_id, command, real_env)
        rec = cp.get(run_id)
    return rec


def check_retries(given: dict[str, Any]) -> dict[str, Any]:
    """The retry budgets, backoff and gang of a submit (docs/retries.md), checked; each error names its argument."""
    from merlin.durations import parse_duration

    out: dict[str, Any] = {}
    for name in ("max_retries_failure", "max_retries_preemption"):
        value = given.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise BadInput(f"`{name}` {value!r}: expected a whole number of retries, 0 or more", argument=name)
        out[name] = value
    backoff = given.get("retry_backoff")
    if backoff is not None:
        out["retry_backoff"] = parse_duration(backoff, "retry_backoff", at_most=3600.0)
    replicas = given.get("replicas")
    if replicas is not None:
        if isinstance(replicas, bool) or not isinstance(replicas, int) or not 1 <= replicas <= 256:
            raise BadInput(f"`replicas` {replicas!r}: expected a whole number from 1 to 256", argument="replicas")
        out["replicas"] = replicas
    placement = given.get("placement")
    if placement is not None:
        if placement not in ("pack", "spread"):
            raise BadInput(f"`placement` {placement!r}: expected pack (as few nodes as fit) or spread (one replica per node)", argument="placement")
        if not replicas:
            raise BadInput("`placement` applies to a gang: give `replicas` too", argument="placement", related="replicas")
        out["placement"] = placement
    return out


def submitter() -> dict[str, Any]:
    """This process as the attempt's submitter: pid and start time (an identity, not just a pid)."""
    from merlin.procid import start_ticks

    return {"submitter_pid": os.getpid(), "submitter_start": start_ticks(os.getpid())}


def _waiting_attempt(cp: Plane, record: RunRecord, request: RunRequest, command: list[str], env: Mapping[str, str], bundles: list[dict[str, Any]]) -> RunRecord:
    """Preflight (a run its engine can never take is blocked now, holding nothing), then
    record the run ``waiting`` and start its lease waiter (merlin.control.leased)."""
    from merlin.leases.book import new_lease_id

    eng = cp.engine(record.engine)
    try:
        eng.preflight(record, request)
    except Blocked as blocked:
        return _record_blocked(cp, request, record, blocked, f"submitted by {record.source} (pid {os.getpid()})")
    return queue_for_lease(cp, record, command, env, bundles, new_lease_id(), request=request)


def queue_for_lease(
    cp: Plane, record: RunRecord, command: list[str], env: Mapping[str, str], bundles: list[dict[str, Any]], lease_id: str, request: RunRequest | None = None
) -> RunRecord:
    """Write the run as waiting for ``lease_id`` (new, or the latest attempt of a retry), then start its waiter."""
    from merlin.control.leased import start_waiter, waiting_message

    run_id = record.run_id
    what = {"lease_id": lease_id, "bundles": bundles}
    if request is not None:
        set_status(record, RunStatus.WAITING, waiting_message(what, []), [step(Action.STATUS, run_id=run_id), step(Action.CANCEL, run_id=run_id)])
        record.leases = [lease_id]
        cp.ledger.create_run(request, record, cause=f"submitted by {record.source} (pid {os.getpid()}); waiting for lease {lease_id}")
        Path(record.target_dir).mkdir(parents=True, exist_ok=True)
    try:
        lease = start_waiter(cp, record, command, run_env(cp, record, env), bundles, lease_id)
    except Blocked as exc:
        blocked = exc  # the closure below outlives the except clause's name

        def mark(r: RunRecord) -> None:
            if r.status == RunStatus.WAITING and len(r.attempts) == len(record.attempts):
                set_status(r, RunStatus.BLOCKED, f"blocked: {blocked.message}", blocked_steps(blocked, run_id))

        return cp.ledger.update(run_id, mark, cause=f"blocked: {blocked.cause}")

    def waiter_started(r: RunRecord) -> None:
        r.metadata.update(lease["waiter"])  # pid, start time, host, attempt: who will start it (merlin.leases.waiter)

    return cp.ledger.update(run_id, waiter_started, cause=f"lease waiter (pid {lease['waiter_pid']}) reserved {lease_id}")


def run_env(cp: Plane, rec: RunRecord, env: Mapping[str, str]) -> dict[str, str]:
    out = dict(env)
    out.update(
        {
            "MERLIN_RUN_ID": rec.run_id,
            "MERLIN_ATTEMPT": str(len(rec.attempts)),
            "MERLIN_RUN_DIR": str(cp.layout.run_dir(rec.run_id)),
            "MERLIN_TARGET_DIR": rec.target_dir,
            STATE_ROOT_ENV: str(cp.root),
        }
    )
    return out


def _first_attempt(cp: Plane, record: RunRecord, request: RunRequest, command: list[str], env: Mapping[str, str]) -> RunRecord:
    """Preflight, then either write-ahead (engine names the attempt) or write-then-launch."""
    from merlin.clock import utcnow

    run_id = record.run_id
    cause = f"submitted by {record.source} (pid {os.getpid()})"
    eng = cp.engine(record.engine)
    att = record.attempts[-1]
    try:
        pre = eng.preflight(record, request)
    except Blocked as blocked:
        return _record_blocked(cp, request, record, blocked, cause)
    if pre.submission_id is None:
        cp.ledger.create_run(request, record, cause=cause)
        Path(record.target_dir).mkdir(parents=True, exist_ok=True)
        return launch(cp, run_id, command, env, known=(record, request))
    att.submission_id = pre.submission_id
    att.submitted_at = utcnow()
    if pre.cluster is not None:
        record.cluster = pre.cluster
    record.message = pre.message or f"submitted to the {record.engine} engine as {pre.submission_id}"
    record.next_steps = pre.next_steps or [step(Action.LOGS, run_id=run_id, follow=True)]  # type: ignore[assignment]
    where = f"cluster '{pre.cluster.name}'" if pre.cluster else f"the {record.engine} engine"
    cp.ledger.create_run(request, record, cause=f"{cause}; handed to {where} as {pre.submission_id}")
    Path(record.target_dir).mkdir(parents=True, exist_ok=True)
    try:
        sub = eng.submit(record.model_copy(update={"command": command}), request, run_env(cp, record, env))
    except Exception:
        # rare: the engine went away between preflight and submit. One more try through the
        # regular path, which records the run as blocked or failed (or adopts the attempt if
        # the first submit did get through).
        return launch(cp, run_id, command, env)
    if not sub.fields:
        return record  # the 'created' event already names the submission: no second write
    attempt_no = len(record.attempts)

    def note_fields(r: RunRecord) -> None:  # what only the submission knew (an SSH run's env id)
        if len(r.attempts) == attempt_no:
            for k, v in sub.fields.items():
                setattr(r.attempts[-1], k, v)

    return cp.ledger.update(run_id, note_fields, cause="submitted")


def launch(
    cp: Plane,
    run_id: str,
    command: list[str],
    env: Mapping[str, str],
    known: tuple[Any, Any] | None = None,
    wait_causes: frozenset[str] = frozenset(),
) -> RunRecord:
    """Hand the latest attempt to its engine and record what happened.

    ``known``: the (record, request) just written by ``submit``, to skip re-reading them.
    ``wait_causes``: engine block causes raised to the caller, the record untouched (an automatic
    retry waits for its cluster instead of being recorded blocked)."""
    from merlin.clock import utcnow

    if known is not None:
        rec, request = known
    else:
        rec = cp.ledger.read_record(run_id)
        request = cp.ledger.read_request(run_id)
    eng = cp.engine(rec.engine)
    submit_rec = rec.model_copy(update={"command": command})
    attempt_no = len(rec.attempts)
    try:
        sub = eng.submit(submit_rec, request.model_copy(update={"cluster": rec.cluster.name if rec.cluster else None}), run_env(cp, rec, env))
    except Blocked as exc:
        if exc.cause in wait_causes:
            raise
        blocked = exc  # the closure outlives the except clause's name

        def mark_blocked(r: RunRecord) -> None:
            if len(r.attempts) != attempt_no:
                return
            att = r.attempts[-1]
            att.error_type = blocked.cause
            att.error_message = blocked.message
            att.end_time = utcnow()
            set_status(r, RunStatus.BLOCKED, f"blocked: {blocked.message}", blocked_steps(blocked, run_id))

        return cp.ledger.update(run_id, mark_blocked, cause=f"blocked: {blocked.cause}")
    except Exception as exc:
        err = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        if "engine_error" in wait_causes:
            raise Blocked(f"the {rec.engine} engine refused the submission ({err})", "engine_error") from exc

        def mark_failed(r: RunRecord) -> None:
            att = r.attempts[-1]
            att.error_type = "SUBMIT_ERROR"
            att.error_message = err
            att.end_time = utcnow()
            set_status(r, RunStatus.FAILED, f"submission failed ({err}); fix the cause, then retry it", [step(Action.RETRY, run_id=run_id)])

        return cp.ledger.update(run_id, mark_failed, cause="the engine refused the submission")

    def mark_submitted(r: RunRecord) -> list[dict[str, Any]]:
        if len(r.attempts) != attempt_no:
            return []
        att = r.attempts[-1]
        att.submission_id = sub.submission_id
        att.submitted_at = utcnow()
        for k, v in sub.fields.items():
            setattr(att, k, v)
        if sub.cluster is not None:
            r.cluster = sub.cluster
        if r.status == RunStatus.PENDING:
            r.message = sub.message or f"submitted to the {r.engine} engine as {sub.submission_id}"
            r.next_steps = sub.next_steps or [step(Action.LOGS, run_id=run_id, follow=True)]  # type: ignore[assignment]
        return [{"event": "submitted", "cause": f"handed to the {r.engine} engine", "attempt": attempt_no, "detail": {"submission_id": sub.submission_id}}]

    return cp.ledger.update(run_id, mark_submitted, cause="submitted")


def _record_blocked(cp: Plane, request: RunRequest, record: RunRecord, blocked: Blocked, cause: str) -> RunRecord:
    """Preflight said blocked: the attempt and the run are recorded blocked, the fix as next steps."""
    from merlin.clock import utcnow

    att = record.attempts[-1]
    att.status = RunStatus.BLOCKED
    att.error_type = blocked.cause
    att.error_message = blocked.message
    att.end_time = utcnow()
    set_status(record, RunStatus.BLOCKED, f"blocked: {blocked.message}", blocked_steps(blocked, record.run_id))
    cp.ledger.create_run(request, record, cause=f"{cause}; blocked: {blocked.cause}")
    Path(record.target_dir).mkdir(parents=True, exist_ok=True)
    return record
