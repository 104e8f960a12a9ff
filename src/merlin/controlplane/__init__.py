"""ControlPlane: the Python API behind ``merlin ray ...`` (and TargetGen's ``--engine``).

One object per state root, passed explicitly: no module-level connection,
no global cluster. The ledger under the state root is the source of truth;
engines (local process groups, Ray Jobs, any engine in
:mod:`merlin.engines.registry`) are only observed, and every observation is
applied through the ledger's locked, transition-checked update.

This module is the facade: each method names the module that does the work
(:mod:`merlin.control` and :mod:`merlin.integrations.targetgen_runs`). It
returns records and raises :class:`merlin.errors.MerlinError`; it never prints
and never formats a shell command (records carry ``next_steps`` as data).

    from merlin.controlplane import ControlPlane
    cp = ControlPlane(state_root="build/generated/ray")
    run = cp.submit(["python", "-c", "print('hi')"], target="demo", workflow="smoke", engine="ray", wait=True)
    print(run.status, cp.logs(run.run_id))
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from merlin.clock import since  # noqa: F401  (the gateway's page: how long ago)
from merlin.controlplane.args import StatusArg, check_job_name, memory_bytes, statuses  # noqa: F401  (check_job_name: merlin.client's; memory_bytes: the gateway's)
from merlin.controlplane.targetgen_face import PathArg, TargetGenFace, _path
from merlin.controlplane.upkeep_face import UpkeepFace
from merlin.durations import DURATION_PATTERN, POSITIVE_DURATION_PATTERN, ago  # noqa: F401  (patterns and the age renderer: the gateway's)
from merlin.engines.registry import DEFAULT_ENGINE
from merlin.ledger.paths import ARTIFACT_NAME_PATTERN, LEASE_ID_PATTERN, NAME_PATTERN, RUN_ID_PATTERN, Layout, resolve_state_root, validate_run_id  # noqa: F401  (patterns: the gateway's)
from merlin.ledger.store import Ledger
from merlin.ledger.text import jobs_shown  # noqa: F401  (the front ends' words for foreign_jobs)
from merlin.safety import check_target_dir  # noqa: F401  (re-exported: documented here before the split)

if TYPE_CHECKING:  # pragma: no cover
    from merlin.clusters.base import ClusterBackend, ClusterState
    from merlin.clusters.client_env import ClusterEnv
    from merlin.control.artifacts import ArtifactRead
    from merlin.control.doctor import DoctorReport
    from merlin.control.summaries import RunSummaries
    from merlin.engines.base import Engine
    from merlin.integrations.targetgen_runs import (  # noqa: F401  (the TargetGen glue's public names, imported on first use)
        InProcessRun,
        run_place,
        targetgen_exit_code,
        targetgen_message,
        targetgen_outcome,
        targetgen_target,
    )
    from merlin.leases.book import Lease, LeaseBook
    from merlin.ledger.models import ArtifactIndex, ClusterRecord, RunEvent
    from merlin.ledger.models import RunRecord as RunRecord  # re-exported for merlin.client's types

# The TargetGen glue's public names, re-exported here but imported on first use: a submit,
# status or listing never loads the TargetGen integration (tests/test_hot_path_no_pydantic.py).
_TARGETGEN_NAMES = frozenset({"InProcessRun", "run_place", "targetgen_exit_code", "targetgen_message", "targetgen_outcome", "targetgen_target"})

if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        if name in _TARGETGEN_NAMES:
            from merlin.integrations import targetgen_runs

            return getattr(targetgen_runs, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ControlPlane(TargetGenFace, UpkeepFace):
    """Runs, clusters and artifacts of one state root."""

    def __init__(self, state_root: str | os.PathLike[str] | None = None) -> None:
        self.root = resolve_state_root(state_root)
        self.ledger = Ledger(self.root)
        self.layout: Layout = self.ledger.layout
        self._engines: dict[str, Engine] = {}
        self._backends: dict[str, ClusterBackend] = {}
        self._summaries: RunSummaries | None = None

    # ----------------------------------------------------------------- parts

    @property
    def leases(self) -> LeaseBook:
        """The lease book (merlin.leases.book.LeaseBook) of this state root: reserve, renew, release, ...
        Its leases and events are dicts shaped as :class:`merlin.leases.models.LeaseRecord` and
        ``LeaseEvent`` (docs/records/), as stored (no pydantic on the book's hot path)."""
        from merlin.leases.book import LeaseBook

        return LeaseBook(self.layout)

    def reserve_lease(
        self, bundles: Sequence[str], *, labels: Mapping[str, str] | None = None, priority: int = 0, ttl: float | str | None = None, run_id: str | None = None
    ) -> Lease:
        """Request items (``POOL[:COUNT][,k=v...]`` each; several form a gang), each bundle's items carrying
        ``labels``; the lease comes back at once, granted or waiting in the queue. The lease is the
        book's record as stored: a dict shaped as :class:`merlin.leases.models.LeaseRecord`
        (docs/records/lease.schema.json), kept a dict so the lease book's hot path never imports pydantic."""
        from merlin.leases.book import parse_bundle

        given: dict[str, Any] = {} if ttl is None else {"ttl": ttl}
        return self.leases.reserve([parse_bundle(b, dict(labels or {})) for b in bundles], priority=priority, run_id=run_id, **given)

    def lease_queue(self) -> list[dict[str, Any]]:
        """Waiting lease requests in serving order (dicts shaped as ``LeaseRecord``), after a scheduling pass. First, every waiting
        run whose waiter process died is recorded lost (its request is then cancelled by the pass)."""
        from merlin.control.leased import end_runs_whose_waiters_died

        end_runs_whose_waiters_died(self)
        book = self.leases
        if book.load_inventory() is not None:
            book.refresh()
        return list(book.queue())

    def engine(self, name: str) -> Engine:
        """The engine called ``name``, from :mod:`merlin.engines.registry` (one per control plane)."""
        if name not in self._engines:
            from merlin.engines import registry

            self._engines[name] = registry.create(name, self.ledger)
        return self._engines[name]

    def cluster_backend(self, kind: str | None = None) -> ClusterBackend:
        """The backend of a cluster kind, from :mod:`merlin.clusters.registry`."""
        from merlin.clusters import registry
        from merlin.clusters.base import DEFAULT_KIND

        kind = kind or DEFAULT_KIND
        if kind not in self._backends:
            self._backends[kind] = registry.backend(kind, self.ledger)
        return self._backends[kind]

    # -------------------------------------------------------------- clusters

    def start_cluster(self, kind: str, name: str, *, wait: bool = True, progress: Any = None, **options: Any) -> tuple[ClusterRecord, bool]:
        """Start (or find already active) a cluster of ``kind`` through its backend. Returns (record, started_now).

        A backend that places hosted items (Slurm, PBS, ssh) is given the inventory's
        ``host -> {pool: items}`` map: each node then has the items attached to it as Ray
        custom resources, as a local cluster has this host's (:meth:`start_local_cluster`)."""
        backend = self.cluster_backend(kind)
        if getattr(backend, "places_hosted_items", False) and self.layout.inventory.exists():
            from merlin.leases.runs import resources_by_host

            options.setdefault("hosted_items", resources_by_host(self.leases))
        return backend.start(name, wait=wait, progress=progress, **options)

    def start_local_cluster(self, name: str = "default", **kwargs: Any) -> tuple[ClusterRecord, bool]:
        """Start (or find already active) a local Ray head. Returns (record, started_now).

        Inventory items attached to this host become custom resources of its node
        (one unit per item, named by its pool; ``resources`` given here win), so a
        leased run's matching ``entrypoint_resources`` place it where the hardware is."""
        from merlin.clusters.base import DEFAULT_KIND
        from merlin.leases.runs import host_resources

        hosted = host_resources(self.leases) if self.layout.inventory.exists() else {}
        if hosted:
            kwargs["resources"] = {**hosted, **dict(kwargs.get("resources") or {})}
        return self.start_cluster(DEFAULT_KIND, name, **kwargs)

    def cluster_status(self, name: str = "default", sockets: bool = True) -> ClusterState:
        """The cluster's live state, asked of its backend (``absent`` if none is recorded);
        ``sockets`` False skips measuring what its processes listen on."""
        from merlin.clusters.base import ClusterState, describe
        from merlin.nextsteps import Action, step

        self.layout.cluster_record(name)  # validates the name
        record = self.ledger.read_cluster(name)
        if record is None:
            return ClusterState(name, "absent", f"no cluster '{name}' recorded; start one", next_steps=[step(Action.START_CLUSTER, name=name)])
        backend = self.cluster_backend(record.kind)
        state = describe(backend, backend.observe(record), sockets)
        if state.state == "active":
            from merlin.control import lifecycle

            state.foreign_jobs = lifecycle.foreign_jobs(self, state.record or record)
        return state

    def stop_cluster(self, name: str = "default", grace: float = 5.0, force: bool = False, **kwargs: Any) -> ClusterRecord:
        """Stop a cluster; Blocked (``cluster_has_runs``) while runs are active on it unless ``force``,
        which records them cancelled by the stop (logs kept in the ledger, retry step)."""
        from merlin.control import lifecycle

        return lifecycle.stop_cluster(self, name, grace=grace, force=force, **kwargs)

    def list_clusters(self) -> list[ClusterState]:
        return [self.cluster_status(n) for n in self.ledger.cluster_names()]

    def foreign_jobs(self, name: str = "default") -> list[dict[str, str]]:
        """Active jobs on cluster ``name`` that merlin did not submit (id, status); [] when it is not
        active or cannot be asked. One question to its engine, no process checks."""
        from merlin.control import lifecycle

        self.layout.cluster_record(name)  # validates the name
        record = self.ledger.read_cluster(name)
        return lifecycle.foreign_jobs(self, record) if record is not None and record.status.is_live() else []

    def cluster_env(self, name: str = "default") -> ClusterEnv:
        """The exports that point Ray's own CLI, SDK and dashboard at cluster ``name`` (:mod:`merlin.clusters.client_env`)."""
        from merlin.clusters.client_env import client_env

        return client_env(self.ledger, name)

    # ------------------------------------------------------------------ runs

    def submit(
        self,
        command: Sequence[str],
        *,
        target: str,
        workflow: str,
        engine: str | None = None,
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
        leases: Sequence[str] = (),
        runtime: Any = None,
        max_retries_failure: int = 0,
        max_retries_preemption: int = 0,
        retry_backoff: float | str | None = None,
        replicas: int | None = None,
        placement: str | None = None,
        name: str | None = None,
        adopt_existing: bool = True,
        memory: int | str | None = None,
    ) -> RunRecord:
        """Record a run and hand it to its engine (default: the registry's default engine).
        A run that cannot be handed over is still recorded, as ``blocked``, with the fix
        in its message and ``next_steps``. With ``leases`` (``POOL[:COUNT][,k=v...]``, a
        gang if several) the run is recorded ``waiting`` and starts by itself once they
        are granted; its lease is held while it runs (see :mod:`merlin.control.leased`).
        ``runtime`` (a ``RuntimeEnv`` or a mapping of its fields, docs/environments.md): what the
        command runs with, built once per spec by uv; None: the submitter's environment. Automatic retries by failure
        class (``max_retries_*``, ``retry_backoff``) and gangs (``replicas``, ``placement``): docs/retries.md.
        ``memory`` (bytes, or a size such as ``4GiB``): what the command may use; merlin ends it past
        that on every engine, and Ray also reserves it for the job (docs/ray.md).

        With a job ``name`` (recorded in the run request) and a live run of that name
        already, that run is returned instead of starting a second one, or, with
        ``adopt_existing`` False, :class:`merlin.errors.AlreadyExists` carries its run id;
        concurrent submits of one name start one run (:mod:`merlin.control.names`)."""
        from merlin.control import submit as submit_mod

        def new_run() -> RunRecord:
            return submit_mod.submit(
                self, command, target=target, workflow=workflow, engine=engine or DEFAULT_ENGINE, target_dir=target_dir, workdir=workdir,
                num_cpus=num_cpus, num_gpus=num_gpus, resources=resources, env=env, cluster=cluster, source=source,
                metadata=metadata, run_id=run_id, leases=leases, runtime=runtime, name=name, memory=memory,
                retries={"max_retries_failure": max_retries_failure, "max_retries_preemption": max_retries_preemption,
                         "retry_backoff": retry_backoff, "replicas": replicas, "placement": placement},
            )

        if name is None:
            rec = new_run()
        else:
            from merlin.control.names import submit_named

            rec = submit_named(self, name, adopt_existing, new_run)
        if wait and (not rec.status.is_terminal() or rec.retry_keeper):
            rec = self.wait(rec.run_id, timeout=timeout)
        return rec

    def sweeps(self, action: str, name: str | None = None, **kwargs: Any) -> Any:
        """Sweeps (docs/sweeps.md): ``submit`` (command, inputs, parallel, leases, retries, ...), ``status``, ``summary``,
        ``retry`` (failed items), ``cancel``, ``list``; ``inputs`` expands a glob, file or range; ``drive`` is the driver's life."""
        from merlin.control.sweeps import dispatch

        return dispatch(self, action, name, **kwargs)

    def envs(self, action: str = "list", **kwargs: Any) -> Any:
        """Run environments (docs/environments.md): ``list``, ``show`` (``env_id``), ``build`` (``runtime``),
        ``prune`` (``older_than`` seconds, ``max_size``); ``cache`` overrides the env cache."""
        from merlin.control.envs import envs

        return envs(self, action, **kwargs)

    # ------------------------------------------------------------ observing

    def resolve_run_id(self, run_id: str) -> str:
        """The run a whole id or a unique prefix of one names (every method taking a run id resolves through this)."""
        from merlin.control.find import resolve_run_id

        return resolve_run_id(self, run_id)

    def get(self, run_id: str) -> RunRecord:
        """The record as the ledger has it (no engine call)."""
        return self.ledger.read_record(self.resolve_run_id(run_id))

    def status(self, run_id: str, refresh: bool = True) -> RunRecord:
        """The record, after asking the engine if the run may still change."""
        from merlin.control import observe

        return observe.status(self, self.resolve_run_id(run_id), refresh)

    def status_json(self, run_id: str, refresh: bool = True) -> dict[str, Any]:
        """:meth:`status` as the record's JSON; skips pydantic when the run did not change (``jobs status``)."""
        from merlin.control import observe

        return observe.status_json(self, self.resolve_run_id(run_id), refresh)

    def refresh(self, run_ids: Iterable[str] | None = None, *, touch: bool = True) -> list[RunRecord]:
        """Reconcile active runs with their engines: one ``poll_many`` per engine. ``touch`` False
        leaves a run its engine reports unchanged as recorded (no new ``observed_at`` written):
        for a waiter polling often (``merlin.client.wait_all``)."""
        from merlin.control import observe

        return observe.refresh(self, None if run_ids is None else [self.resolve_run_id(r) for r in run_ids], touch)

    def index_artifacts(self, run_id: str) -> ArtifactIndex:
        from merlin.control import observe

        return observe.index_artifacts(self, self.resolve_run_id(run_id))

    def list_runs(self, status: StatusArg = None, refresh: bool = False) -> list[dict[str, Any]]:
        """Run records newest first, each the record's JSON as stored (a dict shaped as
        :class:`merlin.ledger.models.RunRecord`, docs/records/run_record.schema.json; ``get``
        gives the typed record). Cheap: no engine, no pydantic, unless ``refresh``.
        ``status``: one status or several, each a string (``"failed"``) or a ``RunStatus``."""
        return [d for d, _raw in self.list_entries(status, refresh)]

    def list_entries(self, status: StatusArg = None, refresh: bool = False, **filters: Any) -> Sequence[tuple[dict[str, Any], bytes]]:
        """Like :meth:`list_runs`, with each record's bytes as stored; ``filters`` are
        :func:`merlin.control.find.select`'s (targets, clusters, engines, since, until, sort)."""
        from merlin.control import observe

        entries = observe.list_entries(self, statuses(status), refresh)
        if not any(v not in (None, (), []) for v in filters.values()):
            return entries
        from merlin.control.find import select_entries

        return select_entries(entries, **filters)

    def upstream_record(self, kind: str, ident: str) -> Any:
        """A run, its artifacts or a lease (``kind`` run, artifacts, lease) in upstream Merlin's shape (docs/records/upstream.md)."""
        from merlin.control import upstream

        return upstream.record(self, kind, ident if kind == "lease" else self.resolve_run_id(ident))

    def doctor(self) -> DoctorReport:
        """Is this machine ready? One :class:`merlin.control.doctor.Check` per question (``merlin doctor``)."""
        from merlin.control import doctor

        return doctor.run(self)

    def why(self, run_id: str, document: bool = False) -> Any:
        """Every condition holding a run back, layer by layer (its leases, its cluster, the engine, the cluster's scheduler,
        the run itself; :func:`merlin.control.why.run_conditions`), empty when nothing does. ``document``: ``jobs why --json``
        and the gateway's ``runs_why``, ``{run_id, status, message, held, conditions, next_steps}`` (:func:`~merlin.control.why.why_document`)."""
        from merlin.control import why

        return (why.why_document if document else why.run_conditions)(self, self.resolve_run_id(run_id))

    def wait(self, run_id: str, timeout: float | None = None, poll: float = 0.5) -> RunRecord:
        """Block until the run is terminal (or ``timeout`` seconds pass)."""
        from merlin.control import lifecycle

        return lifecycle.wait(self, self.resolve_run_id(run_id), timeout, poll)

    def events(self, run_id: str) -> list[RunEvent]:
        """The run's events (``events.jsonl``), oldest first, as typed :class:`merlin.ledger.models.RunEvent` records."""
        from merlin.ledger.models import RunEvent

        return [RunEvent.model_validate(e) for e in self.ledger.events(self.resolve_run_id(run_id))]

    def run_summaries(self, status: StatusArg = None, limit: int = 0, *, full: bool = False, refresh: bool = False) -> tuple[int, list[dict[str, Any]]]:
        """(how many runs match ``status``, the newest ``limit`` of them; 0: all), each a summary
        (:data:`merlin.control.summaries.SUMMARY_FIELDS`, kept between calls and forgotten when the
        ledger's change journal names the run), or the whole record as stored with ``full``."""
        from merlin.control import summaries

        if self._summaries is None:
            self._summaries = summaries.RunSummaries(self.root)
        return summaries.listing(self, self._summaries, statuses(status), limit, full=full, refresh=refresh)

    def append_audit(self, entry: Mapping[str, Any]) -> None:
        """One line of the gateway's audit log (``Layout.gateway_audit``), stamped with the time and
        the identity that acted: the real uid of this process and its name (from the OS, never ``$USER``)."""
        import json

        from merlin.atomic import append_line, make_dir
        from merlin.clock import utcnow
        from merlin.leases.common import uid, user

        make_dir(self.layout.gateway_audit.parent, private=True)
        line = {"time": utcnow().isoformat(), "uid": uid(), "user": user(), **entry}
        append_line(self.layout.gateway_audit, json.dumps(line, sort_keys=True, default=str))

    # ----------------------------------------------------------- logs/cancel

    def logs(self, run_id: str, attempt: int | None = None) -> str:
        from merlin.control import logs as logs_mod

        return logs_mod.logs(self, self.resolve_run_id(run_id), attempt)

    def follow(self, run_id: str) -> Iterator[str]:
        from merlin.control import logs as logs_mod

        return logs_mod.follow(self, self.resolve_run_id(run_id))

    def cancel(self, run_id: str, grace: float = 5.0, timeout: float = 15.0) -> RunRecord:
        """Stop a run: its engine ends it (or is asked to, and observed until it has)."""
        from merlin.control import lifecycle

        return lifecycle.cancel(self, self.resolve_run_id(run_id), grace, timeout)

    def retry(self, run_id: str, env: Mapping[str, str] | None = None, cluster: str | None = None, wait: bool = False, timeout: float | None = None) -> RunRecord:
        """A new attempt of a blocked, failed, cancelled or lost run (same command, same target)."""
        from merlin.control import lifecycle

        return lifecycle.retry(self, self.resolve_run_id(run_id), env, cluster, wait, timeout)

    # -------------------------------------------------------------- artifacts

    def artifacts(self, run_id: str) -> ArtifactIndex:
        from merlin.control import observe

        return observe.artifacts(self, self.resolve_run_id(run_id))

    def read_artifact(self, run_id: str, name: str, max_bytes: int) -> ArtifactRead:
        """One indexed artifact: its entry and path, and its bytes (sha256 checked) unless larger than ``max_bytes``."""
        from merlin.control.artifacts import read_artifact

        return read_artifact(self, self.resolve_run_id(run_id), name, max_bytes)

    def fetch_artifact(self, run_id: str, name: str, to: str | os.PathLike[str]) -> Path:
        from merlin.ledger.artifacts import fetch

        return fetch(self.artifacts(run_id), name, Path(to), self.layout)

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
    ) -> RunRecord:
        """Run the in-process TargetGen executor on ``target_dir`` as a run of ``engine``."""
        from merlin.integrations import targetgen_runs as tg

        return tg.submit_targetgen(
            self, target_dir, target, engine=engine, cluster=cluster, wait=wait, timeout=timeout, workflow=workflow,
            extra_args=extra_args, metadata=metadata, env=env,
        )

    def targetgen_submit(
        self, *, capability: PathArg | None, overlay: PathArg | None, out_dir: PathArg | None, from_dir: PathArg | None, engine: str = "ray", cluster: str | None = None,
        wait: bool = False, progress: Callable[[str], None] | None = None,
    ) -> RunRecord:
        """``targetgen execute --engine E``: orchestrate (unless ``from_dir``), then submit the executor as a run of E."""
        from merlin.integrations import targetgen_runs as tg

        return tg.targetgen_submit(
            self, capability=_path(capability), overlay=_path(overlay), out_dir=_path(out_dir), from_dir=_path(from_dir), engine=engine, cluster=cluster, wait=wait, progress=progress
        )

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
        leases: Sequence[str] = (),
        progress: Any = None,
    ) -> AbstractContextManager[InProcessRun]:
        """Record work done in this process as a run, so every engine leaves the same ledger.

        Without ``run_id`` a new run is created (the default engine, status running)
        and finished on exit: ``succeeded`` once ``handle.finish(outcome=...)``
        was called, ``failed`` if the block raised. With ``run_id`` (the job
        side of ``submit_targetgen``) the existing run is attached: only the
        outcome, message and next steps are written; its engine reports the status.
        With ``leases`` (a TargetGen overlay's ``resources:``) the run waits for them
        first (recorded ``waiting``), holds them while the block runs and releases them after.
        """
        from merlin.integrations import targetgen_runs as tg

        return tg.record_inprocess_run(
            self, target=target, target_dir=target_dir, workflow=workflow, command=command, source=source, run_id=run_id, metadata=metadata,
            leases=leases, progress=progress,
        )

    def task_logs_hint(self, run_id: str) -> str | None:
        """Where the per-task logs of a TargetGen run are (the executor writes them under <target_dir>/logs/)."""
        from merlin.integrations import targetgen_runs as tg

        return tg.task_logs_hint(self, self.resolve_run_id(run_id))

    def task_logs(self, run_id: str) -> Path | None:
        from merlin.integrations import targetgen_runs as tg

        return tg.task_logs(self, self.resolve_run_id(run_id))

    def record_outcome(self, run_id: str, outcome: str, message: str | None = None, detail: Mapping[str, Any] | None = None, next_steps: list[dict[str, Any]] | None = None) -> RunRecord:
        """Write an executor outcome (and the next steps) without touching the status."""
        from merlin.integrations import targetgen_runs as tg

        return tg.record_outcome(self, run_id, outcome, message, detail, next_steps)

    def finish_run(
        self, run_id: str, *, outcome: str | None, exit_code: int = 0, message: str | None = None, error: str | None = None, blocked: bool = False, next_steps: list[dict[str, Any]] | None = None
    ) -> RunRecord:
        """End an in-process run: outcome and exit code in, status out."""
        from merlin.integrations import targetgen_runs as tg

        return tg.finish_run(self, run_id, outcome=outcome, exit_code=exit_code, message=message, error=error, blocked=blocked, next_steps=next_steps)


    # ------------------------------------------------------- TargetGen face
    # (validate, plan, explain, orchestrate, status, answer, retry, review: merlin.controlplane.targetgen_face)
    def targetgen_execute(
        self, *, target_dir: PathArg | None = None, capability: PathArg | None = None, overlay: PathArg | None = None, out_dir: PathArg | None = None,
        engine: str = "ray", cluster: str | None = None, strict: bool = False,
    ) -> RunRecord:
        """Advance a target until its next gate as a recorded run of ``engine``: ``target_dir`` as
        orchestrated, or ``capability`` (orchestrated first; ``strict`` checks its warnings before
        anything is written). Returns once the run is recorded (:meth:`wait` for its end)."""
        if strict and capability is not None:
            from merlin.integrations import targetgen_ops

            targetgen_ops.load_checked(_path(capability), _path(overlay), strict)
        return self.targetgen_submit(capability=capability, overlay=overlay, out_dir=out_dir, from_dir=target_dir, engine=engine, cluster=cluster)


def engine_names() -> list[str]:
    """Every engine a run can name (:mod:`merlin.engines.registry`, none imported); ``DEFAULT_ENGINE`` when none is named."""
    from merlin.engines import registry

    return registry.names()


def run_statuses() -> list[str]:
    """Every status a run record can have (:class:`merlin.ledger.status.RunStatus`)."""
    from merlin.ledger.status import RunStatus

    return [s.value for s in RunStatus]


def lease_rules() -> dict[str, Any]:
    """What the lease book accepts, as JSON Schema can say it: ``bundle_pattern`` (``POOL[:COUNT][,k=v...]``),
    ``max_priority`` (priorities are within plus or minus it)."""
    from merlin.leases.book import BUNDLE_PATTERN, MAX_PRIORITY

    return {"bundle_pattern": BUNDLE_PATTERN, "max_priority": MAX_PRIORITY}


def redact(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with secret-looking values redacted, as the ledger's records are (a front end's responses)."""
    from merlin.ledger.text import redact_mapping

    out: dict[str, Any] = redact_mapping(data)
    return out




def targetgen_submit(
    *,
    capability: PathArg | None,
    overlay: PathArg | None,
    out_dir: PathArg | None,
    from_dir: PathArg | None,
    cluster: str | None,
    wait: bool,
    state_root: str | os.PathLike[str] | None,
    progress: Callable[[str], None] | None = None,
    engine: str = "ray",
) -> RunRecord:
    """``execute --engine E`` for a state root (kept for callers of the pre-split API)."""
    return ControlPlane(state_root).targetgen_submit(capability=capability, overlay=overlay, out_dir=out_dir, from_dir=from_dir, engine=engine, cluster=cluster, wait=wait, progress=progress)
