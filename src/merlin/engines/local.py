"""The ``local`` engine: the command runs in its own process group under a
detached supervisor, so it outlives the CLI that submitted it.

``python -m merlin.engines.local_supervisor RUN_DIR ATTEMPT`` is started in a
new session; it starts the command (a new process group), records pid and
pgid in the run record under the run's lock, waits, and records the exit code
and status. Nobody has to poll for the status to be known. ``cancel`` ends the
whole process group (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from merlin.atomic import make_dir, open_state_file
from merlin.clusters import procs
from merlin.engines.base import CancelResult, Observation, Preflight, Submitted
from merlin.ledger.status import RunStatus

if TYPE_CHECKING:  # pragma: no cover
    from merlin.ledger import Ledger
    from merlin.ledger.models import RunRecord, RunRequest

CANCEL_GRACE = 5.0


#: a pending attempt whose submitter is not recorded (records written before
#: submitter_pid existed) is given this long to record its supervisor
SUBMIT_WINDOW = 60.0


def supervisor_alive(pid: int | None, run_id: str, start: int | None = None) -> bool:
    """The supervisor is alive and is ours: pid plus start time when recorded
    (in-process runs, new records), else a supervisor's command line naming the run."""
    if not pid or not procs.alive(pid, start):
        return False
    if start is not None:
        return True
    cmd = procs.cmdline(pid)
    return "local_supervisor" in cmd and run_id in cmd


def surviving_group(att) -> list[int]:
    """Live members of the attempt's process group (a command its supervisor left behind)."""
    return procs.group_members(att.pgid) if att is not None and att.pgid else []


def can_fork() -> bool:
    """Whether this process may start a supervisor by forking itself: it has fork and runs one thread
    (counted by the kernel: a library's native threads count too), so no lock is held in the child
    by a thread that is not there. ``MERLIN_SUPERVISOR_FORK=0`` starts a new interpreter instead."""
    if not hasattr(os, "fork") or os.environ.get("MERLIN_SUPERVISOR_FORK") == "0":
        return False
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:  # no /proc: Python's own count
        import threading

        return threading.active_count() == 1


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def fork_supervisor(run_dir: Path, attempt: int, env: dict[str, str], log_path: Path) -> int:
    """Start ``local_supervisor.main`` for ``run_dir``/``attempt`` in a fork of this process: a new
    session, ``env`` as its environment, stdin from /dev/null, stdout and stderr to ``log_path``, and
    no descriptor of ours beyond those (a lock this process holds stays ours alone). The caller's
    child: it reaps it (a sweep's driver waits on it, docs/sweeps.md). Returns its pid."""
    from merlin.engines.local_supervisor import preload

    preload()  # once, here: not in every child
    _flush_std()
    with open_state_file(log_path) as log:
        pid = os.fork()
        if pid:
            return pid
        _become_supervisor(run_dir, attempt, env, log.fileno())


def detach_supervisor(run_dir: Path, attempt: int, env: dict[str, str], log_path: Path) -> int:
    """As :func:`fork_supervisor`, for a caller that does not reap its children (a CLI that exits, a
    script, a test): a child forks the supervisor and exits at once, so the supervisor is nobody's
    child here (init reaps it) and never lingers as a zombie that looks alive. About 5 ms of CPU
    against about 75 ms for a new interpreter that imports merlin. Returns the supervisor's pid."""
    from merlin.engines.local_supervisor import preload

    preload()
    _flush_std()
    with open_state_file(log_path) as log:
        r, w = os.pipe()
        middle = os.fork()
        if middle == 0:  # the child: fork the supervisor, tell its pid, end
            try:
                os.close(r)
                pid = os.fork()
                if pid == 0:
                    _become_supervisor(run_dir, attempt, env, log.fileno())
                os.write(w, str(pid).encode())
            finally:
                os._exit(0)
        os.close(w)
        try:
            with os.fdopen(r, "rb") as fh:
                said = fh.read()
        finally:
            os.waitpid(middle, 0)
    if not said.isdigit():
        raise OSError(f"the local supervisor could not be started (its starter said {said!r})")
    return int(said)


def _become_supervisor(run_dir: Path, attempt: int, env: dict[str, str], log_fd: int) -> NoReturn:
    """The forked supervisor's side: detach, take its own descriptors, run ``local_supervisor.main``, exit."""
    import gc

    code = 70
    try:  # never returns into the caller's frames
        gc.freeze()  # the parent's objects are never finalized here (their descriptors are closed below)
        gc.enable()  # as a new interpreter has it (the CLI that forked it may have turned it off for its short life)
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.closerange(3, os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 65536)
        import signal

        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):  # as a new interpreter has them
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.chdir(run_dir)
        os.environ.clear()
        os.environ.update(env)
        from merlin.engines.local_supervisor import main  # imported by preload() before the fork

        code = main([str(run_dir), str(attempt)])
    except SystemExit as exc:
        code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1  # as the interpreter exits
    except BaseException:  # the child reports and ends, whatever happened
        import traceback

        traceback.print_exc()
    finally:
        _flush_std()
        os._exit(code)


class LocalEngine:
    name = "local"
    uses_cluster = False
    #: the supervisor records the status: polling only notices a supervisor that died
    reports_own_status = True
    poll_interval: float | None = 0.2
    #: start each supervisor by forking this process instead of starting a new interpreter
    #: (no imports to pay: ~5 ms instead of ~0.15 CPU-s). Only a long-lived, single-threaded
    #: caller with merlin already imported sets it: a sweep's driver (docs/sweeps.md)
    fork_supervisor: bool = False

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        #: run id -> pid of each supervisor this process forked (its children: a pid that cannot be reused
        #: before it is reaped). The record learns the pid from the supervisor itself, in its first write;
        #: the forking driver watches it from the start (``merlin.control.sweep_exits``)
        self.forked: dict[str, int] = {}

    def preflight(self, record: RunRecord, request: RunRequest) -> Preflight:
        """Nothing can block a local run. A forking submitter (a sweep's driver, long-lived) names the attempt
        ahead (write-ahead: one record write); its supervisor records its own pid and start. Any other submitter
        records the supervisor after starting it: a CLI that exits at once must not leave a pending run with
        neither a live submitter nor a recorded supervisor."""
        if self.fork_supervisor:
            return Preflight(submission_id=f"local-{len(record.attempts)}")
        return Preflight()

    def keep_logs(self, records: list[RunRecord]) -> None:
        """The supervisor writes the log into the ledger already."""

    def submit(self, record: RunRecord, request: RunRequest, env: dict[str, str]) -> Submitted:
        attempt = len(record.attempts)
        run_dir = self.ledger.layout.run_dir(record.run_id)
        layout = self.ledger.layout
        logs = layout.logs(record.run_id)
        make_dir(logs, private=True)
        Path(record.target_dir).mkdir(parents=True, exist_ok=True)
        full_env = dict(os.environ)
        full_env.update(env)
        # the real argv travels in the environment: run_request.json holds a redacted copy
        full_env["MERLIN_SUPERVISOR_COMMAND"] = json.dumps(list(record.command))
        if self.fork_supervisor:
            pid = fork_supervisor(run_dir, attempt, full_env, layout.supervisor_log(record.run_id))
            self.forked[record.run_id] = pid
            # write-ahead (see preflight): the supervisor records its pid, start and log in its first write;
            # recording them here too would be a second locked write per item, racing the supervisor's own
            return Submitted(submission_id=f"local-{attempt}", status=RunStatus.PENDING, message=f"submitted to the local engine as local-{attempt}")
        elif can_fork():  # no new interpreter to start and import merlin into
            pid = detach_supervisor(run_dir, attempt, full_env, layout.supervisor_log(record.run_id))
        else:
            with open_state_file(layout.supervisor_log(record.run_id)) as sup_log:
                pid = subprocess.Popen(
                    [sys.executable, "-m", "merlin.engines.local_supervisor", str(run_dir), str(attempt)],
                    stdin=subprocess.DEVNULL,
                    stdout=sup_log,
                    stderr=subprocess.STDOUT,
                    cwd=str(run_dir),
                    env=full_env,
                    start_new_session=True,
                    close_fds=True,
                ).pid
        return Submitted(
            submission_id=f"local-{attempt}",
            status=RunStatus.PENDING,
            fields={"supervisor_pid": pid, "supervisor_start": procs.start_of(pid), "log_path": layout.attempt_log_name(attempt)},
            message=f"submitted to the local engine as local-{attempt}",
        )

    def poll(self, record: RunRecord) -> Observation:
        """The supervisor writes the status; here we only notice one that died silently.

        The control plane calls :meth:`recheck` under the run's lock before it
        applies a ``lost``: a snapshot read before a submit or retry recorded its
        supervisor must never make a healthy run lost."""
        return self.recheck(record, None) or Observation(status=record.status)

    def recheck(self, record: RunRecord, seen: Observation | None = None) -> Observation | None:
        """``lost`` (with the true reason) if ``record``'s owner is gone, else None."""
        att = record.attempt
        if not record.status.is_active() or att is None:
            return None
        if att.supervisor_pid:
            if supervisor_alive(att.supervisor_pid, record.run_id, att.supervisor_start):
                return None
        elif record.status == RunStatus.PENDING:
            # being submitted: the submitter records the supervisor (the supervisor records itself too)
            if att.submitter_pid is not None:
                if procs.alive(att.submitter_pid, att.submitter_start):
                    return None
            else:
                from merlin.clock import utcnow

                born = att.submitted_at or record.created_at
                if born is None or (utcnow() - born).total_seconds() < SUBMIT_WINDOW:
                    return None
        left = surviving_group(att)
        inprocess = (att.submission_id or "").startswith("inprocess")
        if att.supervisor_pid:
            who = f"the process (pid {att.supervisor_pid}) running it in-process" if inprocess else f"the local supervisor (pid {att.supervisor_pid})"
            why = f"{who} ended without recording an exit code"
        else:
            why = f"the submitting process (pid {att.submitter_pid or '?'}) ended before it started the local supervisor"
        if left:
            why += f"; its process group {att.pgid} is still running ({len(left)} process{'es' if len(left) != 1 else ''}): cancel it to end them"
        return Observation(status=RunStatus.LOST, known=False, error_type="SUPERVISOR_DIED", message=why)

    def poll_many(self, records: list[RunRecord]) -> dict[str, Observation]:
        return {r.run_id: self.poll(r) for r in records}

    def log_path(self, record: RunRecord, attempt: int | None = None) -> Path:
        n = attempt or len(record.attempts) or 1
        return self.ledger.layout.attempt_log(record.run_id, n)

    def logs(self, record: RunRecord, attempt: int | None = None) -> str:
        try:
            return self.log_path(record, attempt).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def follow(self, record: RunRecord, poll: float = 0.2) -> Iterator[str]:
        """Yield log text as it is written, until the run is terminal and the file is drained (looked at
        after 20 ms, then 1.5 times later each time up to ``poll``: a short run's log ends soon after it)."""
        import codecs

        path = self.log_path(record)
        pos = 0  # a byte offset: each read takes only what was written since the last
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a character cut by a read waits for its end
        from merlin.clock import pauses

        finished = False
        pause = pauses(0.02, poll)
        while True:
            try:
                with open(path, "rb") as fh:
                    fh.seek(pos)
                    chunk = fh.read()
            except FileNotFoundError:
                chunk = b""
            if chunk:
                pos += len(chunk)
                text = decoder.decode(chunk)
                if text:
                    yield text
                continue
            if finished:
                rest = decoder.decode(b"", final=True)
                if rest:
                    yield rest
                return
            fresh = self.ledger.read_record(record.run_id)
            att = fresh.attempt
            finished = not fresh.status.is_active() or not supervisor_alive(att.supervisor_pid if att else None, record.run_id, att.supervisor_start if att else None)
            if not finished:
                time.sleep(next(pause))

    def leftovers(self, record: RunRecord) -> str | None:
        """Processes of an ended attempt still running (its supervisor died under them)."""
        if record.status != RunStatus.LOST:
            return None
        att = record.attempt
        left = surviving_group(att)
        if not left or att is None:
            return None
        return f"its process group {att.pgid} still runs ({len(left)} process{'es' if len(left) != 1 else ''})"

    def cancel(self, record: RunRecord, grace: float = CANCEL_GRACE) -> CancelResult:
        """End the attempt's whole process group: SIGTERM, then SIGKILL after ``grace``."""
        att = record.attempt
        if att is None or not att.pgid:
            return CancelResult.NEVER_STARTED  # not started yet: the supervisor sees 'cancelled' and never starts it
        procs.terminate(pgid=att.pgid, grace=grace)
        return CancelResult.DONE
