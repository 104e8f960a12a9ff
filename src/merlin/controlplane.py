"""ControlPlane: the Python API behind ``merlin ray ...`` (and TargetGen's ``--engine``).

One object per state root, passed explicitly: no module-level connection,
no global cluster. The ledger under the state root is the source of truth;
engines (local process groups, Ray Jobs) are only observed, and every
observation is applied through the ledger's locked, transition-checked
update.

    from merlin.controlplane import ControlPlane
    cp = ControlPlane(state_root="build/generated/ray")
    run = cp.submit(["python", "-c", "print('hi')"], target="demo", workflow="smoke", engine="ray", wait=True)
    print(run.status, cp.logs(run.run_id))
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence

from merlin.errors import BadInput, Blocked, NotFound
from merlin.ledger.paths import Layout, new_run_id, resolve_state_root, validate_name, validate_run_id
from merlin.ledger.status import RunStatus, can_transition
from merlin.ledger.store import Ledger, set_status
from merlin.safety import check_number, check_target_dir, no_nul, no_nul_env, no_nul_in  # noqa: F401 (check_target_dir: re-exported)

if TYPE_CHECKING:  # pragma: no cover
    from merlin.clusters.local import ClusterState, LocalClusters
    from merlin.engines.base import Observation
    from merlin.ledger.models import ArtifactIndex, ClusterRecord, RunRecord

_ENV_NAME_OK = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")

#: What a finished TargetGen run's message says to do next, when the executor gives none.
OUTCOME_HINTS = {
    "completed": "completed; list its artifacts with `merlin ray artifacts list {run_id}`",
    "blocked": "the executor is blocked: read {target_dir} for what it needs, fix it, then `merlin targetgen execute --from-dir {target_dir}`",
    "awaiting_operator": "awaiting an operator: do the step described in {target_dir}, then `merlin targetgen execute --from-dir {target_dir}`",
    "awaiting_response": "awaiting a response: answer the request in {target_dir}, then `merlin targetgen execute --from-dir {target_dir}`",
}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else 'no detail'}"


def _check_env(env: Mapping[str, str] | None) -> dict[str, str]:
    out = {}
    for k, v in (env or {}).items():
        if not k or k[0].isdigit() or not set(k) <= _ENV_NAME_OK:
            raise BadInput(f"--env {k}=...: invalid environment variable name")
        out[k] = str(v)
    return out


class ControlPlane:
    """Runs, clusters and artifacts of one state root."""

    def __init__(self, state_root: str | os.PathLike[str] | None = None) -> None:
        self.root = resolve_state_root(state_root)
        self.ledger = Ledger(self.root)
        self.layout: Layout = self.ledger.layout
        self._engines: dict[str, Any] = {}
        self._clusters: "LocalClusters | None" = None

    # ----------------------------------------------------------------- parts

    @property
    def leases(self) -> Any:
        """The lease book (merlin.leases.book.LeaseBook) of this state root: reserve, renew, release, ..."""
        from merlin.leases.book import LeaseBook

        return LeaseBook(self.layout)

    @property
    def clusters(self) -> "LocalClusters":
        if self._clusters is None:
            from merlin.clusters.local import LocalClusters

            self._clusters = LocalClusters(self.ledger)
        return self._clusters

    def engine(self, name: str) -> Any:
        if name not in self._engines:
            if name == "local":
                from merlin.engines.local import LocalEngine

                self._engines[name] = LocalEngine(self.ledger)
            elif name == "ray":
                from merlin.engines.ray_engine import RayEngine

                self._engines[name] = RayEngine(self.ledger)
            else:
                raise BadInput(f"unknown engine {name!r}: expected local or ray")
        return self._engines[name]

    # -------------------------------------------------------------- clusters

    def start_local_cluster(self, name: str = "default", **kwargs: Any) -> tuple["ClusterRecord", bool]:
        """Start (or find already active) a local Ray head. Returns (record, started_now)."""
        return self.clusters.start(name=name, **kwargs)

    def start_cluster(self, kind: str, name: str, *, wait: bool = True, progress: Any = None, **options: Any) -> tuple["ClusterRecord", bool]:
        """Start a cluster of any kind (slurm, pbs, ssh through their backends). Returns (record, started_now)."""
        if kind == "local":
            return self.start_local_cluster(name, progress=progress, **options)
        from merlin.clusters.kinds import backend_for

        return backend_for(kind, self.ledger).start(name, wait=wait, progress=progress, **options)

    def cluster_status(self, name: str = "default") -> "ClusterState":
        rec = self.ledger.read_cluster(name)
        if rec is not None and rec.kind != "local":  # hpc: slurm/pbs/ssh records go to their backend
            from merlin.clusters.kinds import observe_state

            return observe_state(self.ledger, rec)
        return self.clusters.observe(name)

    def stop_cluster(self, name: str = "default", grace: float = 5.0, **kwargs: Any) -> "ClusterRecord":
        rec = self.ledger.read_cluster(name)
        if rec is not None and rec.kind != "local":
            from merlin.clusters.kinds import stop

            return stop(self.ledger, rec, grace=grace, progress=kwargs.get("progress"))
        return self.clusters.stop(name, grace=grace, **kwargs)

    def list_clusters(self) -> list["ClusterState"]:
        return [self.cluster_status(n) for n in self.ledger.cluster_names()]

    # ------------------------------------------------------------------ runs

    def submit(
        self,
        command: Sequence[str],
        *,
        target: str,
        workflow: str,
        engine: str = "local",
        target_dir: str | os.PathLike[str] | None = None,
        workdir: str | os.PathLike[str] | None = None,
        num_cpus: float | None = None,
        num_gpus: float | None = None,
        resources: Mapping[str, float] | None = None,
        env: Mapping[str, str] | None = None,
        cluster: str | None = None,
        source: str = "api",
        metadata: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> "RunRecord":
        """Record a run and hand it to its engine. A run that cannot be handed
        over is still recorded, as ``blocked``, with the fix in its message."""
        from merlin.ledger.models import Attempt, ClusterRef, RunRecord, RunRequest
        from merlin.ledger.text import redact_argv

        command = [str(c) for c in command]
        if not command:
            raise BadInput("no command given: put it after `--`, e.g. `merlin ray jobs submit ... -- python run.py`")
        validate_name(target, "target name")
        validate_name(workflow, "workflow name")
        if engine not in ("local", "ray"):
            raise BadInput(f"--engine {engine!r}: expected local or ray")
        if cluster is not None:
            validate_name(cluster, "cluster name")
            self.layout.cluster_record(cluster)
        if engine == "local" and cluster is not None:
            raise BadInput("--cluster applies to --engine ray only")
        for label, v in (("--num-cpus", num_cpus), ("--num-gpus", num_gpus)):
            check_number(v, label)
        for k, v in (resources or {}).items():
            check_number(v, f"--resource {k}")
        no_nul_in(command, "command argument")
        no_nul_env(env)
        no_nul(str(target_dir) if target_dir is not None else None, "--target-dir")
        no_nul(str(workdir) if workdir is not None else None, "--workdir")
        real_env = _check_env(env)
        run_id = validate_run_id(run_id) if run_id else new_run_id(target)
        tdir = check_target_dir(Path(target_dir).expanduser().resolve()) if target_dir else self.layout.default_target_dir(run_id)
        wdir = Path(workdir).expanduser().resolve() if workdir else Path.cwd().resolve()
        if not wdir.is_dir():
            raise BadInput(f"working directory {wdir} does not exist")
        request = RunRequest(
            run_id=run_id,
            target=target,
            workflow=workflow,
            source=source,
            engine=engine,  # type: ignore[arg-type]
            command=redact_argv(command),
            workdir=str(wdir),
            target_dir=str(tdir),
            cluster=(cluster or "default") if engine == "ray" else None,
            env=real_env,
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            resources={k: float(v) for k, v in (resources or {}).items()},
            metadata=dict(metadata or {}),
        )
        record = RunRecord(
            run_id=run_id,
            target=target,
            workflow=workflow,
            source=source,
            engine=engine,  # type: ignore[arg-type]
            status=RunStatus.PENDING,
            command=request.command,
            workdir=str(wdir),
            target_dir=str(tdir),
            cluster=ClusterRef(name=cluster or "default") if engine == "ray" else None,
            attempts=[Attempt(number=1, engine=engine, status=RunStatus.PENDING)],  # type: ignore[arg-type]
            message="submitting",
            metadata=dict(metadata or {}),
        )
        if engine == "ray":
            rec = self._submit_ray_first_attempt(record, request, command, real_env)
        else:
            self.ledger.create_run(request, record, cause=f"submitted by {source} (pid {os.getpid()})")
            tdir.mkdir(parents=True, exist_ok=True)
            rec = self._launch(run_id, command, real_env, known=(record, request))
        if wait and not rec.status.is_terminal():
            rec = self.wait(run_id, timeout=timeout)
        return rec

    def _run_env(self, rec: "RunRecord", env: Mapping[str, str]) -> dict[str, str]:
        out = dict(env)
        out.update(
            {
                "MERLIN_RUN_ID": rec.run_id,
                "MERLIN_ATTEMPT": str(len(rec.attempts)),
                "MERLIN_RUN_DIR": str(self.layout.run_dir(rec.run_id)),
                "MERLIN_TARGET_DIR": rec.target_dir,
                "MERLIN_STATE_ROOT": str(self.root),
            }
        )
        return out

    def _submit_ray_first_attempt(self, record: "RunRecord", request: Any, command: list[str], env: Mapping[str, str]) -> "RunRecord":
        """Write-ahead submission: check everything that can block, write the run
        once as it will be (submission id, cluster), then POST to Ray.

        One record write on the happy path. If merlin dies between the write and
        the POST, Ray never heard of the submission id and the next refresh
        marks the run ``lost`` (retryable): the ledger never misses a job.
        """
        from merlin.clusters.fit import pending_explanation
        from merlin.engines.base import EngineBlocked
        from merlin.engines.ray_engine import submission_id
        from merlin.ledger.models import ClusterRef, utcnow

        run_id = record.run_id
        cause = f"submitted by {record.source} (pid {os.getpid()})"
        eng = self.engine("ray")
        att = record.attempts[-1]
        try:
            crec = eng.preflight(request.cluster or "default", run_id)
        except EngineBlocked as blocked:
            att.status = RunStatus.BLOCKED
            att.error_type = blocked.cause
            att.error_message = blocked.message
            att.end_time = utcnow()
            record.status = RunStatus.BLOCKED
            record.message = f"blocked: {blocked.message}"
            self.ledger.create_run(request, record, cause=f"{cause}; blocked: {blocked.cause}")
            Path(record.target_dir).mkdir(parents=True, exist_ok=True)
            return record
        sub_id = submission_id(run_id, 1)
        att.submission_id = sub_id
        att.submitted_at = utcnow()
        record.cluster = ClusterRef(name=crec.name, address=crec.address, gcs_address=crec.gcs_address, session_name=crec.session_name)
        record.message = pending_explanation(request, crec.name, crec.resources, run_id) or (
            f"submitted to Ray cluster '{crec.name}' ({crec.address}) as {sub_id}; follow with `merlin ray jobs logs {run_id} --follow`"
        )
        self.ledger.create_run(request, record, cause=f"{cause}; handed to Ray cluster '{crec.name}' as {sub_id}")
        Path(record.target_dir).mkdir(parents=True, exist_ok=True)
        try:
            eng.submit(record.model_copy(update={"command": command}), request, self._run_env(record, env))
        except Exception:
            # rare: the cluster went away between preflight and POST. One more try through the
            # regular path, which records the run as blocked or failed (or adopts the job if
            # the first POST did reach Ray).
            return self._launch(run_id, command, env)
        return record  # the 'created' event already names the submission: no second write

    def _launch(
        self,
        run_id: str,
        command: list[str],
        env: Mapping[str, str],
        known: tuple[Any, Any] | None = None,
    ) -> "RunRecord":
        """Hand the latest attempt to its engine and record what happened.

        ``known``: the (record, request) just written by ``submit``, to skip re-reading them."""
        from merlin.clusters.fit import pending_explanation
        from merlin.engines.base import EngineBlocked
        from merlin.ledger.models import ClusterRef, utcnow

        if known is not None:
            rec, request = known
        else:
            rec = self.ledger.read_record(run_id)
            request = self.ledger.read_request(run_id)
        eng = self.engine(rec.engine)
        submit_rec = rec.model_copy(update={"command": command})
        attempt_no = len(rec.attempts)
        try:
            sub = eng.submit(submit_rec, request.model_copy(update={"cluster": rec.cluster.name if rec.cluster else None}), self._run_env(rec, env))
        except EngineBlocked as blocked:

            def mark_blocked(r: "RunRecord") -> None:
                if len(r.attempts) != attempt_no:
                    return
                att = r.attempts[-1]
                att.error_type = blocked.cause
                att.error_message = blocked.message
                att.end_time = utcnow()
                set_status(r, RunStatus.BLOCKED, f"blocked: {blocked.message}")

            return self.ledger.update(run_id, mark_blocked, cause=f"blocked: {blocked.cause}")
        except Exception as exc:
            err = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"

            def mark_failed(r: "RunRecord") -> None:
                att = r.attempts[-1]
                att.error_type = "SUBMIT_ERROR"
                att.error_message = err
                att.end_time = utcnow()
                set_status(r, RunStatus.FAILED, f"submission failed ({err}); fix the cause, then `merlin ray jobs retry {run_id}`")

            return self.ledger.update(run_id, mark_failed, cause="the engine refused the submission")

        cluster_ref = None
        unfit = None
        if rec.engine == "ray":
            crec = self.ledger.read_cluster(rec.cluster.name if rec.cluster else "default")
            if crec is not None:
                cluster_ref = ClusterRef(name=crec.name, address=crec.address, gcs_address=crec.gcs_address, session_name=crec.session_name)
                unfit = pending_explanation(request, crec.name, crec.resources, run_id)

        def mark_submitted(r: "RunRecord") -> list[dict[str, Any]]:
            if len(r.attempts) != attempt_no:
                return []
            att = r.attempts[-1]
            att.submission_id = sub.submission_id
            att.submitted_at = utcnow()
            for k, v in sub.fields.items():
                setattr(att, k, v)
            if cluster_ref is not None:
                r.cluster = cluster_ref
            if r.status == RunStatus.PENDING:
                where = f"Ray cluster '{cluster_ref.name}' ({cluster_ref.address})" if cluster_ref else "the local engine"
                r.message = unfit or f"submitted to {where} as {sub.submission_id}; follow with `merlin ray jobs logs {run_id} --follow`"
            return [{"event": "submitted", "cause": f"handed to the {r.engine} engine", "attempt": attempt_no, "detail": {"submission_id": sub.submission_id}}]

        return self.ledger.update(run_id, mark_submitted, cause="submitted")

    # ------------------------------------------------------------ observing

    def get(self, run_id: str) -> "RunRecord":
        """The record as the ledger has it (no engine call)."""
        return self.ledger.read_record(validate_run_id(run_id))

    def status(self, run_id: str, refresh: bool = True) -> "RunRecord":
        """The record, after asking the engine if the run may still change."""
        rec = self.get(run_id)
        if refresh and rec.status.is_active():
            obs = self.engine(rec.engine).poll(rec)
            rec = self._apply(rec, obs)
        return rec

    def refresh(self, run_ids: Iterable[str] | None = None) -> list["RunRecord"]:
        """Reconcile active runs with their engines: one ``list_jobs`` per Ray cluster."""
        if run_ids is None:
            ids = [d["run_id"] for d in self.ledger.list_raw(status=("pending", "running"))]
        else:
            ids = [validate_run_id(r) for r in run_ids]
        records = []
        for rid in ids:
            try:
                rec = self.ledger.read_record(rid)
            except NotFound:
                continue
            if rec.status.is_active():
                records.append(rec)
        by_engine: dict[str, list["RunRecord"]] = {}
        for rec in records:
            by_engine.setdefault(rec.engine, []).append(rec)
        out = []
        for name, recs in by_engine.items():
            observations = self.engine(name).poll_many(recs)
            for rec in recs:
                obs = observations.get(rec.run_id)
                out.append(self._apply(rec, obs, keep_logs=False) if obs is not None else rec)
        self._keep_ray_logs([r for r in out if r.engine == "ray" and r.status.is_terminal() and r.status != RunStatus.LOST])
        return out

    def _apply(self, seen: "RunRecord", obs: "Observation", keep_logs: bool = True) -> "RunRecord":
        """Apply one observation through the ledger (transition-checked, locked).

        When the observation ends the run, its target directory is indexed
        first, outside the run's lock (the run has ended: nothing writes there
        any more), and the index is committed in the short locked update that
        records the end. Its Ray log is kept afterwards (``keep_logs``).
        A local run whose supervisor is alive is left alone: the supervisor is
        its observer, and re-writing the record on every poll would only
        contend for its lock.
        """
        from merlin.ledger.artifacts import index_dir

        if seen.engine == "local" and obs.status == seen.status:
            return seen

        attempt_no = len(seen.attempts)
        run_id = seen.run_id
        became_terminal: list[bool] = []
        ends = obs.status is not None and obs.status.is_terminal() and seen.status.is_active()
        idx = index_dir(run_id, Path(seen.target_dir), attempt_no) if ends else None  # never under the lock

        def mutate(r: "RunRecord") -> list[dict[str, Any]]:
            if len(r.attempts) != attempt_no or not r.status.is_active():
                return []
            if obs.status is None:
                if obs.message:
                    r.message = obs.message
                return []
            att = r.attempts[-1]
            if obs.exit_code is not None:
                att.exit_code = obs.exit_code
            if obs.error_type:
                att.error_type = obs.error_type
            if obs.start_time:
                att.start_time = obs.start_time
            if obs.end_time:
                att.end_time = obs.end_time
            new = obs.status
            if new == r.status or not can_transition(r.status, new):
                if new == RunStatus.RUNNING and r.message.startswith("could not observe"):
                    r.message = self._message_for(r, new, obs)
                return []
            if new in (RunStatus.FAILED, RunStatus.LOST) and obs.message:
                att.error_message = obs.message
            set_status(r, new, self._message_for(r, new, obs))
            if not new.is_terminal():
                return []
            became_terminal.append(True)
            if idx is not None and self.ledger.write_artifacts(idx, locked=True):
                return [{"event": "artifacts", "cause": "the run ended; target directory indexed", "attempt": attempt_no, "detail": {"files": len(idx.files)}}]
            return []

        cause = f"observed by {seen.engine} engine" + (f": {obs.status.value}" if obs.status else ": no answer")
        rec = self.ledger.update(run_id, mutate, cause=cause, observed=obs.status is not None)
        if became_terminal and idx is None:  # ended although ``seen`` did not predict it: index now, commit briefly
            late = index_dir(run_id, Path(rec.target_dir), attempt_no)
            if self.ledger.write_artifacts(late):
                self.ledger.append_event(run_id, "artifacts", "the run ended; target directory indexed", attempt=attempt_no, detail={"files": len(late.files)})
        if became_terminal and keep_logs and rec.engine == "ray" and rec.status != RunStatus.LOST:
            self._keep_ray_logs([rec])
        return rec

    def _keep_ray_logs(self, records: list["RunRecord"]) -> None:
        """Copy the logs of ended Ray runs into the ledger (Ray's go when its cluster stops).

        Fetched concurrently: each is one HTTP request to the jobs API."""
        todo = [r for r in records if not (self.layout.logs(r.run_id) / f"attempt-{len(r.attempts)}.log").is_file()]
        if not todo:
            return
        from concurrent.futures import ThreadPoolExecutor

        from merlin.atomic import write_if_changed

        eng = self.engine("ray")

        def fetch(rec: "RunRecord") -> None:
            try:
                text = eng.logs(rec)
            except Exception:
                return
            if text:
                write_if_changed(self.layout.logs(rec.run_id) / f"attempt-{len(rec.attempts)}.log", text.encode("utf-8"))

        if len(todo) == 1:
            fetch(todo[0])
            return
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(fetch, todo))

    def _message_for(self, r: "RunRecord", status: RunStatus, obs: "Observation") -> str:
        rid = r.run_id
        att = r.attempts[-1] if r.attempts else None
        if status == RunStatus.RUNNING:
            where = f"on Ray cluster '{r.cluster.name}'" if r.cluster else "locally"
            return f"running {where} ({att.submission_id if att else ''}); follow with `merlin ray jobs logs {rid} --follow`"
        if status == RunStatus.SUCCEEDED:
            if r.outcome:
                return r.message or self._outcome_hint(r, r.outcome)
            return f"succeeded; artifacts: `merlin ray artifacts list {rid}`"
        if status == RunStatus.FAILED:
            detail = (obs.message or "").strip().splitlines()[0] if (obs.message or "").strip() else ""
            detail = detail.split(", last available logs")[0].rstrip(" :.")
            code = f"exit code {obs.exit_code}" if obs.exit_code is not None else (obs.error_type or "failed")
            detail = f": {detail}." if detail else "."
            return f"failed ({code}){detail} Read `merlin ray jobs logs {rid}`, then `merlin ray jobs retry {rid}`"
        if status == RunStatus.CANCELLED:
            return f"cancelled; run it again with `merlin ray jobs retry {rid}`"
        if status == RunStatus.LOST:
            return obs.message or f"lost; `merlin ray jobs retry {rid}`"
        return r.message

    def index_artifacts(self, run_id: str) -> "ArtifactIndex":
        from merlin.ledger.artifacts import index_dir

        rec = self.get(run_id)
        idx = index_dir(run_id, Path(rec.target_dir), len(rec.attempts) or None)
        if self.ledger.write_artifacts(idx):
            self.ledger.append_event(run_id, "artifacts", "the run ended; target directory indexed", attempt=len(rec.attempts) or None, detail={"files": len(idx.files)})
        return idx

    def list_runs(self, status: Iterable[str] | None = None, refresh: bool = False) -> list[dict[str, Any]]:
        """Run records as plain dicts, newest first. Cheap: no engine, no pydantic, unless ``refresh``."""
        return [d for d, _raw in self.list_entries(status, refresh)]

    def list_entries(self, status: Iterable[str] | None = None, refresh: bool = False) -> list[tuple[dict[str, Any], bytes]]:
        """Like :meth:`list_runs`, with each record's bytes as stored."""
        if status:
            bad = [s for s in status if s not in {x.value for x in RunStatus}]
            if bad:
                raise BadInput(f"--status {bad[0]!r}: expected one of {', '.join(x.value for x in RunStatus)}")
        if refresh:
            self.refresh()
        return self.ledger.list_entries(status=status)

    def wait(self, run_id: str, timeout: float | None = None, poll: float = 0.5) -> "RunRecord":
        """Block until the run is terminal (or ``timeout`` seconds pass)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        rec = self.status(run_id)
        while not rec.status.is_terminal():
            if deadline is not None and time.monotonic() > deadline:
                break
            time.sleep(poll if rec.engine == "ray" else min(poll, 0.2))
            rec = self.status(run_id)
        return rec

    def events(self, run_id: str) -> list[dict[str, Any]]:
        return self.ledger.events(validate_run_id(run_id))

    # ----------------------------------------------------------- logs/cancel

    def logs(self, run_id: str, attempt: int | None = None) -> str:
        rec = self.get(run_id)
        if attempt is not None and not 1 <= attempt <= len(rec.attempts):
            raise BadInput(f"run {run_id} has {len(rec.attempts)} attempt(s); --attempt {attempt} does not exist")
        n = attempt or len(rec.attempts)
        kept = self.layout.logs(run_id) / f"attempt-{n}.log"
        att = rec.attempts[n - 1] if rec.attempts else None
        if att is None:
            return ""
        if att.engine == "local" or (rec.status.is_terminal() and kept.is_file()):
            try:
                return kept.read_text(encoding="utf-8", errors="replace")
            except FileNotFoundError:
                return ""
        if not att.submission_id:
            return ""
        from merlin.engines.base import EngineBlocked

        try:
            return self.engine("ray").logs(rec, n)
        except EngineBlocked as exc:
            raise Blocked(f"logs of run {run_id} are on its Ray cluster: {exc.message}") from None
        except Exception as exc:  # the SDK raises RuntimeError for HTTP errors
            raise Blocked(f"cannot read the logs of run {run_id} from Ray: {_first_line(exc)}") from None

    def follow(self, run_id: str) -> Iterator[str]:
        rec = self.get(run_id)
        att = rec.attempt
        if att is None or rec.status == RunStatus.BLOCKED or not att.submission_id:
            text = self.logs(run_id)
            if text:
                yield text
            return
        if rec.engine == "local" or (rec.status.is_terminal() and (self.layout.logs(run_id) / f"attempt-{len(rec.attempts)}.log").is_file()):
            if rec.engine == "local":
                yield from self.engine("local").follow(rec)
            else:
                yield self.logs(run_id)
            return
        from merlin.engines.base import EngineBlocked

        try:
            yield from self.engine("ray").follow(rec)
        except EngineBlocked as exc:
            raise Blocked(f"logs of run {run_id} are on its Ray cluster: {exc.message}") from None
        except Exception as exc:
            raise Blocked(f"cannot follow the logs of run {run_id} on Ray: {_first_line(exc)}") from None
        self.status(run_id)

    def cancel(self, run_id: str, grace: float = 5.0, timeout: float = 15.0) -> "RunRecord":
        """Stop a run. Local: end its process group. Ray: ``stop_job`` and wait for STOPPED."""
        from merlin.engines.base import EngineBlocked
        from merlin.ledger.models import utcnow

        rec = self.get(run_id)
        if rec.status.is_terminal() and rec.status != RunStatus.BLOCKED:
            return rec
        if rec.status == RunStatus.BLOCKED or (rec.attempt and not rec.attempt.submission_id):

            def cancel_blocked(r: "RunRecord") -> None:
                if r.status in (RunStatus.BLOCKED, RunStatus.PENDING):
                    set_status(r, RunStatus.CANCELLED, f"cancelled before it ran; run it with `merlin ray jobs retry {run_id}`")

            return self.ledger.update(run_id, cancel_blocked, cause="cancelled by user")
        if rec.engine == "local":

            def cancel_local(r: "RunRecord") -> list[dict[str, Any]]:
                if not r.status.is_active():
                    return []
                if r.attempts:
                    r.attempts[-1].end_time = utcnow()
                set_status(r, RunStatus.CANCELLED, f"cancelled (process group ended); run it again with `merlin ray jobs retry {run_id}`")
                return [{"event": "cancel_requested", "cause": f"user (pid {os.getpid()})", "attempt": len(r.attempts)}]

            rec = self.ledger.update(run_id, cancel_local, cause="cancelled by user")
            self.engine("local").cancel(rec, grace=grace)
            return self.get(run_id)
        self.ledger.append_event(run_id, "cancel_requested", f"user (pid {os.getpid()})", attempt=len(rec.attempts))
        try:
            self.engine("ray").cancel(rec)
        except EngineBlocked as exc:
            raise Blocked(f"cannot cancel run {run_id}: {exc.message}") from None
        except Exception as exc:
            raise Blocked(f"cannot cancel run {run_id} on Ray: {_first_line(exc)}") from None
        deadline = time.monotonic() + timeout
        never_started_by = time.monotonic() + min(timeout, 3.0)
        rec = self.status(run_id)
        while rec.status.is_active() and time.monotonic() < deadline:
            if rec.status == RunStatus.PENDING and time.monotonic() >= never_started_by:
                return self._cancel_never_started(run_id)
            time.sleep(0.3)
            rec = self.status(run_id)
        return rec

    def _cancel_never_started(self, run_id: str) -> "RunRecord":
        """Ray cannot stop a job whose supervisor was never scheduled: its stop request
        waits in the actor's queue. The user asked to cancel, so the ledger says
        cancelled, and the message says what Ray will still show."""
        from merlin.ledger.models import utcnow

        def mark(r: "RunRecord") -> None:
            if r.status != RunStatus.PENDING:
                return
            att = r.attempts[-1]
            att.end_time = utcnow()
            att.error_type = "CANCELLED_BEFORE_START"
            set_status(
                r,
                RunStatus.CANCELLED,
                f"cancelled before Ray started it; Ray may list {att.submission_id} as PENDING until its start timeout "
                f"(RAY_JOB_START_TIMEOUT_SECONDS, default 900 s); merlin's stop request stays queued for it in case it is ever "
                f"scheduled. Run it again with `merlin ray jobs retry {run_id}`",
            )

        return self.ledger.update(run_id, mark, cause="cancelled by user before Ray scheduled it")

    def retry(self, run_id: str, env: Mapping[str, str] | None = None, cluster: str | None = None, wait: bool = False, timeout: float | None = None) -> "RunRecord":
        """A new attempt of a blocked, failed, cancelled or lost run (same command, same target)."""
        from merlin.ledger.models import Attempt, ClusterRef
        from merlin.ledger.text import REDACTED, has_redacted

        rec = self.get(run_id)
        if not rec.status.is_retryable():
            if rec.status == RunStatus.SUCCEEDED:
                raise BadInput(f"run {run_id} succeeded; nothing to retry (submit a new run to run it again)")
            raise BadInput(f"run {run_id} is {rec.status.value}; cancel it first (`merlin ray jobs cancel {run_id}`) or wait for it")
        request = self.ledger.read_request(run_id)
        if has_redacted(request.command):
            raise BadInput(f"run {run_id}'s command held secret values that the ledger redacted; submit it again")
        overrides = _check_env(env)
        real_env: dict[str, str] = {}
        missing = []
        for k, v in request.env.items():
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
        if missing:
            raise BadInput(
                f"run {run_id} had secret environment values that the ledger does not keep ({', '.join(missing)}); "
                f"export them or pass --env NAME=VALUE to `merlin ray jobs retry {run_id}`"
            )
        if cluster is not None:
            validate_name(cluster, "cluster name")
            if rec.engine != "ray":
                raise BadInput("--cluster applies to ray runs only")

        def new_attempt(r: "RunRecord") -> list[dict[str, Any]]:
            if not r.status.is_retryable():
                raise BadInput(f"run {run_id} changed to {r.status.value} meanwhile; not retried")
            n = len(r.attempts) + 1
            r.attempts = [*r.attempts, Attempt(number=n, engine=r.engine, status=RunStatus.PENDING)]
            if cluster is not None:
                r.cluster = ClusterRef(name=cluster)
            set_status(r, RunStatus.PENDING, f"retrying (attempt {n})")
            return [{"event": "retry", "cause": f"retry requested (pid {os.getpid()})", "attempt": n}]

        self.ledger.update(run_id, new_attempt, cause="retry")
        rec = self._launch(run_id, list(request.command), real_env)
        if wait and not rec.status.is_terminal():
            rec = self.wait(run_id, timeout=timeout)
        return rec

    # -------------------------------------------------------------- artifacts

    def artifacts(self, run_id: str) -> "ArtifactIndex":
        rec = self.get(run_id)
        idx = self.ledger.read_artifacts(run_id)
        if idx is None:
            if rec.status.is_active():
                raise NotFound(f"run {run_id} is {rec.status.value}; artifacts are indexed when it ends")
            idx = self.index_artifacts(run_id)
        return idx

    def fetch_artifact(self, run_id: str, name: str, to: str | os.PathLike[str]) -> Path:
        from merlin.ledger.artifacts import fetch

        return fetch(self.artifacts(run_id), name, Path(to))

    # ------------------------------------------------------- TargetGen hooks

    def submit_targetgen(
        self,
        target_dir: str | os.PathLike[str],
        target: str,
        *,
        engine: str = "ray",
        cluster: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
        workflow: str = "targetgen-execute",
        extra_args: Sequence[str] = (),
        metadata: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> "RunRecord":
        """Run the local TargetGen executor on ``target_dir`` as a run of ``engine``.

        The entrypoint is this interpreter running ``merlin targetgen execute
        --from-dir DIR --engine local --run-id ID --state-root ROOT``: the job
        imports this merlin and writes the executor's outcome into the run
        record (``record_inprocess_run`` with ``run_id``), while the engine's
        status (succeeded/failed) is observed as for any run.
        """
        no_nul(str(target_dir), "target directory")
        no_nul_in(extra_args, "argument")
        no_nul_env(env)
        tdir = Path(target_dir).expanduser().resolve()
        if not tdir.is_dir():
            raise BadInput(f"target directory {tdir} does not exist (orchestrate the target first)")
        run_id = new_run_id(target)
        command = [
            sys.executable,
            "-m",
            "merlin",
            "targetgen",
            "execute",
            "--from-dir",
            str(tdir),
            "--engine",
            "local",
            "--run-id",
            run_id,
            "--state-root",
            str(self.root),
            *extra_args,
        ]
        return self.submit(
            command,
            target=target,
            workflow=workflow,
            engine=engine,
            target_dir=tdir,
            cluster=cluster,
            source="targetgen",
            metadata=metadata,
            run_id=run_id,
            wait=wait,
            timeout=timeout,
            env=env,
        )

    @contextmanager
    def record_inprocess_run(
        self,
        *,
        target: str,
        target_dir: str | os.PathLike[str],
        workflow: str = "targetgen-execute",
        command: Sequence[str] | None = None,
        source: str = "targetgen",
        run_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Iterator["InProcessRun"]:
        """Record work done in this process as a run, so ``--engine local`` and
        ``--engine ray`` leave the same ledger.

        Without ``run_id`` a new run is created (engine local, status running)
        and finished on exit: ``succeeded`` once ``handle.finish(outcome=...)``
        was called, ``failed`` if the block raised. With ``run_id`` (the Ray
        job side of ``submit_targetgen``) the existing run is attached: only the
        outcome and message are written; its engine reports the status.
        """
        handle = self._open_inprocess(target=target, target_dir=target_dir, workflow=workflow, command=command, source=source, run_id=run_id, metadata=metadata)
        tee = None if handle.attached else _StderrTee.start(self.layout.logs(handle.run_id) / "attempt-1.log")
        try:
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
            if tee is not None:
                tee.stop()

    def task_logs_hint(self, run_id: str) -> str | None:
        """Where the per-task logs of a TargetGen run are (the executor writes them under <target_dir>/logs/)."""
        rec = self.get(run_id)
        if rec.source != "targetgen":
            return None
        logs = Path(rec.target_dir) / "logs"
        n = sum(1 for p in logs.iterdir() if p.is_file()) if logs.is_dir() else 0
        return f"per-task logs of run {run_id}: {logs}/ ({n} file{'s' if n != 1 else ''})"

    def _open_inprocess(self, *, target, target_dir, workflow, command, source, run_id, metadata) -> "InProcessRun":
        from merlin.ledger.models import Attempt, RunRecord, RunRequest, utcnow
        from merlin.ledger.text import redact_argv

        if run_id is not None:
            validate_run_id(run_id)
            if self.ledger.exists(run_id):
                self.ledger.append_event(run_id, "note", f"executor started in pid {os.getpid()}", detail={"host_pid": os.getpid()})
                return InProcessRun(self, run_id, attached=True)
        validate_name(target, "target name")
        validate_name(workflow, "workflow name")
        no_nul(str(target_dir), "target directory")
        no_nul_in(command or (), "command argument")
        run_id = run_id or new_run_id(target)
        argv = redact_argv([str(c) for c in (command if command is not None else ["merlin", *sys.argv[1:]])])
        tdir = str(Path(target_dir).expanduser().resolve())
        now = utcnow()
        request = RunRequest(
            run_id=run_id, target=target, workflow=workflow, source=source, engine="local", command=argv,
            workdir=str(Path.cwd()), target_dir=tdir, metadata=dict(metadata or {}),
        )
        record = RunRecord(
            run_id=run_id, target=target, workflow=workflow, source=source, engine="local", status=RunStatus.RUNNING,
            command=argv, workdir=str(Path.cwd()), target_dir=tdir,
            attempts=[Attempt(number=1, engine="local", status=RunStatus.RUNNING, submission_id="inprocess-1", submitted_at=now, start_time=now, pid=os.getpid())],
            message=f"running in process {os.getpid()}", metadata=dict(metadata or {}),
        )
        self.ledger.create_run(request, record, cause=f"in-process run started by {source} (pid {os.getpid()})")
        return InProcessRun(self, run_id, attached=False)

    def record_outcome(self, run_id: str, outcome: str, message: str | None = None, detail: Mapping[str, Any] | None = None) -> "RunRecord":
        """Write an executor outcome (and the next step) without touching the status."""
        rec = self.get(run_id)
        text = message or OUTCOME_HINTS.get(outcome, f"outcome {outcome}").format(run_id=run_id, target_dir=rec.target_dir)

        def mutate(r: "RunRecord") -> list[dict[str, Any]]:
            r.outcome = outcome
            r.message = text
            return [{"event": "outcome", "cause": f"executor reported {outcome}", "attempt": len(r.attempts) or None, "detail": dict(detail or {})}]

        return self.ledger.update(run_id, mutate, cause=f"executor outcome {outcome}")

    def finish_run(
        self, run_id: str, *, outcome: str | None, exit_code: int = 0, message: str | None = None, error: str | None = None, blocked: bool = False
    ) -> "RunRecord":
        """End an in-process run: outcome and exit code in, status out (succeeded if an outcome was reached;
        ``blocked`` if the executor raised a Blocked/LockBusy error, with its message and the command to run again)."""
        import shlex

        from merlin.ledger.models import utcnow

        rec = self.get(run_id)
        again = f"then run `{shlex.join(rec.command)}` again" if rec.command else "then run the command again"
        reason = (error or f"exit code {exit_code}").strip().rstrip(".")
        text = message or (OUTCOME_HINTS.get(outcome or "", "").format(run_id=run_id, target_dir=rec.target_dir) if outcome else "")
        ok = outcome is not None and error is None

        def mutate(r: "RunRecord") -> list[dict[str, Any]]:
            if r.attempts:
                r.attempts[-1].exit_code = exit_code
                r.attempts[-1].end_time = utcnow()
                if not ok:
                    r.attempts[-1].error_type = "EXECUTOR_BLOCKED" if blocked else "EXECUTOR_ERROR"
                    r.attempts[-1].error_message = error or f"exit code {exit_code}"
                    if blocked:
                        r.attempts[-1].status = RunStatus.BLOCKED
            if outcome is not None:
                r.outcome = outcome
            if r.status.is_active():
                if ok:
                    set_status(r, RunStatus.SUCCEEDED, text or f"succeeded; artifacts: `merlin ray artifacts list {run_id}`")
                elif blocked:
                    set_status(r, RunStatus.BLOCKED, f"blocked: {reason}; {again}")
                else:
                    set_status(r, RunStatus.FAILED, f"failed: {reason}; fix it, {again}")
            return [{"event": "outcome", "cause": f"executor finished ({outcome or 'no outcome'})", "detail": {"exit_code": exit_code}}] if outcome else []

        rec = self.ledger.update(run_id, mutate, cause="in-process run finished")
        self.index_artifacts(run_id)
        return rec


class _StderrTee:
    """Copy what this process writes on ``sys.stderr`` (the executor's progress lines)
    into the in-process run's log, so ``merlin ray jobs logs RUN_ID`` shows them."""

    def __init__(self, stream: Any, log: Any) -> None:
        self._stream = stream
        self._log = log

    @classmethod
    def start(cls, path: Path) -> "_StderrTee | None":
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            log = open(path, "a", encoding="utf-8", errors="replace")
        except OSError:
            return None
        tee = cls(sys.stderr, log)
        sys.stderr = tee  # type: ignore[assignment]
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
    """Handle for :meth:`ControlPlane.record_inprocess_run`."""

    def __init__(self, cp: ControlPlane, run_id: str, attached: bool) -> None:
        self.cp = cp
        self.run_id = run_id
        self.attached = attached
        self.finished = False

    def finish(self, outcome: str, exit_code: int = 0, message: str | None = None) -> "RunRecord":
        self.finished = True
        if self.attached:
            return self.cp.record_outcome(self.run_id, outcome, message, detail={"exit_code": exit_code})
        return self.cp.finish_run(self.run_id, outcome=outcome, exit_code=exit_code, message=message)

    def fail(self, exc: BaseException | None) -> None:
        self.finished = True
        err = "the executor ended without an outcome" if exc is None else f"{type(exc).__name__}: {exc}"
        if isinstance(exc, SystemExit):
            err = f"the executor exited with code {exc.code}"
        if self.attached:
            self.cp.ledger.append_event(self.run_id, "note", f"executor failed: {err}")
            return
        from merlin.errors import ExitCode, MerlinError

        if isinstance(exc, MerlinError):  # a known failure: its own message (and exit code) is the record's
            err = exc.message
            if exc.exit_code == ExitCode.BLOCKED:  # Blocked, LockBusy: nothing failed, something must change first
                self.cp.finish_run(self.run_id, outcome=None, exit_code=exc.exit_code, error=err, blocked=True)
                return
            self.cp.finish_run(self.run_id, outcome=None, exit_code=exc.exit_code, error=err)
            return
        code = exc.code if isinstance(exc, SystemExit) and isinstance(exc.code, int) else 1
        self.cp.finish_run(self.run_id, outcome=None, exit_code=code, error=err)


# ------------------------------------------------------------------------------
# TargetGen glue: what `merlin targetgen execute --engine local|ray` calls.


def targetgen_target(
    capability: str | os.PathLike[str] | None,
    overlay: str | os.PathLike[str] | None,
    out_dir: str | os.PathLike[str] | None,
    from_dir: str | os.PathLike[str] | None,
) -> tuple[str, Path]:
    """(target name, target directory) of an execute, before it runs (spec errors surface here)."""
    if from_dir is not None:
        from merlin.targetgen import state as st

        layout = st.open_target_dir(from_dir)
        return str(st.load_bundle(layout)["target"]), layout.root
    from merlin.spec import load_pair
    from merlin.targetgen.executor import default_out_dir

    cap, _ovl = load_pair(capability, overlay)  # type: ignore[arg-type]
    name = cap.model.target.name
    return name, (Path(out_dir or default_out_dir()) / name).resolve()


def targetgen_message(result: Any, run_id: str) -> str:
    """The run's message for an executor result: where it stands and the next command."""
    data = result.to_json() if hasattr(result, "to_json") else result
    root = data["target_dir"]
    outcome = data["outcome"]
    again = f"`merlin targetgen execute --from-dir {root}`"
    if outcome == "completed":
        return f"completed; artifacts: `merlin ray artifacts list {run_id}`"
    if outcome == "awaiting_operator":
        q = data.get("open_question") or {}
        if q:
            return (
                f"awaiting_operator: question {q['id']} at {data.get('current_task')}; answer with "
                f"`merlin targetgen answer --target-dir {root} --question-id {q['id']} --choice {q.get('recommended_option') or 'OPTION'}`, then {again}"
            )
        return f"awaiting_operator at {data.get('current_task')}: see `merlin targetgen status --target-dir {root}`, then {again}"
    if outcome == "awaiting_response":
        a = data.get("awaiting_response") or {}
        return f"awaiting_response: write {a.get('response_file')} (prompt {a.get('prompt_file')}), then {again}"
    if outcome == "blocked":
        b = (data.get("blocked") or [{}])[0]
        task = b.get("task_id", "TASK")
        return f"blocked at {task}: {b.get('reason', '')}; fix it, then `merlin targetgen retry --target-dir {root} --task {task}` and {again}"
    return f"{outcome}; next: {again}"


def targetgen_exit_code(rec: "RunRecord") -> int:
    """Exit code of `execute --engine ray --wait` once the run ended: the executor's, by outcome."""
    from merlin.errors import ExitCode

    codes = {"completed": ExitCode.OK, "awaiting_operator": ExitCode.WAITING, "awaiting_response": ExitCode.WAITING, "blocked": ExitCode.BLOCKED}
    if rec.status == RunStatus.SUCCEEDED:
        return codes.get(rec.outcome or "", ExitCode.OK)
    return ExitCode.RUN_FAILED


def targetgen_submit(
    *,
    capability: str | os.PathLike[str] | None,
    overlay: str | os.PathLike[str] | None,
    out_dir: str | os.PathLike[str] | None,
    from_dir: str | os.PathLike[str] | None,
    cluster: str | None,
    wait: bool,
    state_root: str | os.PathLike[str] | None,
    progress: Any = None,
) -> "RunRecord":
    """`execute --engine ray`: persist the bundle (orchestrate), then submit the
    local executor on that directory as a Ray job, recorded in the ledger."""
    if from_dir is not None:
        target, tdir = targetgen_target(None, None, None, from_dir)
    else:
        from merlin.targetgen.executor import orchestrate

        result = orchestrate(capability, overlay, out_dir=out_dir, progress=progress)  # type: ignore[arg-type]
        target, tdir = result.target, Path(result.target_dir)
    cp = ControlPlane(state_root)
    return cp.submit_targetgen(tdir, target, engine="ray", cluster=cluster, wait=wait)
