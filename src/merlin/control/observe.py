"""Observing runs: one run's status, reconciling many with their engines, and
applying what an engine saw through the ledger (transition-checked, locked).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from merlin.engines.base import Observation
from merlin.errors import BadInput, NotFound
from merlin.ledger.failures import INFRA_ERROR_TYPES, NO_CLASS_ERROR_TYPES
from merlin.ledger.paths import validate_run_id
from merlin.ledger.status import JOB_ENV, RunStatus, can_transition, engine_waits, on_its_engine
from merlin.ledger.store import set_status
from merlin.nextsteps import Action, step

if TYPE_CHECKING:  # pragma: no cover
    from merlin.control.plane import Plane
    from merlin.ledger.models import ArtifactIndex, RunRecord


def observable(rec: RunRecord) -> bool:
    """Active and handed to its engine. A pending attempt without a submission id is
    between its record and its engine (a leased run's waiter between the grant and the
    submit): its engine has nothing to say about it yet, and "never heard of it" would be wrong.
    A waiting run is asked about only when its engine has it (its job prepares its env on the node)."""
    if not rec.status.is_active():
        return engine_waits(rec.status.value, rec.metadata)
    if rec.status == RunStatus.PENDING and rec.attempt is not None and rec.attempt.submission_id is None:
        if rec.retry_at is not None:
            return False  # an automatic retry waiting out its backoff: its keeper's (a dead one is replaced, not made lost)
        return submitter_died(rec.leases, rec.attempt.submitter_pid, rec.attempt.submitter_start)
    return True


def submitter_died(leases: Any, pid: int | None, start: Any) -> bool:
    """A run between its record and its engine whose submitter was killed there: nobody will hand it
    over, so its engine is asked (the local engine records it lost, naming the submitter). A leased
    run is handed over by its lease waiter, not its submitter: that case is the waiter's (control/leased.py)."""
    if leases or pid is None:
        return False
    from merlin.clusters import procs

    return not procs.alive(pid, start)


def status(cp: Plane, run_id: str, refresh: bool = True) -> RunRecord:
    rec = cp.get(run_id)
    if refresh and rec.status == RunStatus.WAITING and not engine_waits(rec.status.value, rec.metadata):
        from merlin.control.leased import end_if_waiter_died

        return end_if_waiter_died(cp, rec)
    if refresh and observable(rec):
        obs = cp.engine(rec.engine).poll(rec)
        rec = apply(cp, rec, obs)
    if refresh and rec.retry_keeper and (rec.status.is_terminal() or rec.retry_at is not None):
        from merlin.control.retries import pending_retry

        pending_retry(cp, rec)  # its keeper died with a retry due: the next look starts another
    return rec


def status_json(cp: Plane, run_id: str, refresh: bool = True) -> dict[str, Any]:
    """:func:`status` as the record's JSON (what ``--json`` prints), pydantic-free when nothing changes.

    ``jobs status`` on a live run is mostly "still running": the record only gains
    ``observed_at``. That case, and a run that is not asked (ended, ``--no-refresh``),
    is served from the raw JSON file (the ledger wrote it from the models, so it is
    their ``model_dump(mode="json")``), which spares the command pydantic's import and
    schema build. Anything else (a transition, an engine without ``poll_raw``, an
    engine that could not answer) takes the full path, reusing the engine's answer.
    """
    raw = cp.ledger.read_raw(validate_run_id(run_id))
    if refresh and raw["status"] == RunStatus.WAITING.value and not engine_waits(raw["status"], raw.get("metadata")):
        from merlin.leases.waiter import gone

        if gone(raw["status"], raw.get("metadata") or {}, len(raw.get("attempts") or [])) is not None:
            return status(cp, run_id).model_dump(mode="json")  # its waiter died: recorded lost now
        return raw
    if not refresh or not on_its_engine(raw["status"], raw.get("metadata")):
        if refresh and raw.get("retry_keeper"):
            from merlin.control.retries import notice_raw

            notice_raw(cp, raw)
        return raw
    last = (raw.get("attempts") or [{}])[-1]
    if raw["status"] == RunStatus.PENDING.value and raw.get("attempts") and last.get("submission_id") is None:
        if raw.get("retry_at"):
            from merlin.control.retries import notice_raw

            notice_raw(cp, raw)
            return raw
        if submitter_died(raw.get("leases"), last.get("submitter_pid"), last.get("submitter_start")):
            return status(cp, run_id).model_dump(mode="json")
        return raw  # not handed to its engine yet (see observable)
    eng = cp.engine(raw["engine"])
    poll_raw = getattr(eng, "poll_raw", None)
    obs = poll_raw(raw) if poll_raw is not None else None
    if obs is None:
        return status(cp, run_id, refresh).model_dump(mode="json")
    if obs.status is not None and obs.status.value == raw["status"]:
        if eng.reports_own_status:
            return raw
        seen = cp.ledger.touch_observed(run_id, len(raw["attempts"]), obs.status.value, _attempt_fields(obs))
        if seen is not None:
            return seen
    return apply(cp, cp.get(run_id), obs).model_dump(mode="json")


def _attempt_fields(obs: Observation) -> dict[str, Any]:
    """The attempt fields :func:`apply` would set from ``obs``, as the record's JSON spells them."""
    fields: dict[str, Any] = {}
    for name in ("exit_code", "error_type", "start_time", "end_time"):
        value = getattr(obs, name)
        if value:
            fields[name] = json_time(value) if hasattr(value, "isoformat") else value
        elif name == "exit_code" and value is not None:
            fields[name] = value
    return fields


def json_time(value: Any) -> str:
    """A UTC datetime as pydantic serialises it (ISO 8601, ``Z``)."""
    return value.isoformat().replace("+00:00", "Z")


def refresh(cp: Plane, run_ids: Iterable[str] | None = None, touch: bool = True) -> list[RunRecord]:
    """Reconcile active runs with their engines: one ``poll_many`` per engine. Waiting runs have
    no engine yet: those whose lease waiter died are recorded lost (and returned).

    ``touch`` False: a run its engine reports unchanged (same status, nothing to say) is
    returned as recorded, not rewritten with a new ``observed_at`` (a waiter polling often)."""
    from merlin.control.leased import end_if_waiter_died

    if run_ids is None:
        ids = [d["run_id"] for d in cp.ledger.list_raw(status=(RunStatus.PENDING.value, RunStatus.RUNNING.value, RunStatus.WAITING.value))]
    else:
        ids = [validate_run_id(r) for r in run_ids]
    records = []
    out = []
    for rid in ids:
        try:
            rec = cp.ledger.read_record(rid)
        except NotFound:
            continue
        if rec.status == RunStatus.WAITING and not engine_waits(rec.status.value, rec.metadata):
            ended = end_if_waiter_died(cp, rec)  # a waiting run has no engine to ask; its waiter may have died
            if ended is not rec:
                out.append(ended)
        elif observable(rec):
            records.append(rec)
        elif rec.retry_keeper and (rec.retry_at is not None or rec.status.is_terminal()):
            from merlin.control.retries import keeper_alive, pending_retry

            if not keeper_alive(rec.retry_keeper):
                pending_retry(cp, rec)  # in its backoff, or ended with a retry due: a dead keeper is replaced
    by_engine: dict[str, list[RunRecord]] = {}
    for rec in records:
        by_engine.setdefault(rec.engine, []).append(rec)
    for name, recs in by_engine.items():
        eng = cp.engine(name)
        observations = eng.poll_many(recs)
        applied = []
        for rec in recs:
            obs = observations.get(rec.run_id)
            # unchanged: the same status (its attempt's times are written when it ends), and no
            # "could not observe" message of an earlier poll to clear
            if obs is None or (not touch and obs.status == rec.status and not rec.message.startswith("could not observe")):
                applied.append(rec)
            else:
                applied.append(apply(cp, rec, obs, keep_logs=False))
        eng.keep_logs([r for r in applied if r.status.is_terminal() and r.status != RunStatus.LOST])
        out.extend(applied)
    for rec in out:
        if rec.retry_keeper and rec.status.is_terminal():
            from merlin.control.retries import pending_retry

            pending_retry(cp, rec)  # a retry is due and its keeper is gone: start another

    return out


def apply(cp: Plane, seen: RunRecord, obs: Observation, keep_logs: bool = True) -> RunRecord:
    """Apply one observation through the ledger (transition-checked, locked).

    When the observation ends the run, its target directory is indexed first,
    outside the run's lock (the run has ended: nothing writes there any more),
    and the index is committed in the short locked update that records the end.
    Its engine keeps its log afterwards (``keep_logs``).
    A run whose engine reports its own status (a live local supervisor) is left
    alone when nothing changed: re-writing the record on every poll would only
    contend for its lock.
    """
    from merlin.ledger.artifacts import index_dir

    eng = cp.engine(seen.engine)
    if eng.reports_own_status and obs.status == seen.status:
        return seen

    attempt_no = len(seen.attempts)
    run_id = seen.run_id
    became_terminal: list[bool] = []
    obs_now: list[Observation] = []
    recheck = getattr(eng, "recheck", None)
    ends = obs.status is not None and obs.status.is_terminal() and on_its_engine(seen.status.value, seen.metadata)
    idx = index_dir(run_id, Path(seen.target_dir), attempt_no) if ends else None  # never under the lock

    def mutate(r: RunRecord) -> list[dict[str, Any]]:
        if len(r.attempts) != attempt_no or not on_its_engine(r.status.value, r.metadata):
            return []
        if obs.status is None:
            if obs.message:
                r.message = obs.message
                r.next_steps = list(obs.next_steps)  # type: ignore[arg-type]
            return []
        if obs.status == RunStatus.LOST and recheck is not None:
            # decide on the record as it is under the lock, never on the snapshot polled
            fresh = recheck(r, obs)
            if fresh is None or fresh.status != RunStatus.LOST:
                return []
            obs_now.append(fresh)
        o = obs_now[-1] if obs_now else obs
        att = r.attempts[-1]
        if o.exit_code is not None:
            att.exit_code = o.exit_code
        own = att.error_type in INFRA_ERROR_TYPES | NO_CLASS_ERROR_TYPES  # a cause the job recorded itself (a gang's lost replica) stays
        if o.error_type and not own:
            att.error_type = o.error_type
        if o.start_time:
            att.start_time = o.start_time
        if o.end_time:
            att.end_time = o.end_time
        if o.extra.get("env_id") and not att.env_cache:  # the env launcher's report (engines other than local)
            att.env_id, att.env_cache = o.extra["env_id"], o.extra.get("env_cache")
        new = o.status
        if new is None:
            return []
        if new == RunStatus.WAITING and r.status == RunStatus.WAITING and o.extra.get("waiting_on") != r.waiting_on:
            r.waiting_on, r.message = o.extra.get("waiting_on"), o.message or r.message  # its env went from starting to building
            return []
        if new == r.status or not can_transition(r.status, new):
            if new == RunStatus.RUNNING and r.message.startswith("could not observe"):
                r.message, steps = message_for(r, new, o)
                r.next_steps = steps  # type: ignore[assignment]
            return []
        if new in (RunStatus.FAILED, RunStatus.LOST, RunStatus.BLOCKED) and o.message and not own:
            att.error_message = o.message
        text, steps = message_for(r, new, o)
        set_status(r, new, text, steps)
        if new == RunStatus.WAITING:  # its job prepares its env on the node (engines/ray_env.py)
            r.metadata["waiting_for"], r.waiting_on = JOB_ENV, o.extra.get("waiting_on")
        elif r.metadata.get("waiting_for") == JOB_ENV:
            del r.metadata["waiting_for"]
        if not new.is_terminal():
            return []
        became_terminal.append(True)
        if att.usage is None:  # what the launcher measured where the command ran (a Ray job's wrapper)
            from merlin.envs.launch import read_usage

            att.usage = read_usage(cp.layout.usage_report(run_id, attempt_no))
        if idx is not None and cp.ledger.write_artifacts(idx, locked=True):
            return [{"event": "artifacts", "cause": "the run ended; target directory indexed", "attempt": attempt_no, "detail": {"files": len(idx.files)}}]
        return []

    cause = f"observed by {seen.engine} engine" + (f": {obs.status.value}" if obs.status else ": no answer")
    rec = cp.ledger.update(run_id, mutate, cause=cause, observed=obs.status is not None)
    if became_terminal and idx is None:  # ended although ``seen`` did not predict it: index now, commit briefly
        late = index_dir(run_id, Path(rec.target_dir), attempt_no)
        if cp.ledger.write_artifacts(late):
            cp.ledger.append_event(run_id, "artifacts", "the run ended; target directory indexed", attempt=attempt_no, detail={"files": len(late.files)})
    if became_terminal and keep_logs and rec.status != RunStatus.LOST:
        eng.keep_logs([rec])
    if became_terminal and rec.status == RunStatus.LOST:
        end = getattr(eng, "end_leftovers", None)  # optional: processes the engine lost track of
        ended = end(rec) if end is not None else 0
        if ended:
            cp.ledger.append_event(run_id, "note", f"ended {ended} processes the lost attempt left running", attempt=attempt_no)
    return rec


def message_for(r: RunRecord, new: RunStatus, obs: Observation) -> tuple[str, list[dict[str, Any]]]:
    """A run's message (plain text) and next steps once it moved to ``new``."""
    rid = r.run_id
    att = r.attempts[-1] if r.attempts else None
    if new == RunStatus.RUNNING and r.outcome:  # seen running late, after its executor reported: the executor's words stay
        return r.message, [s.model_dump() for s in r.next_steps]
    if new == RunStatus.RUNNING:
        where = f"on cluster '{r.cluster.name}'" if r.cluster else f"on the {r.engine} engine"
        return f"running {where} ({att.submission_id if att else ''})", [step(Action.LOGS, run_id=rid, follow=True)]
    if new == RunStatus.WAITING:
        return obs.message or "waiting for its environment", list(obs.next_steps)
    if new == RunStatus.SUCCEEDED:
        if r.outcome:  # a TargetGen run: the executor wrote its outcome and next steps
            return r.message, [s.model_dump() for s in r.next_steps]
        return "succeeded", [step(Action.ARTIFACTS, run_id=rid)]
    if new == RunStatus.FAILED and obs.error_type == "MEMORY_LIMIT":  # the launcher ended it (merlin.envs.memory_watch)
        from merlin.envs.memory_watch import failed_message

        return failed_message(obs.message or "it used more memory than its limit"), [step(Action.LOGS, run_id=rid), step(Action.RETRY, run_id=rid)]
    if new == RunStatus.FAILED:
        detail = (obs.message or "").strip().splitlines()[0] if (obs.message or "").strip() else ""
        detail = detail.split(", last available logs")[0].rstrip(" :.")
        code = f"exit code {obs.exit_code}" if obs.exit_code is not None else (obs.error_type or "failed")
        detail = f": {detail}." if detail else "."
        return f"failed ({code}){detail} Read its log, then retry it", [step(Action.LOGS, run_id=rid), step(Action.RETRY, run_id=rid)]
    if new == RunStatus.CANCELLED:
        return "cancelled; retry it to run it again", [step(Action.RETRY, run_id=rid)]
    if new == RunStatus.LOST:
        return obs.message or "lost; retry it", list(obs.next_steps) or [step(Action.RETRY, run_id=rid)]
    if new == RunStatus.BLOCKED and obs.error_type == "ENV_BUILD_FAILED":  # a Ray job's env launcher could not build (docs/environments.md)
        from merlin.engines.local_env import build_failed_message
        from merlin.envs.build import no_space

        eid = str(obs.extra.get("env_id") or (att.env_id if att else "") or "")
        line = obs.message or "uv failed"
        full = bool(obs.extra.get("no_space")) or no_space(line)
        text = build_failed_message(eid, line, full, obs.extra.get("cache_dir") or "the node's env cache")
        return text, [step(Action.LOGS, run_id=rid), step(Action.RETRY, run_id=rid)]
    return r.message, [s.model_dump() for s in r.next_steps]


def index_artifacts(cp: Plane, run_id: str) -> ArtifactIndex:
    from merlin.ledger.artifacts import index_dir

    rec = cp.get(run_id)
    idx = index_dir(run_id, Path(rec.target_dir), len(rec.attempts) or None)
    if cp.ledger.write_artifacts(idx):
        cp.ledger.append_event(run_id, "artifacts", "the run ended; target directory indexed", attempt=len(rec.attempts) or None, detail={"files": len(idx.files)})
    return idx


def list_entries(cp: Plane, status: Iterable[str] | None = None, refresh_first: bool = False) -> Sequence[tuple[dict[str, Any], bytes]]:
    if status:
        bad = [s for s in status if s not in {x.value for x in RunStatus}]
        if bad:
            raise BadInput(f"`status` {bad[0]!r}: expected one of {', '.join(x.value for x in RunStatus)}", argument="status")
    if cp.layout.sweeps.is_dir():  # the next look restarts a sweep's killed driver (docs/sweeps.md)
        from merlin.control.sweeps import restart_drivers

        restart_drivers(cp)
    if cp.layout.retry_keepers.is_dir():  # and a run's killed retry keeper, when a retry is due (docs/retries.md)
        from merlin.control.retries import notice_all

        notice_all(cp)
    if refresh_first:
        refresh(cp)
    return cp.ledger.list_entries(status=status)  # lazy (ledger/index.py): records are read only for the rows taken


def artifacts(cp: Plane, run_id: str) -> ArtifactIndex:
    rec = cp.get(run_id)
    idx = cp.ledger.read_artifacts(run_id)
    if idx is None:
        if rec.status.is_active():
            raise NotFound(f"run {run_id} is {rec.status.value}; artifacts are indexed when it ends")
        idx = index_artifacts(cp, run_id)
    return idx
