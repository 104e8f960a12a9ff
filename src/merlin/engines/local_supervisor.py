"""``python -m merlin.engines.local_supervisor RUN_DIR ATTEMPT``

A small detached process (its own session) that owns one local attempt: it
starts the command in a new process group, records pid/pgid and ``running``,
waits, then records exit code, status and the artifact index. It writes only
through the ledger (locked, atomic), so a concurrent ``cancel`` or ``jobs
list --refresh`` never loses an update.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from merlin.atomic import open_state_file
from merlin.clusters import procs
from merlin.errors import NoSpace
from merlin.ledger.failures import ended_from_outside


def preload() -> None:
    """Import what :func:`main` imports on every run, and load libc's ``prctl``: a driver that forks its
    supervisors (``merlin.engines.local.fork_supervisor``) calls it once, so no forked supervisor
    imports them again (about 10 ms each) between the slot freeing and its command starting."""
    import resource  # noqa: F401  (children_usage)

    import merlin.ledger.artifacts
    import merlin.ledger.models
    import merlin.nextsteps  # noqa: F401

    procs.load_prctl()


def main(argv: list[str]) -> int:
    from merlin.clock import utcnow
    from merlin.ledger import Ledger, set_status
    from merlin.ledger.artifacts import index_dir
    from merlin.ledger.models import Replica
    from merlin.ledger.status import RunStatus
    from merlin.nextsteps import Action, step

    run_dir = Path(argv[0]).resolve()
    attempt = int(argv[1])
    run_id = run_dir.name
    ledger = Ledger(run_dir.parent.parent)
    request = ledger.read_request(run_id)
    raw_cmd = os.environ.pop("MERLIN_SUPERVISOR_COMMAND", None)
    command = json.loads(raw_cmd) if raw_cmd else list(request.command)
    log_path = ledger.layout.attempt_log(run_id, attempt)

    child: subprocess.Popen[bytes] | None = None
    gang: list[subprocess.Popen[bytes]] = []
    terminated = {"signal": None}

    def on_term(signum, _frame):  # someone stopped the supervisor: take the command down with it
        terminated["signal"] = signum
        if gang:
            try:
                os.killpg(gang[0].pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        # once the child has ended, the only work left is recording and indexing: the
        # indexer checks ``terminated`` between files and writes a truncated index promptly

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    env_info: dict = {}
    if request.runtime is not None:
        from merlin.engines.local_env import env_phase
        from merlin.envs.argv import launcher_argv

        found = env_phase(ledger, run_id, attempt, request)
        if found is None:
            return 0  # the env could not be built (recorded blocked), or the run was cancelled meanwhile
        env_info = found
        command = [*launcher_argv(ledger.layout, run_id, attempt, request.runtime.model_dump(mode="json"), quiet=True), *command]
    with open_state_file(log_path) as log:
        with ledger.transaction(run_id, cause=f"local supervisor (pid {os.getpid()}) started the command") as txn:
            rec = txn.record
            ours = RunStatus.WAITING if rec.metadata.get("waiting_for") == "env" else RunStatus.PENDING
            if rec.status != ours or len(rec.attempts) != attempt:
                txn.abort()  # cancelled before it started, or superseded by a retry
                return 0
            att = rec.attempts[-1]
            if env_info:
                from merlin.engines.local_env import clear

                att.env_id, att.env_cache = env_info["env_id"], env_info["env_cache"]
                clear(rec)
            att.supervisor_pid = os.getpid()  # recorded by the submitter too, unless it died first
            att.supervisor_start = procs.start_of(os.getpid())
            me = os.getpid()

            procs.load_prctl()  # here, not in each child between fork and exec

            def die_with_supervisor() -> None:  # in the child, before exec
                procs.set_parent_death_signal(signal.SIGKILL)
                if os.getppid() != me:  # the supervisor died before the request took effect
                    os._exit(137)

            try:
                Path(rec.target_dir).mkdir(parents=True, exist_ok=True)
                # the command's wall time runs from its start, not from after the record is written
                # (a loaded disk's fsync can take longer than a short command)
                t0 = time.monotonic()
                for env in gang_env(request.replicas):
                    child = subprocess.Popen(
                        command,
                        cwd=request.workdir,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        process_group=gang[0].pid if gang else 0,  # one group: cancel ends every replica
                        preexec_fn=die_with_supervisor,
                        env={**os.environ, **env},
                    )
                    gang.append(child)
            except OSError as exc:
                for started in gang:
                    started.kill()
                child = None
                att.end_time = utcnow()
                att.error_type = "COMMAND_START_ERROR"
                att.error_message = f"{type(exc).__name__}: {exc}"
                set_status(
                    rec,
                    RunStatus.FAILED,
                    f"the command could not start: {exc}. Fix it and submit again "
                    f"(or retry it if the cause was outside the command)",
                    [step(Action.RETRY, run_id=run_id)],
                )
                txn.cause = "the command could not be started"
            else:
                att.pid = gang[0].pid
                att.pgid = gang[0].pid
                att.start_time = utcnow()
                if request.replicas is not None:
                    att.replicas = [Replica(index=i, status=RunStatus.RUNNING, host=os.uname().nodename, pid=c.pid) for i, c in enumerate(gang)]
                running = f"running (pid {gang[0].pid})" if len(gang) == 1 else f"running: a gang of {len(gang)} (pids {', '.join(str(c.pid) for c in gang)})"
                set_status(rec, RunStatus.RUNNING, running, [step(Action.LOGS, run_id=run_id, follow=True)])
        if child is None:
            _index(ledger, index_dir, run_id, attempt)
            return 1
        before = children_usage()
        if request.memory is not None:  # the whole gang's tree, held to its replicas' memory together
            from merlin.envs.memory_watch import MemoryWatch

            with MemoryWatch([c.pid for c in gang], request.memory * len(gang), pgid=gang[0].pid) as watch:
                rc, first, ends = wait_gang(gang)
            over = watch.over
        else:
            rc, first, ends = wait_gang(gang)
            over = None
        usage = usage_since(before, t0)
        # a gang killed from outside was lost; killed for its memory, it failed (over, below)
        lost = request.replicas is not None and ended_from_outside(rc) and not terminated["signal"] and over is None

    # the target directory is indexed before the end is recorded (nothing writes there any more) and
    # committed with it: one locked update, so whoever waits for this process to end sees both
    try:
        idx = index_dir(run_id, Path(rec.target_dir), attempt, should_stop=lambda: terminated["signal"] is not None)
    except (OSError, NoSpace):  # `jobs artifacts` indexes again on demand
        idx = None

    def finish(rec):
        if len(rec.attempts) != attempt:
            return None
        att = rec.attempts[-1]
        att.exit_code = rc
        att.end_time = utcnow()
        att.usage = usage
        for rep in att.replicas:
            code, why_ended = ends.get(rep.index, (None, None))
            rep.exit_code = code
            rep.message = why_ended
            rep.status = RunStatus.SUCCEEDED if code == 0 else RunStatus.FAILED
        if rec.status.is_active() and lost:
            att.error_type = "REPLICA_LOST"
            att.error_message = f"replica {first} was killed by signal {signal.Signals(-rc).name}; the others were stopped"
            set_status(rec, RunStatus.LOST, f"lost: {att.error_message}", [step(Action.LOGS, run_id=run_id), step(Action.RETRY, run_id=run_id)])
        elif rec.status.is_active():
            if rc == 0:
                if rec.outcome:  # a TargetGen run: keep the executor's message and next steps
                    set_status(rec, RunStatus.SUCCEEDED, rec.message, [s.model_dump() for s in rec.next_steps])
                else:
                    set_status(rec, RunStatus.SUCCEEDED, "succeeded (exit code 0)", [step(Action.ARTIFACTS, run_id=run_id)])
            elif over is not None:
                from merlin.envs.memory_watch import failed_message, over_text
                from merlin.units import human_bytes

                att.error_type = "MEMORY_LIMIT"
                each = f" ({human_bytes(request.memory or 0)} a replica)" if len(gang) > 1 else ""
                att.error_message = over_text(over, (request.memory or 0) * len(gang)) + each
                set_status(rec, RunStatus.FAILED, failed_message(att.error_message), [step(Action.LOGS, run_id=run_id), step(Action.RETRY, run_id=run_id)])
            else:
                why = f"killed by signal {signal.Signals(-rc).name}" if rc < 0 else f"exit code {rc}"
                if len(gang) > 1:
                    why = f"replica {first}: {why}; the others were stopped"
                if terminated["signal"]:
                    why += " after the supervisor was terminated"
                att.error_type = "COMMAND_ERROR"
                att.error_message = why
                set_status(
                    rec,
                    RunStatus.FAILED,
                    f"failed ({why}); read its log, then retry it",
                    [step(Action.LOGS, run_id=run_id), step(Action.RETRY, run_id=run_id)],
                )
        try:
            if idx is not None and ledger.write_artifacts(idx, locked=True):
                return [{"event": "artifacts", "cause": "the run ended; target directory indexed", "attempt": attempt, "detail": {"files": len(idx.files)}}]
        except (OSError, NoSpace):  # the end is recorded all the same; `jobs artifacts` indexes again on demand
            pass
        return None

    record_when_space_returns(lambda: ledger.update(run_id, finish, cause=f"the command exited with code {rc}"))
    return 0


#: seconds a gang's other replicas get between SIGTERM and SIGKILL once one has ended badly
GANG_GRACE = 5.0


def gang_env(replicas: int | None) -> list[dict[str, str]]:
    """One environment per process: none for a plain run; for a gang, each replica's index, the count
    and the coordinator address (replica 0's host, a port free now) that JAX or torch distributed need."""
    if replicas is None:
        return [{}]
    import socket  # only a gang's supervisor needs it

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    coordinator = f"127.0.0.1:{port}"
    return [
        {"MERLIN_REPLICA_INDEX": str(i), "MERLIN_REPLICA_COUNT": str(replicas), "MERLIN_COORDINATOR_ADDRESS": coordinator}
        for i in range(replicas)
    ]


def wait_gang(gang: list[subprocess.Popen[bytes]]) -> tuple[int, int, dict[int, tuple[int, str]]]:
    """Wait for every process; the first to end badly stops the others (SIGTERM, SIGKILL after
    :data:`GANG_GRACE`). Returns (the gang's exit code, the replica that decided it, index -> (code, how))."""
    if len(gang) == 1:
        rc = gang[0].wait()
        return rc, 0, {0: (rc, f"exit code {rc}")}
    ends: dict[int, tuple[int, str]] = {}
    first: int | None = None
    stop_at: float | None = None
    while len(ends) < len(gang):
        for i, proc in enumerate(gang):
            if i in ends:
                continue
            got = proc.poll()
            if got is None:
                continue
            rc = got
            if first is not None:
                ends[i] = (rc, f"stopped: replica {first} ended first")
                continue
            ends[i] = (rc, f"exit code {rc}" if rc >= 0 else f"killed by signal {signal.Signals(-rc).name}")
            if rc != 0:
                first, stop_at = i, time.monotonic() + GANG_GRACE
                try:
                    os.killpg(gang[0].pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        if stop_at is not None and time.monotonic() > stop_at:
            try:
                os.killpg(gang[0].pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            stop_at = None
        if len(ends) < len(gang):
            time.sleep(0.05)
    if first is None:
        return 0, 0, ends
    return ends[first][0], first, ends


def children_usage() -> tuple[float, int]:
    """CPU seconds (user + system) and the largest resident set (bytes) of this process's waited-for children so far."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime, ru.ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def usage_since(before: tuple[float, int], t0: float) -> dict[str, float]:
    """The command's resource use: wall time since ``t0``, the CPU its process tree used since ``before``, its peak RSS."""
    cpu, rss = children_usage()
    return {"wall_s": round(time.monotonic() - t0, 3), "cpu_s": round(cpu - before[0], 3), "max_rss_bytes": float(rss)}


#: how long a supervisor keeps trying to record a run's end on a full disk (seconds)
NO_SPACE_WAIT = float(os.environ.get("MERLIN_NO_SPACE_WAIT", "3600"))


def record_when_space_returns(write) -> None:
    """Run ``write``; on a full disk (NoSpace) try again with backoff (0.2 s doubling to 30 s),
    so the end of a run is recorded once space returns instead of being lost."""
    import time

    from merlin.clock import pauses
    from merlin.errors import NoSpace

    delays, deadline = pauses(0.2, 30.0, 2), time.monotonic() + NO_SPACE_WAIT
    while True:
        try:
            write()
            return
        except NoSpace as exc:
            if time.monotonic() > deadline:
                raise
            delay = next(delays)
            try:
                sys.stderr.write(f"merlin supervisor: {exc.message}; trying again in {delay:.1f}s\n")
                sys.stderr.flush()
            except OSError:
                pass
            time.sleep(delay)


def _index(ledger, index_dir, run_id: str, attempt: int, should_stop=None) -> None:
    rec = ledger.read_record(run_id)
    idx = index_dir(run_id, Path(rec.target_dir), attempt, should_stop=should_stop)
    if ledger.write_artifacts(idx):
        ledger.append_event(run_id, "artifacts", "the run ended; target directory indexed", attempt=attempt, detail={"files": len(idx.files)})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
