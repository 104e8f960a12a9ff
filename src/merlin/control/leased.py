"""Runs that need hardware: wait for the lease, start the run, hold the lease while it runs.

``submit(..., leases=[...])`` records the run as ``waiting`` and starts
``python -m merlin.cli.lease_waiter RUN_DIR ATTEMPT LEASE_ID`` (its entry point;
the life is :func:`serve` here), a small detached waiter (its own session). The waiter reserves the lease bound to its own pid
(so the book frees it if the waiter dies), tells the submitter it has, waits
for the grant, then hands the run to its engine exactly as a plain submit
would, with ``MERLIN_LEASE_ITEMS`` (and ``MERLIN_LEASE_ID``/``_TOKENS``) in the
run's environment. It renews the lease while the run is active, whatever
engine runs it, and releases it within a poll (0.5 s) of the run ending,
failing, being cancelled or being lost. Lease logic stays in
:mod:`merlin.leases` (keeper, book); engine logic stays behind the engine
protocol: this module never asks which engine it drives.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from merlin.errors import MerlinError
from merlin.ledger.status import RunStatus, on_its_engine
from merlin.nextsteps import Action, step

if TYPE_CHECKING:  # pragma: no cover
    from merlin.control.plane import Plane
    from merlin.ledger.models import RunRecord

#: seconds between looks at a leased run while it is active (the release latency)
POLL = 0.5
#: the lease's TTL while the waiter renews it (a third of it between renewals);
#: $MERLIN_LEASE_TTL (seconds) overrides it
TTL = 30.0
READY_TIMEOUT = 30.0


def start_waiter(
    cp: Plane, rec: RunRecord, command: Sequence[str], env: Mapping[str, str], bundles: list[dict[str, Any]], lease_id: str
) -> dict[str, Any]:
    """Start the detached waiter and return the lease it reserved (after it has).

    The real argv and environment travel in the waiter's environment: the
    run's request on disk holds redacted copies."""
    from merlin.errors import Blocked

    run_dir = cp.layout.run_dir(rec.run_id)
    full = dict(os.environ)
    full["MERLIN_WAITER_SPEC"] = json.dumps({"command": list(command), "env": dict(env), "bundles": bundles})
    from merlin.atomic import open_state_file

    with open_state_file(cp.layout.logs(rec.run_id) / "lease-waiter.log") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "merlin.cli.lease_waiter", str(run_dir), str(len(rec.attempts)), lease_id],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=str(run_dir),
            env=full,
            start_new_session=True,
            close_fds=True,
        )
    assert proc.stdout is not None
    line = _readline(proc.stdout, READY_TIMEOUT)
    proc.stdout.close()
    answer: dict[str, Any]
    try:
        answer = json.loads(line) if line else {"error": "the lease waiter did not answer", "cause": "lease_waiter"}
    except ValueError:
        answer = {"error": f"the lease waiter said {line[:200]!r}", "cause": "lease_waiter"}
    if "error" in answer:
        raise Blocked(f"the lease for run {rec.run_id} could not be requested: {answer['error']}", answer.get("cause") or "lease_waiter")
    from merlin.leases.waiter import identity

    lease: dict[str, Any] = dict(answer["lease"], waiter_pid=proc.pid, waiter=identity(proc.pid, len(rec.attempts)))
    return lease


def _readline(stream: Any, timeout: float) -> str:
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return got[0].decode("utf-8", "replace").strip() if got else ""


def note_waiting(r: RunRecord, lease: Mapping[str, Any], why: list[dict[str, Any]]) -> None:
    """What a waiting run's record says it waits on: the message, and the short ``waiting_on`` line of listings."""
    from merlin.leases.waiter import waiting_on

    r.message = waiting_message(lease, why)
    r.waiting_on = waiting_on(lease, why)


def waiting_message(lease: Mapping[str, Any], why: list[dict[str, Any]]) -> str:
    first = why[0]["message"] if why else "queued"
    from merlin.leases.policy import describe

    return f"waiting for lease {lease['lease_id']} ({describe(lease['bundles'])}): {first}"


# ------------------------------------------------------------------ the waiter


def serve(cp: Plane, argv: list[str]) -> int:
    """The waiter's life (``python -m merlin.cli.lease_waiter RUN_DIR ATTEMPT LEASE_ID``, given its control plane)."""
    from merlin.clock import utcnow
    from merlin.control.submit import launch
    from merlin.leases.book import LeaseLost
    from merlin.leases.keeper import LeaseKeeper, lease_env
    from merlin.ledger.store import set_status

    run_dir = Path(argv[0]).resolve()
    attempt = int(argv[1])
    lease_id = argv[2]
    run_id = run_dir.name
    spec = json.loads(os.environ.pop("MERLIN_WAITER_SPEC"))
    stop = threading.Event()

    def on_term(*_a: Any) -> None:  # stopped: give the lease back (the finally clauses) and go
        stop.set()
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    told = {"done": False}

    def tell(answer: dict[str, Any]) -> None:
        if told["done"]:
            return
        told["done"] = True
        try:
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
            sys.stdout.close()
        except OSError:
            pass  # the submitter went away: the run is recorded, carry on

    def ours(r: RunRecord) -> bool:
        return len(r.attempts) == attempt

    def on_reserved(lease: dict[str, Any]) -> None:
        tell({"lease": {"lease_id": lease["lease_id"], "state": lease["state"]}})
        if lease["state"] == "granted":
            return
        try:
            why = cp.leases.why(lease["lease_id"])
        except MerlinError:
            why = []

        def note(r: RunRecord) -> None:
            if ours(r) and r.status == RunStatus.WAITING:
                note_waiting(r, lease, why)

        cp.ledger.update(run_id, note, cause="lease requested")

    def on_lost(exc: LeaseLost) -> None:
        cp.ledger.append_event(run_id, "lease_lost", str(exc), attempt=attempt, detail={"lease_id": lease_id})

        def revoked(r: RunRecord) -> None:  # an infrastructure end (docs/retries.md): the cancel below keeps it
            if len(r.attempts) == attempt and on_its_engine(r.status.value, r.metadata):
                r.attempts[-1].error_type = "LEASE_REVOKED"
                r.attempts[-1].error_message = f"its lease {lease_id} was revoked: {exc}"

        try:
            cp.ledger.update(run_id, revoked, cause="its lease was revoked")
        except MerlinError:
            pass
        try:
            cp.cancel(run_id)
        except MerlinError:
            pass

    keeper = LeaseKeeper(
        cp.leases,
        spec["bundles"],
        ttl=float(os.environ.get("MERLIN_LEASE_TTL") or TTL),
        run_id=run_id,
        lease_id=lease_id,
        on_reserved=on_reserved,
        on_lost=on_lost,
    )
    watcher = threading.Thread(target=_stop_when_cancelled, args=(cp, run_id, attempt, lease_id, stop), daemon=True)
    watcher.start()
    try:
        lease = keeper.__enter__()
    except MerlinError as exc:
        tell({"error": exc.message, "cause": getattr(exc, "cause", None) or exc.code})
        _end_waiting(cp, run_id, attempt, exc)
        return 1
    try:
        items = list(lease["items"])

        def granted(r: RunRecord) -> list[dict[str, Any]]:
            if not ours(r) or r.status != RunStatus.WAITING:
                return []
            r.leases = [lease["lease_id"]]
            r.lease_items = items
            set_status(r, RunStatus.PENDING, f"lease {lease['lease_id']} granted ({', '.join(items)}); submitting")
            return [
                {"event": "lease_granted", "cause": "the lease book granted it", "attempt": attempt, "detail": {"lease_id": lease["lease_id"], "items": items}}
            ]

        rec = cp.ledger.update(run_id, granted, cause=f"lease {lease['lease_id']} granted")
        if rec.status != RunStatus.PENDING or not ours(rec):
            return 0  # cancelled while waiting: the keeper releases on the way out
        env = dict(spec["env"])
        env.update(lease_env(lease))
        rec = launch(cp, run_id, list(spec["command"]), env)
        while not stop.is_set() and ours(rec) and not rec.status.is_terminal():
            stop.wait(POLL)
            rec = cp.status(run_id)
        return 0
    finally:
        keeper.__exit__(None, None, None)
        cp.ledger.append_event(
            run_id, "lease_released", f"lease waiter (pid {os.getpid()}) released it at {utcnow().isoformat()}", attempt=attempt, detail={"lease_id": lease_id}
        )


def _stop_when_cancelled(cp: Plane, run_id: str, attempt: int, lease_id: str, stop: threading.Event) -> None:
    """While waiting: a run cancelled (or retried) in the ledger cancels its lease request, which ends the wait."""
    tick = 0
    while not stop.wait(POLL):
        try:
            rec = cp.get(run_id)
        except MerlinError:
            rec = None
        if rec is None or len(rec.attempts) != attempt or rec.status in (RunStatus.CANCELLED, RunStatus.FAILED, RunStatus.BLOCKED, RunStatus.LOST):
            try:
                if cp.leases.show(lease_id)["state"] == "waiting":
                    cp.leases.cancel(lease_id, reason=f"run {run_id} was cancelled while waiting")
            except MerlinError:
                pass
            return
        if rec.status != RunStatus.WAITING:
            return  # granted: the main loop watches the run from here
        tick += 1
        if tick % 4 == 0:  # every 2 s: keep the message (what `jobs list` shows) on the current first reason
            _note_reason(cp, run_id, attempt, lease_id)


def _note_reason(cp: Plane, run_id: str, attempt: int, lease_id: str) -> None:
    try:
        lease = cp.leases.show(lease_id)
        why = cp.leases.why(lease_id) if lease["state"] == "waiting" else []
    except MerlinError:
        return
    if not why:
        return

    def note(r: RunRecord) -> None:
        if len(r.attempts) == attempt and r.status == RunStatus.WAITING:
            note_waiting(r, lease, why)

    cp.ledger.update(run_id, note, cause="lease queue moved")  # no write when the reason did not change


def _end_waiting(cp: Plane, run_id: str, attempt: int, exc: MerlinError) -> None:
    """The lease request ended without a grant (cancelled, revoked, refused): so does the waiting run."""
    from merlin.clock import utcnow
    from merlin.ledger.store import set_status

    def mark(r: RunRecord) -> None:
        if len(r.attempts) != attempt or r.status != RunStatus.WAITING:
            return
        att = r.attempts[-1]
        att.end_time = utcnow()
        att.error_type = "LEASE_NOT_GRANTED"
        att.error_message = exc.message
        set_status(r, RunStatus.FAILED, f"its lease was never granted ({exc.message}); retry it to queue again", [step(Action.RETRY, run_id=run_id)])

    cp.ledger.update(run_id, mark, cause="the lease request ended without a grant")


def end_if_waiter_died(cp: Plane, rec: RunRecord) -> RunRecord:
    """A ``waiting`` run whose recorded waiter process is gone will never start: record it lost.

    Checked by whoever looks at the run next (status, refresh, wait, the lease
    queue). The waiter's lease request is bound to the dead pid, so the lease
    book cancels it at its next pass; a pass runs here at once."""
    from merlin.clock import utcnow
    from merlin.leases.waiter import gone
    from merlin.ledger.store import set_status

    if gone(rec.status.value, rec.metadata, len(rec.attempts)) is None:
        return rec
    died: list[int] = []

    def mark(r: RunRecord) -> list[dict[str, Any]]:
        pid = gone(r.status.value, r.metadata, len(r.attempts))  # again, under the run's lock
        if pid is None:
            return []
        died.append(pid)
        lid = r.leases[0] if r.leases else None
        what = f"lease {lid}" if lid else "its lease"
        text = f"lost: its lease waiter (pid {pid}) died before {what} was granted, so nothing will start it; retry it to queue again"
        if r.metadata.get("waiting_for") == "env":
            text = f"lost: its supervisor (pid {pid}) died while its environment was building, so nothing will start it; retry it"
        att = r.attempts[-1]
        att.end_time = utcnow()
        att.error_type = "LEASE_WAITER_DIED"
        att.error_message = text
        set_status(r, RunStatus.LOST, text, [step(Action.RETRY, run_id=r.run_id), step(Action.STATUS, run_id=r.run_id)])
        return [{"event": "lease_waiter_died", "cause": text, "attempt": len(r.attempts), "detail": {"pid": pid, "lease_id": lid}}]

    rec = cp.ledger.update(rec.run_id, mark, cause="its lease waiter is gone")
    if died:
        try:
            cp.leases.refresh()  # the dead-holder rule cancels the waiter's request now, not at some later pass
        except MerlinError:
            pass
    return rec


def end_runs_whose_waiters_died(cp: Plane) -> list[RunRecord]:
    """:func:`end_if_waiter_died` for every waiting run of the ledger (what ``resources queue`` checks)."""
    from merlin.errors import NotFound
    from merlin.leases.waiter import gone

    out = []
    for raw in cp.ledger.list_raw(status=(RunStatus.WAITING.value,)):
        if gone(raw.get("status", ""), raw.get("metadata") or {}, len(raw.get("attempts") or [])) is None:
            continue
        try:
            out.append(end_if_waiter_died(cp, cp.ledger.read_record(raw["run_id"])))
        except NotFound:
            continue
    return out
