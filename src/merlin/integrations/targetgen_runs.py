"""TargetGen's executor as a run: submitted to an engine, or recorded in-process.

``targetgen execute`` with the in-process engine records its work here (with
its stderr teed into the run's log); with any other engine the executor is
submitted as a run of that engine and, inside it, attaches to the run to write
its outcome. An outcome maps to a message for a person, next steps as data and
the exit code the CLI returns.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from merlin.errors import BadInput, ExitCode, MerlinError
from merlin.integrations.targetgen_ops import PathArg, targetgen_needs, targetgen_runtime, targetgen_target
from merlin.ledger.paths import new_run_id, validate_name, validate_run_id
from merlin.ledger.status import RunStatus
from merlin.ledger.store import set_status
from merlin.nextsteps import Action, step

if TYPE_CHECKING:  # pragma: no cover
    from merlin.control.plane import Plane
    from merlin.leases.keeper import LeaseKeeper
    from merlin.ledger.models import RunRecord
    from merlin.targetgen.executor import ExecuteResult


#: What a finished TargetGen run's message says, when the executor gives none.
OUTCOME_TEXT = {
    "completed": "completed; its artifacts are indexed",
    "blocked": "the executor is blocked: read {target_dir} for what it needs, fix it, then execute again",
    "awaiting_operator": "awaiting an operator: do the step described in {target_dir}, then execute again",
    "awaiting_response": "awaiting a response: answer the request in {target_dir}, then execute again",
}


def run_place(rec: RunRecord) -> dict[str, Any]:
    """Where a TargetGen run ran, as the arguments of its ``targetgen_execute`` step: the engine it
    was submitted to and its cluster (so "execute again" goes back to the same place)."""
    engine = rec.metadata.get("targetgen_engine")
    cluster = rec.cluster.name if rec.cluster is not None else None
    return {"engine": engine, "cluster": cluster if engine else None}


def outcome_steps(outcome: str, run_id: str, target_dir: str, place: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    if outcome == "completed":
        return [step(Action.ARTIFACTS, run_id=run_id)]
    return [step(Action.TARGETGEN_STATUS, target_dir=target_dir), step(Action.TARGETGEN_EXECUTE, target_dir=target_dir, **dict(place or {}))]


def targetgen_outcome(
    result: ExecuteResult | Mapping[str, Any], run_id: str, engine: str | None = None, cluster: str | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """The run's message (plain text) and next steps for an executor result; ``engine`` and
    ``cluster``: where the run ran, kept by its "execute again" step."""
    data = result if isinstance(result, Mapping) else result.to_json()
    root = str(data["target_dir"])
    outcome = data["outcome"]
    again = step(Action.TARGETGEN_EXECUTE, target_dir=root, engine=engine, cluster=cluster if engine else None)
    if outcome == "completed":
        return "completed; its artifacts are indexed", [step(Action.ARTIFACTS, run_id=run_id)]
    if outcome == "awaiting_operator":
        q = data.get("open_question") or {}
        if q:
            choice = q.get("recommended_option") or "OPTION"
            return (
                f"awaiting_operator: question {q['id']} at {data.get('current_task')}; answer it "
                f"(recommended: {choice}), then execute again",
                [step(Action.TARGETGEN_ANSWER, target_dir=root, question_id=q["id"], choice=choice), again],
            )
        return f"awaiting_operator at {data.get('current_task')}: see the target's status, then execute again", [
            step(Action.TARGETGEN_STATUS, target_dir=root),
            again,
        ]
    if outcome == "awaiting_response":
        a = data.get("awaiting_response") or {}
        return f"awaiting_response: write {a.get('response_file')} (prompt {a.get('prompt_file')}), then execute again", [
            step(Action.TARGETGEN_RESPOND, response_file=str(a.get("response_file")), prompt_file=a.get("prompt_file")),
            again,
        ]
    if outcome == "blocked":
        b = (data.get("blocked") or [{}])[0]
        task = b.get("task_id", "TASK")
        return f"blocked at {task}: {b.get('reason', '')}; fix it, then retry the task and execute again", [
            step(Action.TARGETGEN_RETRY, target_dir=root, task=task),
            again,
        ]
    return f"{outcome}; execute again", [again]


def targetgen_message(result: ExecuteResult | Mapping[str, Any], run_id: str) -> str:
    """The run's message for an executor result (see :func:`targetgen_outcome` for the next steps)."""
    return targetgen_outcome(result, run_id)[0]


def targetgen_exit_code(rec: RunRecord) -> int:
    """Exit code of a waited-for executor run once it ended: the executor's, by outcome."""
    from merlin.targetgen.vocab import Outcome

    if rec.status == RunStatus.SUCCEEDED:
        return Outcome(rec.outcome).exit_code if rec.outcome in {o.value for o in Outcome} else ExitCode.OK
    return ExitCode.RUN_FAILED


def submit_targetgen(
    cp: Plane,
    target_dir: str | os.PathLike[str],
    target: str,
    *,
    engine: str,
    cluster: str | None,
    wait: bool,
    timeout: float | None,
    workflow: str,
    extra_args: Sequence[str],
    metadata: Mapping[str, Any] | None,
    env: Mapping[str, str] | None,
    leases: Sequence[str] = (),
) -> RunRecord:
    """Run the in-process TargetGen executor on ``target_dir`` as a run of ``engine``.

    The entrypoint is this interpreter running ``merlin targetgen execute
    --target-dir DIR --engine <in-process> --run-id ID --state-root ROOT``: the job
    imports this merlin and writes the executor's outcome into the run record,
    while the engine's status (succeeded/failed) is observed as for any run.
    """
    from merlin.engines.registry import DEFAULT_ENGINE
    from merlin.safety import no_nul, no_nul_env, no_nul_in

    no_nul(str(target_dir), "target directory")
    no_nul_in(extra_args, "argument")
    no_nul_env(env)
    tdir = Path(target_dir).expanduser().resolve()
    if not tdir.is_dir():
        raise BadInput(f"target directory {tdir} does not exist (orchestrate the target first)")
    run_id = new_run_id(target)
    runtime = targetgen_runtime(cp, tdir)
    command = [
        "python" if runtime else sys.executable, "-m", "merlin", "targetgen", "execute", "--target-dir", str(tdir),
        "--engine", DEFAULT_ENGINE, "--run-id", run_id, "--state-root", str(cp.root), *extra_args,
    ]
    from merlin.atomic import file_lock
    from merlin.targetgen.layout import TargetLayout
    from merlin.targetgen.state import holder_text

    # One run drives a target directory at a time: the check and the record happen under one lock.
    with file_lock(TargetLayout(tdir).submit_lock, timeout=30, holder=holder_text("submit")):
        refuse_busy_target(cp, tdir)
        rec = cp.submit(
            command, target=target, workflow=workflow, engine=engine, target_dir=tdir, cluster=cluster, source="targetgen",
            metadata={**dict(metadata or {}), "targetgen_engine": engine}, run_id=run_id, env=env,
            leases=list(leases) or targetgen_needs(None, None, tdir), runtime=runtime,
        )
    if wait and not rec.status.is_terminal():
        rec = cp.wait(rec.run_id, timeout=timeout)
    return rec


def busy_on_target(cp: Plane, target_dir: Path, besides: str | None = None) -> tuple[list[str], str | None]:
    """The runs of this ledger (other than ``besides``) not over yet on ``target_dir``,
    and who holds its executor lock (an in-process execute or answer), if anyone."""
    from merlin.targetgen import state as st
    from merlin.targetgen.layout import TargetLayout

    holder = st.lock_holder(TargetLayout(target_dir))
    busy = [
        d["run_id"] for d in cp.ledger.list_raw()
        if d.get("target_dir") == str(target_dir) and d.get("run_id") != besides and not RunStatus(d["status"]).is_terminal()
    ]
    if busy:  # the ledger may be behind its engine: ask it before refusing
        cp.refresh(busy)
        busy = [rid for rid in busy if not cp.get(rid).status.is_terminal()]
    return busy, holder


def _busy_text(busy: list[str], holder: str | None) -> tuple[str, list[dict[str, Any]]]:
    held = f"; locked by {holder}" if holder else ""
    runs = f"run {', '.join(busy)} is still active on it" if busy else "no run of this ledger is active on it"
    steps = [step(Action.STATUS, run_id=busy[0]), step(Action.CANCEL, run_id=busy[0])] if busy else []
    return runs + held, steps


def refuse_busy_target(cp: Plane, target_dir: Path) -> None:
    """Blocked (exit 3) if another run of this ledger is not over yet on ``target_dir``, or a
    process holds its lock: naming that run and the lock holder, as a second local execute is told."""
    from merlin.errors import Blocked

    busy, holder = busy_on_target(cp, target_dir)
    if not busy and holder is None:
        return
    why, steps = _busy_text(busy, holder)
    steps = steps or [step(Action.TARGETGEN_STATUS, target_dir=str(target_dir))]
    raise Blocked(f"target directory {target_dir} is busy: {why}; wait for it to end (or cancel it), then execute again", "target_busy", next_steps=steps)


@contextmanager
def retry_claim(cp: Plane, rec: RunRecord) -> Iterator[None]:
    """Hold a TargetGen run's target directory while ``jobs retry`` records its new attempt.

    The same check and lock as a submit (``refuse_busy_target``): two runs driving one
    target directory would interleave their answers and task states. A retry that finds
    another live run, or an in-process execute holding the directory, is refused as bad
    input (exit 2, as retrying a run that is still active is), naming what holds it. Runs
    that are not TargetGen's pass through."""
    tdir = Path(rec.target_dir) if rec.source == "targetgen" and rec.target_dir else None
    if tdir is None or not tdir.is_dir():
        yield
        return
    from merlin.atomic import file_lock
    from merlin.targetgen.layout import TargetLayout
    from merlin.targetgen.state import holder_text

    with file_lock(TargetLayout(tdir).submit_lock, timeout=30, holder=holder_text("retry")):
        busy, holder = busy_on_target(cp, tdir, besides=rec.run_id)
        if busy or holder is not None:
            why, steps = _busy_text(busy, holder)
            steps = steps or [step(Action.TARGETGEN_STATUS, target_dir=str(tdir))]
            raise BadInput(
                f"run {rec.run_id} not retried: its target directory {tdir} is busy: {why}; "
                f"wait for it to end (or cancel it), then retry",
                code="target_busy",
                next_steps=[*steps, step(Action.RETRY, run_id=rec.run_id)],
            )
        yield


def targetgen_submit(cp: Plane, *, capability: PathArg | None, overlay: PathArg | None, out_dir: PathArg | None, from_dir: PathArg | None, engine: str, cluster: str | None, wait: bool, progress: Callable[[str], None] | None = None) -> RunRecord:
    """``execute --engine E``: persist the bundle (orchestrate), then submit the
    in-process executor on that directory as a run of ``E``, recorded in the ledger."""
    if from_dir is not None:
        target, tdir = targetgen_target(None, None, None, from_dir)
    else:
        from merlin.targetgen.executor import orchestrate

        if capability is None:
            raise BadInput("give a capability spec or a target directory")
        result = orchestrate(capability, overlay, out_dir=out_dir, progress=progress)
        target, tdir = result.target, Path(result.target_dir)
    return cp.submit_targetgen(tdir, target, engine=engine, cluster=cluster, wait=wait)


def task_logs(cp: Plane, run_id: str) -> Path | None:
    """Where the per-task logs of a TargetGen run are (the executor writes them under <target_dir>/logs/)."""
    rec = cp.get(run_id)
    if rec.source != "targetgen":
        return None
    from merlin.targetgen.layout import TargetLayout

    return TargetLayout(Path(rec.target_dir)).logs


def task_logs_hint(cp: Plane, run_id: str) -> str | None:
    logs = task_logs(cp, run_id)
    if logs is None:
        return None
    n = sum(1 for p in logs.iterdir() if p.is_file()) if logs.is_dir() else 0
    return f"per-task logs of run {run_id}: {logs}/ ({n} file{'s' if n != 1 else ''})"


# ------------------------------------------------------------------ in-process runs


@contextmanager
def record_inprocess_run(
    cp: Plane,
    *,
    target: str,
    target_dir: str | os.PathLike[str],
    workflow: str = "targetgen-execute",
    command: Sequence[str] | None = None,
    source: str = "targetgen",
    run_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    leases: Sequence[str] = (),
    progress: Callable[[str], None] | None = None,
) -> Iterator[InProcessRun]:
    """Record work done in this process as a run (see ControlPlane.record_inprocess_run).

    With ``leases`` (the overlay's ``resources:``) the run is recorded ``waiting``,
    queues for the lease, becomes ``running`` when it is granted (the items in
    ``$MERLIN_LEASE_ITEMS`` for the commands it starts), and releases it on the way out."""
    bundles: list[dict[str, Any]] = []
    if leases and not (run_id is not None and cp.ledger.exists(validate_run_id(run_id))):
        from merlin.leases.runs import check_request

        bundles = check_request(cp.leases, list(leases))  # refused before anything is recorded
    handle = _open_inprocess(
        cp, target=target, target_dir=target_dir, workflow=workflow, command=command, source=source, run_id=run_id, metadata=metadata,
        leases=list(leases) if bundles else [],
    )
    tee = None if handle.attached else StderrTee.start(cp.layout.attempt_log(handle.run_id, 1))
    keeper = None
    try:
        if bundles:
            keeper = _hold_lease(cp, handle.run_id, bundles, progress or (lambda _m: None))
        yield handle
    except BaseException as exc:
        if tee is not None:
            tee.stop()
            tee = None
        if isinstance(exc, SystemExit) and exc.code in (0, None) and handle.finished:
            raise
        if not handle.finished:
            handle.fail(exc)
        raise
    else:
        if not handle.finished:
            handle.fail(None)
    finally:
        if keeper is not None:
            keeper.__exit__(None, None, None)
            cp.ledger.append_event(handle.run_id, "lease_released", f"the in-process run (pid {os.getpid()}) ended", detail={"lease_id": keeper.lease_id})
        if tee is not None:
            tee.stop()


def rerun_argv(run_id: str) -> list[str]:
    """This process's command as ``jobs retry`` can run it: this interpreter with
    ``-m merlin`` (not a bare ``merlin``, which may not be on the PATH), attached
    to the same run (``--run-id``) so a retry records its outcome there."""
    args = list(sys.argv[1:])
    if "--run-id" not in args and not any(a.startswith("--run-id=") for a in args):
        args = [*args, "--run-id", run_id]
    return [sys.executable, "-m", "merlin", *args]


def without_run_id(argv: Sequence[str]) -> list[str]:
    """``argv`` minus its ``--run-id ID``: running it again makes a new run."""
    out: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a == "--run-id":
            skip = True
        elif not a.startswith("--run-id="):
            out.append(a)
    return out


def _hold_lease(cp: Plane, run_id: str, bundles: list[dict[str, Any]], progress: Callable[[str], None]) -> LeaseKeeper:
    """Queue for the run's lease (recorded in its record), then move it waiting -> running with its items."""
    from merlin.clock import utcnow
    from merlin.leases.keeper import LeaseKeeper, lease_env
    from merlin.ledger.store import set_status

    lid = cp.get(run_id).leases[0]

    def reserved(lease: dict[str, Any]) -> None:
        if lease["state"] == "granted":
            return
        from merlin.leases.waiter import waiting_on

        why = cp.leases.why(lid)
        text = f"waiting for lease {lid}: {why[0]['message'] if why else 'queued'}"
        progress(text)

        def note(r: RunRecord) -> None:
            if r.status == RunStatus.WAITING:
                r.message = text
                r.waiting_on = waiting_on(lease, why)

        cp.ledger.update(run_id, note, cause="lease requested")

    keeper = LeaseKeeper(cp.leases, bundles, ttl=float(os.environ.get("MERLIN_LEASE_TTL") or 30), run_id=run_id, lease_id=lid, on_reserved=reserved)
    lease = keeper.__enter__()
    items = list(lease["items"])
    os.environ.update(lease_env(lease))  # the executor's validation commands inherit the items

    def granted(r: RunRecord) -> list[dict[str, Any]]:
        r.lease_items = items
        if r.attempts:
            r.attempts[-1].start_time = utcnow()
        set_status(r, RunStatus.RUNNING, f"running in process {os.getpid()} with {', '.join(items)} (lease {lid})")
        return [{"event": "lease_granted", "cause": "the lease book granted it", "attempt": 1, "detail": {"lease_id": lid, "items": items}}]

    cp.ledger.update(run_id, granted, cause=f"lease {lid} granted")
    progress(f"lease {lid} granted: {', '.join(items)}")
    return keeper


def _open_inprocess(cp: Plane, *, target, target_dir, workflow, command, source, run_id, metadata, leases: Sequence[str] = ()) -> InProcessRun:
    from merlin.clock import utcnow
    from merlin.engines.registry import DEFAULT_ENGINE
    from merlin.ledger.models import Attempt, RunRecord, RunRequest
    from merlin.ledger.text import redact_argv

    if run_id is not None:
        validate_run_id(run_id)
        if cp.ledger.exists(run_id):
            cp.ledger.append_event(run_id, "note", f"executor started in pid {os.getpid()}", detail={"host_pid": os.getpid()})
            return InProcessRun(cp, run_id, attached=True)
    validate_name(target, "target name")
    validate_name(workflow, "workflow name")
    from merlin.clusters.procs import start_of
    from merlin.safety import no_nul, no_nul_in

    no_nul(str(target_dir), "target directory")
    no_nul_in(command or (), "command argument")
    run_id = run_id or new_run_id(target)
    argv = redact_argv([str(c) for c in (command if command is not None else rerun_argv(run_id))])
    tdir = str(Path(target_dir).expanduser().resolve())
    now = utcnow()
    request = RunRequest(
        run_id=run_id, target=target, workflow=workflow, source=source, engine=DEFAULT_ENGINE, command=argv,
        workdir=str(Path.cwd()), target_dir=tdir, metadata=dict(metadata or {}), leases=list(leases),
    )
    status = RunStatus.WAITING if leases else RunStatus.RUNNING
    record = RunRecord(
        run_id=run_id, target=target, workflow=workflow, source=source, engine=DEFAULT_ENGINE, status=status,
        command=argv, workdir=str(Path.cwd()), target_dir=tdir,
        attempts=[
            Attempt(
                number=1, engine=DEFAULT_ENGINE, status=status, submission_id="inprocess-1", submitted_at=now, start_time=None if leases else now,
                pid=os.getpid(), supervisor_pid=os.getpid(), supervisor_start=start_of(os.getpid()),
            )
        ],
        message=f"waiting for its lease in process {os.getpid()}" if leases else f"running in process {os.getpid()}", metadata=dict(metadata or {}),
    )
    if leases:
        from merlin.leases.book import new_lease_id
        from merlin.leases.waiter import identity

        record.leases = [new_lease_id()]
        record.metadata.update(identity(os.getpid(), 1))  # this process waits for the lease: if it dies, the run is lost
    cp.ledger.create_run(request, record, cause=f"in-process run started by {source} (pid {os.getpid()})" + (f"; waiting for lease {record.leases[0]}" if leases else ""))
    return InProcessRun(cp, run_id, attached=False)


def record_outcome(
    cp: Plane, run_id: str, outcome: str, message: str | None = None, detail: Mapping[str, Any] | None = None, next_steps: list[dict[str, Any]] | None = None
) -> RunRecord:
    """Write an executor outcome (and the next steps) without touching the status."""
    rec = cp.get(run_id)
    text = message or OUTCOME_TEXT.get(outcome, f"outcome {outcome}").format(run_id=run_id, target_dir=rec.target_dir)
    steps = next_steps if next_steps is not None else outcome_steps(outcome, run_id, rec.target_dir, run_place(rec))

    def mutate(r: RunRecord) -> list[dict[str, Any]]:
        r.outcome = outcome
        r.message = text
        r.next_steps = steps  # type: ignore[assignment]
        return [{"event": "outcome", "cause": f"executor reported {outcome}", "attempt": len(r.attempts) or None, "detail": dict(detail or {})}]

    return cp.ledger.update(run_id, mutate, cause=f"executor outcome {outcome}")


def finish_run(
    cp: Plane,
    run_id: str,
    *,
    outcome: str | None,
    exit_code: int = 0,
    message: str | None = None,
    error: str | None = None,
    blocked: bool = False,
    interrupted: bool = False,
    next_steps: list[dict[str, Any]] | None = None,
) -> RunRecord:
    """End an in-process run: outcome and exit code in, status out (succeeded if an outcome was reached;
    ``blocked`` if the executor raised a Blocked/LockBusy error, with its message and the command to run again)."""
    from merlin.clock import utcnow

    rec = cp.get(run_id)
    again = [step(Action.RUN_AGAIN, argv=without_run_id(rec.command))] if rec.command else []
    reason = (error or f"exit code {exit_code}").strip().rstrip(".")
    text = message or (OUTCOME_TEXT.get(outcome or "", "").format(run_id=run_id, target_dir=rec.target_dir) if outcome else "")
    steps = next_steps if next_steps is not None else (outcome_steps(outcome, run_id, rec.target_dir, run_place(rec)) if outcome else [])
    ok = outcome is not None and error is None

    def mutate(r: RunRecord) -> list[dict[str, Any]]:
        if r.attempts:
            r.attempts[-1].exit_code = exit_code
            r.attempts[-1].end_time = utcnow()
            if not ok:
                r.attempts[-1].error_type = "EXECUTOR_INTERRUPTED" if interrupted else "EXECUTOR_BLOCKED" if blocked else "EXECUTOR_ERROR"
                r.attempts[-1].error_message = error or f"exit code {exit_code}"
                if blocked:
                    r.attempts[-1].status = RunStatus.BLOCKED
                if interrupted:
                    r.attempts[-1].status = RunStatus.CANCELLED
        if outcome is not None:
            r.outcome = outcome
        if r.status.is_active():
            if ok:
                set_status(r, RunStatus.SUCCEEDED, text or "succeeded", steps or [step(Action.ARTIFACTS, run_id=run_id)])
            elif interrupted:
                set_status(r, RunStatus.CANCELLED, f"cancelled: {reason}; the target keeps its progress, run its command again to resume", again)
            elif blocked:
                set_status(r, RunStatus.BLOCKED, f"blocked: {reason}; then run its command again", again)
            else:
                set_status(r, RunStatus.FAILED, f"failed: {reason}; fix it, then run its command again", again)
        return [{"event": "outcome", "cause": f"executor finished ({outcome or 'no outcome'})", "detail": {"exit_code": exit_code}}] if outcome else []

    rec = cp.ledger.update(run_id, mutate, cause="in-process run finished")
    cp.index_artifacts(run_id)
    return rec


class StderrTee:
    """Copy what this process writes on ``sys.stderr`` (the executor's progress lines)
    into the in-process run's log, so the run's logs show them."""

    def __init__(self, stream: Any, log: Any) -> None:
        self._stream = stream
        self._log = log

    @classmethod
    def start(cls, path: Path) -> StderrTee | None:
        try:
            from merlin.atomic import open_state_file

            log = open_state_file(path, "a", encoding="utf-8", errors="replace")
        except OSError:
            return None
        tee = cls(sys.stderr, log)
        sys.stderr = tee
        return tee

    def write(self, text: str) -> int:
        try:
            self._log.write(text)
            self._log.flush()
        except (OSError, ValueError):
            pass
        return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()

    def stop(self) -> None:
        if sys.stderr is self:
            sys.stderr = self._stream
        try:
            self._log.close()
        except OSError:
            pass

    def __getattr__(self, name: str) -> Any:  # isatty, encoding, fileno ... of the real stream
        return getattr(self._stream, name)


class InProcessRun:
    """Handle for :func:`record_inprocess_run`."""

    def __init__(self, cp: Plane, run_id: str, attached: bool) -> None:
        self.cp = cp
        self.run_id = run_id
        self.attached = attached
        self.finished = False

    def finish(self, outcome: str, exit_code: int = 0, message: str | None = None, next_steps: list[dict[str, Any]] | None = None) -> RunRecord:
        self.finished = True
        if self.attached:
            return record_outcome(self.cp, self.run_id, outcome, message, detail={"exit_code": exit_code}, next_steps=next_steps)
        return finish_run(self.cp, self.run_id, outcome=outcome, exit_code=exit_code, message=message, next_steps=next_steps)

    def fail(self, exc: BaseException | None) -> None:
        self.finished = True
        err = "the executor ended without an outcome" if exc is None else f"{type(exc).__name__}: {exc}"
        if isinstance(exc, SystemExit):
            err = f"the executor exited with code {exc.code}"
        if isinstance(exc, KeyboardInterrupt):
            err = "interrupted by Ctrl-C (SIGINT)"
        if self.attached:
            self.cp.ledger.append_event(self.run_id, "note", f"executor failed: {err}")
            return
        if isinstance(exc, KeyboardInterrupt):  # the user stopped it: cancelled, not failed
            finish_run(self.cp, self.run_id, outcome=None, exit_code=130, error=err, interrupted=True)
            return
        if isinstance(exc, MerlinError):  # a known failure: its own message (and exit code) is the record's
            err = exc.message
            if exc.exit_code == ExitCode.BLOCKED:  # Blocked, LockBusy: nothing failed, something must change first
                finish_run(self.cp, self.run_id, outcome=None, exit_code=exc.exit_code, error=err, blocked=True)
                return
            finish_run(self.cp, self.run_id, outcome=None, exit_code=exc.exit_code, error=err)
            return
        code = exc.code if isinstance(exc, SystemExit) and isinstance(exc.code, int) else 1
        finish_run(self.cp, self.run_id, outcome=None, exit_code=code, error=err)
