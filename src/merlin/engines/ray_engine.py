"""The ``ray`` engine: Ray Jobs through their documented REST API (``ray_api``).

Nothing here imports Ray. Status, refresh, logs, follow and cancel are HTTP
requests to the cluster's jobs API, answered with status codes and Ray's
JSON (see :mod:`merlin.engines.ray_api`); importing the SDK would cost about
0.6 s and 58 MiB per command. One submission id per attempt
(``merlin-<run_id>-<n>``) makes the mapping Ray <-> ledger explicit: reconciliation asks
after each run by its id (a few runs, over one connection) or lists the cluster's jobs once
(``GET /api/jobs/``, many runs).

Before submitting, merlin still checks that the installed Ray is the one
``import ray`` would load (without importing it): the job's driver runs
merlin under Ray, so a machine without a usable Ray records the run as
blocked instead of failing inside the cluster.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from merlin.clusters import start_step
from merlin.engines import ray_api
from merlin.engines.base import CancelResult, EngineBlocked, Observation, Preflight, Submitted
from merlin.engines.ray_local import dead_here
from merlin.errors import Blocked
from merlin.ledger.status import ClusterStatus, RunStatus
from merlin.nextsteps import Action, step

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    from merlin.ledger import Ledger
    from merlin.ledger.models import ClusterRecord, RunRecord, RunRequest

INSTALL_HINT = "install Ray into merlin's environment (ray[default])"
INSTALL_STEPS = [step(Action.INSTALL, package="ray[default]")]

_STATUS = {
    "PENDING": RunStatus.PENDING,
    "RUNNING": RunStatus.RUNNING,
    "SUCCEEDED": RunStatus.SUCCEEDED,
    "FAILED": RunStatus.FAILED,
    "STOPPED": RunStatus.CANCELLED,
}


#: seconds for which an answer of a jobs API stands for the readiness check of a submit (see :meth:`RayEngine.ready_cluster`)
ANSWERED_FOR = 10.0
#: at most this many runs of one cluster are asked after one by one (see :meth:`RayEngine.poll_many`)
ASK_EACH = 32


def submission_id(run_id: str, attempt: int) -> str:
    return f"merlin-{run_id}-{attempt}"


def _ms(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromtimestamp(float(value) / 1000.0, tz=UTC)


def _retry_hint(run_id: str | None) -> str:
    """Messages stay plain text: retrying is a next step the control plane adds."""
    return ""


def entrypoint_for(command: list[str], workdir: str | None, exports: Mapping[str, str] | None = None) -> str:
    """Shell entrypoint for Ray: run ``command`` (argv, quoted) in ``workdir`` (None: where Ray starts it),
    with ``exports`` in its environment (:func:`merlin.engines.ray_env.per_run_exports`)."""
    pre = f"export {' '.join(f'{k}={shlex.quote(v)}' for k, v in exports.items())} && " if exports else ""
    return f"{pre}cd {shlex.quote(workdir)} && exec {shlex.join(command)}" if workdir else f"{pre}exec {shlex.join(command)}"


def _scrubbed_message(info: Any) -> Any:
    """Ray's job message (often the job's last output) without the secret env values
    merlin redacted from the run's records: they were sent in the job's runtime_env."""
    from merlin.ledger.text import scrub_values, secret_values

    message = getattr(info, "message", None)
    return scrub_values(message, secret_values(getattr(info, "env_vars", None) or {})) if message else message


def _memory_line(message: str | None) -> str | None:
    """What the launcher said when it ended the job's command for its memory (the rest of its line,
    from the log tail Ray puts in a failed job's message), or None."""
    from merlin.envs.launch import MEMORY_LINE

    if not message or MEMORY_LINE not in message:
        return None
    return message.split(MEMORY_LINE, 1)[1].splitlines()[0].strip() or None


class RayEngine:
    """Talks to the clusters recorded in one ledger, over HTTP (no Ray import).
    Holds no connection: a :class:`ray_api.JobsApi` is an address plus headers."""

    name = "ray"
    uses_cluster = True
    #: Ray is asked: the control plane applies what it says
    reports_own_status = False
    poll_interval: float | None = None

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        #: (run id, cluster) that :meth:`preflight` found ready, for the :meth:`submit` that follows it
        self._checked: tuple[str, ClusterRecord] | None = None
        #: jobs API address -> when it last answered this engine (time.monotonic()): see :meth:`ready_cluster`
        self._answered: dict[str, float] = {}
        self._asked: dict[str, float] = {}  # cluster name -> when its scheduler or head's host last said "it runs" (ray_local.dead)
        self._ray_found = False

    # ------------------------------------------------------------ connection

    def cluster_for(self, name: str, run_id: str | None = None) -> ClusterRecord:
        rec = self.ledger.read_cluster(name)
        if rec is None or rec.status.is_terminal():
            state = "no active Ray cluster" if rec is None else f"Ray cluster '{name}' is {rec.status}"
            raise EngineBlocked(
                f"{state}{'' if rec else f' named {name!r}'}: start one",
                "no_cluster",
                next_steps=[start_step(name, rec)],
            )
        return rec

    def client(self, cluster: ClusterRecord, run_id: str | None = None) -> ray_api.JobsApi:
        """The jobs API of ``cluster``, with its token header (:class:`EngineBlocked` if the token is missing)."""
        return ray_api.JobsApi(cluster.address, self._headers(cluster, run_id))

    def _connection_blocked(self, cluster: ClusterRecord, exc: Exception, run_id: str | None) -> EngineBlocked:
        if isinstance(exc, ray_api.Unauthorized):
            return EngineBlocked(
                f"Ray cluster '{cluster.name}' at {cluster.address} refused the token ({exc.message}); "
                f"check the token source recorded in its cluster record{_retry_hint(run_id)}",
                "token_rejected",
            )
        return EngineBlocked(
            f"Ray cluster '{cluster.name}' at {cluster.address} does not answer ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); check it, or restart it",
            "cluster_unreachable",
            next_steps=[step(Action.CLUSTER_STATUS, name=cluster.name), start_step(cluster.name, cluster)],
        )

    # ---------------------------------------------------------------- submit

    def _installed(self, run_id: str | None = None) -> None:
        """Is the installed Ray what ``import ray`` would load? Checked without importing it.

        Catches a missing Ray and a shadowing ``ray`` package on the path; a
        Ray broken in some other way fails the job's driver, which Ray reports.
        """
        import importlib.util
        from pathlib import Path

        # the installed distribution's metadata (ray-X.dist-info) sits beside the package it
        # installed: read from the directory, not through importlib.metadata, whose import and
        # scan of every path entry cost a submit more than the rest of this check
        problem = None
        try:
            spec = importlib.util.find_spec("ray")
        except (ImportError, ValueError) as exc:
            spec, problem = None, f"{type(exc).__name__}: {exc}"
        if problem is None and (spec is None or not spec.origin):
            problem = "no module named 'ray'"
        elif problem is None and spec is not None and spec.origin:
            package = Path(spec.origin).resolve().parent
            # os.listdir rather than Path.glob: no fnmatch pattern compiled on every submit
            infos = [n for n in os.listdir(package.parent) if n.startswith("ray-") and n.endswith(".dist-info")]
            if package.name != "ray" or not infos:
                problem = f"'import ray' would load {spec.origin}, which no installed Ray distribution provides"
        if problem:
            raise EngineBlocked(f"Ray is not importable ({problem}); {INSTALL_HINT}", "ray_not_importable", next_steps=INSTALL_STEPS)

    def _headers(self, cluster: ClusterRecord, run_id: str | None) -> dict[str, str]:
        from merlin.clusters.auth import headers_for

        try:
            return headers_for(cluster.auth, cluster.name, _retry_hint(run_id))
        except Blocked as exc:
            raise EngineBlocked(exc.message, "token_missing", next_steps=exc.next_steps) from None

    def preflight(self, record: RunRecord, request: RunRequest) -> Preflight:
        """Write-ahead: check what can block, and name the submission before it is written.

        One record write on the happy path. If merlin dies between the write and
        the POST, Ray never heard of the submission id and the next refresh
        marks the run ``lost`` (retryable): the ledger never misses a job.
        """
        from merlin.ledger.models import ClusterRef

        crec = self.ready_cluster(request.cluster or "default", record.run_id)
        self._checked = (record.run_id, crec)  # the write-ahead submit that follows does not ask the cluster twice
        sub_id = submission_id(record.run_id, len(record.attempts) or 1)
        return Preflight(
            submission_id=sub_id,
            cluster=ClusterRef(name=crec.name, address=crec.address, gcs_address=crec.gcs_address, session_name=crec.session_name),
            message=self._submitted_message(request, crec, record.run_id, sub_id),
            next_steps=self._submitted_steps(request, crec, record.run_id),
        )

    @staticmethod
    def _submitted_message(request: RunRequest, crec: ClusterRecord, run_id: str, sub_id: str) -> str:
        from merlin.clusters.fit import pending_explanation

        return pending_explanation(request, crec.name, crec.resources, run_id) or (
            f"submitted to Ray cluster '{crec.name}' ({crec.address}) as {sub_id}"
        )

    @staticmethod
    def _submitted_steps(request: RunRequest, crec: ClusterRecord, run_id: str) -> list[dict[str, Any]]:
        from merlin.clusters.fit import pending_steps

        return pending_steps(request, crec.name, crec.resources, run_id) or [step(Action.LOGS, run_id=run_id, follow=True)]

    def ready_cluster(self, cluster_name: str, run_id: str | None = None) -> ClusterRecord:
        """Everything that can block a submission, in the order a person fixes it (no Ray import).

        The jobs API is asked ``GET /api/version`` through :class:`ray_api.JobsApi`, the
        client the submission itself uses (http.client: no urllib.request on a submit), unless
        it answered this engine (a submit, a poll) in the last :data:`ANSWERED_FOR` seconds:
        a client submitting many jobs asks once, not once per job. If it stopped answering
        meanwhile, the submission's POST finds out and the run is recorded blocked as here."""
        if not self._ray_found:
            self._installed(run_id)
            self._ray_found = True
        cluster = self.cluster_for(cluster_name, run_id)
        if dead := dead_here(cluster.name, cluster.kind, cluster.address, cluster.processes):
            raise EngineBlocked(f"{dead}; start it again{_retry_hint(run_id)}", "cluster_unreachable",
                                next_steps=[step(Action.CLUSTER_STATUS, name=cluster.name), start_step(cluster.name, cluster)])  # fmt: skip
        if self._recently_answered(cluster.address):
            self._headers(cluster, run_id)  # still: a token that went missing blocks the run
            return cluster
        try:
            self.client(cluster, run_id).version(timeout=5.0)
        except ray_api.Unauthorized as exc:
            raise EngineBlocked(
                f"Ray cluster '{cluster.name}' at {cluster.address} refused the token (HTTP {exc.status}: the cluster requires a valid token); "
                f"check the token source recorded in its cluster record{_retry_hint(run_id)}",
                "token_rejected",
            ) from None
        except ray_api.RayApiError as exc:
            detail = exc.reason if exc.status is None else f"HTTP {exc.status}"
            raise self._connection_blocked(cluster, ConnectionError(detail), run_id) from None
        self._answered[cluster.address] = time.monotonic()
        return cluster

    def _recently_answered(self, address: str | None) -> bool:
        when = self._answered.get(address or "")
        return when is not None and time.monotonic() - when < ANSWERED_FOR

    def submit(self, record: RunRecord, request: RunRequest, env: dict[str, str]) -> Submitted:
        """POST the attempt to Ray's Jobs REST API (the body the SDK's ``submit_job`` sends)."""
        from merlin.ledger.models import ClusterRef

        attempt = len(record.attempts)
        checked, self._checked = self._checked, None
        if checked is not None and checked[0] == record.run_id and checked[1].name == (request.cluster or "default"):
            cluster = checked[1]  # preflight checked it a moment ago, for this run
        else:
            cluster = self.ready_cluster(request.cluster or "default", record.run_id)
        sub_id = submission_id(record.run_id, attempt)
        command = list(record.command)
        env = dict(env)
        fields: dict[str, Any] = {}  # the attempt's, recorded at submit (the env id, where no report can be read)
        from merlin.engines.ray_env import launcher_prefix, per_run_exports, working_dir_package

        if request.runtime is not None or request.replicas is None:  # the env launcher, or the measurer alone
            command = launcher_prefix(self.ledger.layout, record, request, attempt, cluster, env, fields) + command
        api = self.client(cluster, record.run_id)
        shipped = working_dir_package(self.ledger.layout, request, cluster, api)
        workdir = None if shipped else record.workdir  # a shipped working dir is where Ray starts the job
        exports = per_run_exports(env) if request.replicas is None else {}  # a gang's replicas need them in the runtime env
        body: dict[str, Any] = {
            "entrypoint": entrypoint_for(command, workdir, exports),
            "submission_id": sub_id,
            "runtime_env": {"env_vars": env, **({"working_dir": shipped} if shipped else {})},
            "metadata": {"merlin_run_id": record.run_id, "merlin_attempt": str(attempt), "merlin_target": record.target},
        }
        if request.replicas is not None:
            from merlin.engines.ray_gang import gang_job

            gang_job(body, record, request, command, getattr(cluster, "python", None), workdir)
        elif request.num_cpus is not None:
            body["entrypoint_num_cpus"] = request.num_cpus
        if request.num_gpus is not None and request.replicas is None:
            body["entrypoint_num_gpus"] = request.num_gpus
        if request.memory is not None and request.replicas is None:
            body["entrypoint_memory"] = request.memory  # reserved for it on the node; the launcher holds the job to it (--memory)
        if request.resources and request.replicas is None:
            body["entrypoint_resources"] = dict(request.resources)
        try:
            api.submit(body)
            self._answered[cluster.address] = time.monotonic()
        except ray_api.Unauthorized as exc:
            raise EngineBlocked(
                f"Ray cluster '{cluster.name}' at {cluster.address} refused the token (HTTP {exc.status}); "
                f"check the token source recorded in its cluster record{_retry_hint(record.run_id)}",
                "token_rejected",
            ) from None
        except ray_api.Unreachable as exc:
            self._answered.pop(cluster.address, None)
            raise self._connection_blocked(cluster, exc, record.run_id) from None
        except ray_api.RayApiError as exc:
            if not self._already_submitted(api, sub_id, record.run_id):
                raise RuntimeError(f"Ray refused the job ({exc.message})") from None
        return Submitted(
            submission_id=sub_id,
            status=RunStatus.PENDING,
            fields=fields,
            cluster=ClusterRef(name=cluster.name, address=cluster.address, gcs_address=cluster.gcs_address, session_name=cluster.session_name),
            message=self._submitted_message(request, cluster, record.run_id, sub_id),
            next_steps=self._submitted_steps(request, cluster, record.run_id),
        )

    @staticmethod
    def _already_submitted(api: ray_api.JobsApi, sub_id: str, run_id: str) -> bool:
        """Did a previous try of this POST get through? Asked, not parsed from the error:
        Ray has no status code of its own for a reused submission id."""
        try:
            job = api.get_job(sub_id)
        except ray_api.RayApiError:
            return False
        return job.metadata.get("merlin_run_id") == run_id

    # ------------------------------------------------------------------ poll

    @staticmethod
    def observation(info: ray_api.JobInfo) -> Observation:
        """Map Ray's JobDetails (as :class:`ray_api.JobInfo`) to an Observation. Ray's message
        (scrubbed of the run's secret values) is kept for an ended job only: nothing reads it for a
        pending or running one (:func:`merlin.control.observe.apply`), and scrubbing it on every
        poll of a waiter cost more than the poll."""
        message = _scrubbed_message(info) if info.terminal else None
        over = _memory_line(message) if info.status == "FAILED" else None
        return Observation(
            status=_STATUS[info.status],
            known=True,
            exit_code=info.driver_exit_code,
            error_type="MEMORY_LIMIT" if over else (info.error_type or None),
            message=over or message,
            start_time=_ms(info.start_time),
            end_time=_ms(info.end_time),
        )

    def _dead(self, cluster: ClusterRecord) -> str | None:
        """Why ``cluster`` (not answering) is known to be dead, or None: it may come back (:func:`ray_local.dead`)."""
        from merlin.engines import ray_local

        return ray_local.dead(self, cluster)

    def foreign_jobs(self, cluster: ClusterRecord) -> list[dict[str, str]] | None:
        """Active jobs on ``cluster`` that merlin did not submit: stopping it would end them (:func:`ray_local.foreign_jobs`)."""
        from merlin.engines import ray_local

        return ray_local.foreign_jobs(self, cluster)

    def leftovers(self, record: RunRecord) -> str | None:
        """Processes of a lost run still running here (a retry must not start beside them)."""
        from merlin.engines import ray_local

        return ray_local.leftovers(self.ledger, record)

    def end_leftovers(self, record: RunRecord, grace: float = 2.0) -> int:
        """End what a lost run left running on this machine, and on its cluster's hosts where the cluster's
        backend reaches them (SSH, asked for at most 10 s more); returns how many processes were signalled."""
        from merlin.clusters.lost import end_on_hosts
        from merlin.engines import ray_local

        if record.status != RunStatus.LOST:
            return 0
        return ray_local.end_leftovers(self.ledger, record, grace) + end_on_hosts(self.ledger, record, grace)

    def _gone(self, record: RunRecord, cluster: ClusterRecord | None, dead: str | None = None) -> Observation:
        name = record.cluster.name if record.cluster else "default"
        why = dead or (
            f"Ray cluster '{name}' was stopped"
            if cluster is None or cluster.status == ClusterStatus.STOPPED
            else f"Ray cluster '{name}' no longer knows submission {record.attempt.submission_id if record.attempt else '?'} (it was restarted)"
        )
        return Observation(
            status=RunStatus.LOST,
            known=False,
            error_type="SUBMISSION_UNKNOWN",
            message=f"lost: {why}; the ledger keeps its history. Start the cluster if needed, then retry it (on this cluster or another)",
            next_steps=[start_step(name, cluster), step(Action.RETRY, run_id=record.run_id)],
        )

    def poll(self, record: RunRecord) -> Observation:
        return self.poll_many([record])[record.run_id]

    def poll_raw(self, record: dict[str, Any]) -> Observation | None:
        """Ray's answer for one run given as its raw JSON record, without pydantic.

        The fast path of ``jobs status`` (see :func:`merlin.control.observe.status_json`):
        None whenever the answer needs the full path (no submission id, cluster not
        recorded or not live, token missing, cluster unreachable, submission unknown).
        """
        from types import SimpleNamespace

        attempts = record.get("attempts") or []
        if record.get("environment") and attempts and not attempts[-1].get("env_cache"):
            return None  # the env launcher's report decides waiting or running: the full path reads it
        sub = attempts[-1].get("submission_id") if attempts else None
        name = (record.get("cluster") or {}).get("name") or "default"
        try:
            cluster = json.loads(self.ledger.layout.cluster_record(name).read_bytes())
            if not sub or ClusterStatus(cluster["status"]).is_terminal() or not cluster.get("address"):
                return None
            if dead_here(name, cluster.get("kind"), cluster.get("address"), cluster.get("processes")):
                return None  # a dead head: the full path records the runs lost, without asking its dashboard
            auth = SimpleNamespace(**cluster["auth"]) if cluster.get("auth") else None
            from merlin.clusters.auth import headers_for

            jobs = self._one(ray_api.JobsApi(cluster["address"], headers_for(auth, name)), sub)
        except (OSError, ValueError, KeyError, TypeError, Blocked, EngineBlocked, ray_api.RayApiError):
            return None
        return self.observation(jobs[sub]) if sub in jobs else None

    def poll_many(self, records: list[RunRecord]) -> dict[str, Observation]:
        """Per cluster: ``GET /api/jobs/{id}`` for each run, over one kept-open connection, when
        there are at most :data:`ASK_EACH`; else one ``GET /api/jobs/``. Ray's list reads every job
        the cluster ever ran (a second and more once it has run a few hundred, on a loaded
        head), while a waiter only asks after the few it waits for."""
        out: dict[str, Observation] = {}
        by_cluster: dict[str, list[RunRecord]] = {}
        for r in records:
            by_cluster.setdefault(r.cluster.name if r.cluster else "default", []).append(r)
        for name, runs in by_cluster.items():
            cluster = self.ledger.read_cluster(name)
            if cluster is None or cluster.status.is_terminal():
                for r in runs:
                    out[r.run_id] = self._gone(r, cluster)
                continue
            if dead := dead_here(name, cluster.kind, cluster.address, cluster.processes):
                for r in runs:
                    out[r.run_id] = self._gone(r, cluster, dead)
                continue
            try:
                client = self.client(cluster)
                subs = [r.attempt.submission_id for r in runs if r.attempt and r.attempt.submission_id]
                if len(subs) == len(runs) and len(runs) <= ASK_EACH:
                    with client.kept_open():
                        jobs = {k: v for sub in subs for k, v in self._one(client, sub).items()}
                else:
                    jobs = {j.submission_id: j for j in client.list_jobs() if j.submission_id}
                self._answered[cluster.address] = time.monotonic()
            except EngineBlocked as exc:
                for r in runs:
                    out[r.run_id] = Observation(status=None, message=f"could not observe: {exc.message}")
                continue
            except ray_api.RayApiError as exc:
                self._answered.pop(cluster.address, None)
                dead = self._dead(cluster) if isinstance(exc, ray_api.Unreachable) else None
                blocked = self._connection_blocked(cluster, exc, None)
                for r in runs:
                    out[r.run_id] = self._gone(r, cluster, dead) if dead else Observation(status=None, message=f"could not observe: {blocked.message}")
                continue
            for r in runs:
                sub = r.attempt.submission_id if r.attempt else None
                info = jobs.get(sub) if sub else None
                out[r.run_id] = self.observation(info) if info is not None else self._gone(r, cluster)
                if info is not None and r.environment and r.attempt is not None and not r.attempt.env_cache:
                    from merlin.engines.ray_env import with_launch_report

                    out[r.run_id] = with_launch_report(self.ledger, r, out[r.run_id], cluster, client, info)
        return out

    @staticmethod
    def _one(api: ray_api.JobsApi, sub_id: str) -> dict[str, ray_api.JobInfo]:
        """``{sub_id: JobInfo}``, or ``{}`` if the cluster does not know the submission (HTTP 404)."""
        try:
            return {sub_id: api.get_job(sub_id)}
        except ray_api.JobNotFound:
            return {}

    def hold_conditions(self, record: RunRecord, request: RunRequest | None, observed_at: str) -> list[dict[str, Any]]:
        """Ray's own layer of ``jobs why`` (:mod:`merlin.engines.ray_why`): only for a run Ray
        has (a submission id) and that is not running yet; none when Ray cannot be asked."""
        from merlin.clusters.fit import requested_resources
        from merlin.engines import ray_why

        att = record.attempt
        if record.status != RunStatus.PENDING or att is None or not att.submission_id:
            return []
        name = record.cluster.name if record.cluster else "default"
        cluster = self.ledger.read_cluster(name)
        if cluster is None or cluster.status.is_terminal() or not cluster.address:
            return []  # the cluster layer says why
        try:
            api = self.client(cluster, record.run_id)
            job = api.get_job(att.submission_id)
            job = job.replace(message=_scrubbed_message(job))
        except (EngineBlocked, ray_api.RayApiError):
            return []  # unreachable, token, or unknown: status and the cluster layer say so
        try:
            load: ray_api.ClusterLoad | None = api.cluster_status() if job.status == "PENDING" else None
        except ray_api.RayApiError:
            load = None
        want = requested_resources(request) if request is not None else {}
        return ray_why.conditions(record.run_id, att.submission_id, job, load, want, observed_at, name)

    # ------------------------------------------------------------ logs/cancel

    def _client_for_record(self, record: RunRecord):
        name = record.cluster.name if record.cluster else "default"
        cluster = self.cluster_for(name, record.run_id)
        return self.client(cluster, record.run_id)

    def local_log_path(self, record: RunRecord, submission: str) -> Path | None:
        """The driver log file itself, when the run's cluster is a local one merlin
        started (same machine, same Ray session): reading it needs no HTTP round
        trip and no Ray import. Ray writes it to
        ``<temp_dir>/<session_name>/logs/job-driver-<submission_id>.log``."""
        from pathlib import Path

        name = record.cluster.name if record.cluster else "default"
        session = record.cluster.session_name if record.cluster else None
        cluster = self.ledger.read_cluster(name)
        if cluster is None or cluster.kind != "local" or not session or cluster.session_name != session:
            return None
        path = Path(cluster.temp_dir) / session / "logs" / f"job-driver-{submission}.log"
        return path if path.is_file() else None

    def logs(self, record: RunRecord, attempt: int | None = None) -> str:
        """The attempt's log as Ray has it; :class:`Blocked` for an ended one Ray no longer knows (never taken from an empty log)."""
        n = attempt or len(record.attempts)
        att = record.attempts[n - 1] if record.attempts else None
        if att is None or not att.submission_id or att.engine != "ray":
            return ""
        local = self.local_log_path(record, att.submission_id)
        if local is not None:
            return local.read_text(encoding="utf-8", errors="replace")
        try:
            return self._client_for_record(record).logs(att.submission_id)
        except ray_api.JobNotFound:
            if n < len(record.attempts) or record.status.is_terminal():
                raise Blocked(f"its Ray cluster no longer has submission {att.submission_id} (the cluster was restarted or stopped)", "job_not_found") from None
            return ""

    def follow(self, record: RunRecord, poll: float = 0.5) -> Iterator[str]:
        """Yield the attempt's log as it grows, until the job ends: Ray's tail websocket, each
        byte once (:meth:`merlin.engines.ray_api.JobsApi.follow`). Ctrl-C ends the read, with
        nothing left running."""
        att = record.attempt
        if att is None or not att.submission_id:
            return
        try:
            yield from self._client_for_record(record).follow(att.submission_id, poll=poll)
        except ray_api.JobNotFound:
            return

    def cancel(self, record: RunRecord, grace: float = 5.0) -> CancelResult:
        """Ask Ray to stop the job; the control plane observes until it is STOPPED."""
        att = record.attempt
        if record.status == RunStatus.LOST:  # Ray lost it; what it left here is ended directly
            self.end_leftovers(record, grace=grace)
            return CancelResult.DONE
        if att is None or not att.submission_id:
            return CancelResult.NEVER_STARTED
        try:
            self._client_for_record(record).stop(att.submission_id)
        except ray_api.JobNotFound:
            pass  # the cluster never saw it (restarted): the next observation records it lost
        return CancelResult.REQUESTED

    def keep_logs(self, records: list[RunRecord]) -> None:
        """Copy the logs of ended runs into the ledger (Ray's go when its cluster stops).

        Fetched concurrently: each is one HTTP request to the jobs API."""
        layout = self.ledger.layout
        todo = [r for r in records if r.attempts and not layout.attempt_log(r.run_id, len(r.attempts)).is_file()]
        if not todo:
            return
        from concurrent.futures import ThreadPoolExecutor

        from merlin.atomic import make_dir, write_if_changed

        def fetch(rec: RunRecord) -> None:
            try:
                text = self.logs(rec)
            except Exception:
                return  # Ray no longer has it (or did not answer): nothing to keep
            path = layout.attempt_log(rec.run_id, len(rec.attempts))  # an empty log is kept too: it is what the job wrote
            make_dir(path.parent, private=True)
            write_if_changed(path, text.encode("utf-8"))

        if len(todo) == 1:
            fetch(todo[0])
            return
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(fetch, todo))
