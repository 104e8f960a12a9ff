"""Typed records of the ledger, published as JSON Schema in docs/records/.

Each file the ledger writes is one of these records, with a ``schema_version``
so a later merlin can read (or migrate) what an earlier one wrote. Times are
timezone-aware UTC and serialise as ISO 8601. Unknown fields are refused: a
typo in code fails a test instead of silently writing a field nobody reads.

They are light records (``ledger/record.py``): checked in plain Python, with
pydantic's interface and, for what that check does not vouch for, pydantic's
judgement (``ledger/pydantic_models.py``, which also publishes the schemas).
So ``jobs submit``, ``jobs status`` and ``jobs list`` never import pydantic.

No ``from __future__ import annotations`` here: the field types are evaluated once, as the
classes are made, from the module's bytecode. As strings, each would be compiled from text on
every command that touches a record (``compile()`` was about 1 ms of a ``jobs submit``).
"""

from datetime import datetime
from typing import Annotated, Any, Literal

from merlin.clock import utcnow as utcnow  # re-exported: records and their writers share one clock
from merlin.ledger.record import Pattern, Record, field, validator
from merlin.ledger.status import ClusterStatus, RunStatus
from merlin.ledger.text import plain, redact_env, redact_mapping

SCHEMA_VERSION: Literal[1] = 1

#: An engine's registry key (merlin.engines.registry); checked there, not here, so an
#: engine added at run time needs no edit of this file.
EngineName = Annotated[str, Pattern(r"^[a-z][a-z0-9_-]{0,31}$")]




# --------------------------------------------------------------------------- runs


class ClusterRef(Record):
    """Which Ray cluster a run went to, as it was when the run was submitted."""

    name: str = field(description="merlin's name for the cluster (default: 'default').")
    address: str | None = field(default=None, description="Jobs API (dashboard) URL, e.g. http://127.0.0.1:8265.")
    gcs_address: str | None = field(default=None, description="Ray GCS address host:port.")
    session_name: str | None = field(default=None, description="Ray session of the cluster; changes when it restarts.")


class Replica(Record):
    """One process of a gang attempt (``replicas`` > 1): its index, where it ran and how it ended."""

    index: int = field(ge=0, description="$MERLIN_REPLICA_INDEX of this replica (0 hosts the coordinator).")
    status: RunStatus
    host: str | None = field(default=None, description="Host (or Ray node) the replica ran on.")
    pid: int | None = field(default=None, description="Local engine: pid of the replica's command.")
    submission_id: str | None = field(default=None, description="Ray: the job of this replica.")
    exit_code: int | None = None
    message: str | None = field(default=None, description="How it ended, for a person (e.g. 'stopped: replica 1 failed').")


class Attempt(Record):
    """One try at running the command; ``jobs retry`` adds another."""

    number: int = field(ge=1, description="1 for the first attempt, 2 for the first retry, ...")
    engine: EngineName
    submission_id: str | None = field(default=None, description="Ray submission id (merlin-<run_id>-<n>) or local-<n>.")
    status: RunStatus
    submitted_at: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    exit_code: int | None = field(default=None, description="Exit code of the command (negative: killed by that signal).")
    error_type: str | None = field(default=None, description="Ray's JobErrorType, or merlin's cause for local/blocked attempts.")
    error_message: str | None = field(default=None, description="Ray's (or the supervisor's) message for this attempt.")
    log_path: str | None = field(default=None, description="Log file of a local attempt, relative to the run directory.")
    pid: int | None = field(default=None, description="Local engine: pid of the command (leader of its own process group).")
    pgid: int | None = field(default=None, description="Local engine: process group that cancel ends.")
    supervisor_pid: int | None = field(default=None, description="Local engine: the detached supervisor waiting for the command (in-process runs: the process doing the work).")
    supervisor_start: int | None = field(default=None, description="Start time of supervisor_pid (1/100 s since the epoch): a pid plus its start time is an identity.")
    submitter_pid: int | None = field(default=None, description="Local engine: the process that created the attempt and starts its supervisor.")
    submitter_start: int | None = field(default=None, description="Start time of submitter_pid (1/100 s since the epoch).")
    env_id: str | None = field(default=None, description="The run environment's id (sha256 of its spec), once known.")
    env_cache: Literal["hit", "built"] | None = field(default=None, description="Whether this attempt reused its environment (hit) or built it.")
    failure_class: Literal["infrastructure", "program"] | None = field(
        default=None,
        description="How the attempt ended, when it did not succeed and nobody cancelled it: 'infrastructure' (lost, node or head "
        "died, cluster stopped under it, lease revoked, supervisor or waiter killed, allocation ended; counted against "
        "max_retries_preemption) or 'program' (the command exited non-zero; counted against max_retries_failure). docs/retries.md.",
    )
    replicas: list[Replica] = field(default_factory=list, description="A gang (replicas > 1): one entry per replica, index order.")
    usage: dict[str, float] | None = field(
        default=None,
        description="Resource use of the command's process tree once it ended: wall_s, cpu_s (user + system) and max_rss_bytes "
        "(the largest resident set of any of its processes), from getrusage(2) of the children where it ran (docs/sweeps.md).",
    )

    @validator("error_message", mode="before")
    def _clean(v: Any) -> Any:
        return plain(v) if v is not None else None


class RuntimeEnv(Record):
    """What a run runs with (docs/environments.md), frozen into run_request.json at submit.

    The env id (``merlin.envs.spec.env_id``) is a sha256 of the python version, the
    platform, the lockfile and requirements bytes, the packages, the index options and
    uv's version: ``env_vars`` and ``secret_env`` are not part of it."""

    python: str | None = field(default=None, pattern=r"^[0-9]+\.[0-9]+$", description="Python X.Y (default: the submitter's).")
    requirements: str | None = field(default=None, description="The requirements file's text, as it was at submit.")
    requirements_path: str | None = field(default=None, description="Where the requirements came from (a retry after a failed build reads it again).")
    lockfile: str | None = field(default=None, description="The lockfile's text (uv.lock or pylock.toml), as it was at submit.")
    lockfile_name: str | None = field(default=None, description="uv.lock or pylock.toml (or a pylock.<name>.toml).")
    lockfile_path: str | None = field(default=None, description="Where the lockfile came from.")
    lock_project: str | None = field(default=None, description="A uv.lock's pyproject.toml text (uv needs both).")
    packages: list[str] = field(default_factory=list, description="Extra requirements, each a PEP 508 string.")
    index_url: list[str] = field(default_factory=list, description="Package indexes, the first the default.")
    find_links: list[str] = field(default_factory=list, description="Directories or pages of wheels.")
    no_index: bool = field(default=False, description="Never ask an index: find_links only.")
    working_dir: str | None = field(default=None, description="Snapshot id (sha256 of its manifest, snapshots/<id>.json) the run runs in a copy of.")
    working_dir_source: str | None = field(default=None, description="The directory snapshotted at submit.")
    env_vars: dict[str, str] = field(default_factory=dict, description="Environment of the command (not part of the env id); secret-looking names are redacted.")
    secret_env: list[str] = field(default_factory=list, description="Names whose values come from the submitter's environment at launch; never their values.")
    image: str | None = field(default=None, description="A container image (reserved: not built yet).")

    @validator("env_vars", mode="after")
    def _redact_env(v: dict[str, str]) -> dict[str, str]:
        return redact_env(v)


class RunRequest(Record):
    """What was asked for, written once when the run is created (runs/<id>/run_request.json)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    run_id: str
    target: str
    workflow: str
    source: str = field(description="Who asked: 'cli', 'api', 'targetgen'.")
    engine: EngineName
    command: list[str] = field(description="argv; NAME=value words with secret-looking names are redacted.")
    workdir: str = field(description="Directory the command runs in.")
    target_dir: str = field(description="Directory whose files become the run's artifacts.")
    cluster: str | None = field(default=None, description="Cluster name for the ray engine.")
    env: dict[str, str] = field(default_factory=dict, description="Extra environment; secret-looking names are redacted.")
    num_cpus: float | None = field(default=None, ge=0)
    num_gpus: float | None = field(default=None, ge=0)
    memory: int | None = field(
        default=None, ge=1, description="Bytes of memory the command may use: merlin ends it past them (MEMORY_LIMIT); Ray also reserves them (entrypoint_memory)."
    )
    resources: dict[str, float] = field(default_factory=dict, description="Custom Ray resources for the entrypoint.")
    leases: list[str] = field(default_factory=list, description="Lease requests POOL[:COUNT][,k=v...]: the run waits for them before its engine gets it.")
    runtime: RuntimeEnv | None = field(default=None, description="What the run runs with (docs/environments.md); None: it inherits the submitter's environment.")
    metadata: dict[str, Any] = field(default_factory=dict)
    name: str | None = field(
        default=None, description="Job name (merlin.client's JobRequest.name): while this run is live, a submit of the same name adopts it (names/<name>.json)."
    )
    created_at: datetime = field(default_factory=utcnow)
    max_retries_failure: int = field(default=0, ge=0, description="Automatic retries after the command exited non-zero (program failures).")
    max_retries_preemption: int = field(
        default=0, ge=0, description="Automatic retries after the infrastructure lost the attempt (node, head, cluster, lease, supervisor)."
    )
    retry_backoff: float = field(default=10.0, ge=0, description="Seconds before the first automatic retry; doubled for each later one (at most 600).")
    replicas: int | None = field(default=None, ge=1, description="A gang: this many processes started together or not at all (docs/retries.md).")
    placement: Literal["pack", "spread"] | None = field(
        default=None, description="Where a gang's replicas go: 'pack' (as few nodes as fit, Ray PACK) or 'spread' (one per node, Ray STRICT_SPREAD)."
    )

    @validator("env", mode="after")
    def _redact_env(v: dict[str, str]) -> dict[str, str]:
        return redact_env(v)

    @validator("metadata", mode="after")
    def _redact_meta(v: dict[str, Any]) -> dict[str, Any]:
        return redact_mapping(v)


class NextStep(Record):
    """One thing to do next, as data (vocabulary: merlin.nextsteps.Action)."""

    action: str = field(description="retry, logs, start_cluster, targetgen_answer, ... (merlin.nextsteps.Action).")
    args: dict[str, Any] = field(default_factory=dict, description="The action's arguments, e.g. {'run_id': ...}.")


class RunRecord(Record):
    """Where the run is now (runs/<id>/run_record.json): the file people open."""

    schema_version: Literal[1] = SCHEMA_VERSION
    run_id: str
    target: str
    workflow: str
    source: str
    engine: EngineName
    status: RunStatus
    outcome: str | None = field(
        default=None, description="TargetGen executor outcome: completed, blocked, awaiting_operator, awaiting_response."
    )
    command: list[str]
    workdir: str
    target_dir: str
    cluster: ClusterRef | None = None
    attempts: list[Attempt] = field(default_factory=list)
    message: str = field(default="", description="Plain text (no ANSI), at most 1000 characters, for a person; no commands.")
    next_steps: list[NextStep] = field(default_factory=list, description="What to do next, as {action, args}; the CLI renders each as a command.")
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    observed_at: datetime | None = field(default=None, description="Last time the engine was asked about this run.")
    metadata: dict[str, Any] = field(default_factory=dict)
    leases: list[str] = field(default_factory=list, description="Lease ids (resources/leases/<id>.json) held by this run.")
    lease_items: list[str] = field(default_factory=list, description="Inventory items its lease was granted (also $MERLIN_LEASE_ITEMS in its environment).")
    environment: str | None = field(
        default=None, description="What it runs with, in short (docs/environments.md): None inherits the submitter's environment; each attempt names its env_id."
    )
    waiting_on: str | None = field(
        default=None,
        description="While waiting: what holds it back, one short line written by its lease waiter "
        "(e.g. 'lease firesim_fpga:1, #2 in queue behind lease-...'); what the run listing shows as WAITING-ON.",
    )
    max_attempts: int | None = field(default=None, ge=1, description="With retry budgets: the first attempt and every automatic retry they allow (the 'of' in 'attempt 3 of 4').")
    retry_at: datetime | None = field(default=None, description="When the automatic retry now pending starts its attempt (docs/retries.md).")
    retry_keeper: dict[str, Any] = field(
        default_factory=dict, description="The detached process that drives automatic retries: pid, start time, host (empty: none was started)."
    )

    @validator("message", mode="before")
    def _clean(v: Any) -> str:
        return plain(v)

    @validator("metadata", mode="after")
    def _redact_meta(v: dict[str, Any]) -> dict[str, Any]:
        return redact_mapping(v)

    @property
    def attempt(self) -> Attempt | None:
        """The latest attempt, if any."""
        return self.attempts[-1] if self.attempts else None


class RunEvent(Record):
    """One line of runs/<id>/events.jsonl: a transition or notable fact, with its cause."""

    schema_version: Literal[1] = SCHEMA_VERSION
    time: datetime = field(default_factory=utcnow)
    run_id: str
    event: str = field(description="created, transition, submitted, blocked, cancel_requested, retry, outcome, artifacts, note.")
    from_status: RunStatus | None = None
    to_status: RunStatus | None = None
    attempt: int | None = None
    cause: str = field(description="Why, in plain words (who or what caused it).")
    pid: int | None = field(default=None, description="Process that wrote the event.")
    detail: dict[str, Any] = field(default_factory=dict)

    @validator("cause", mode="before")
    def _clean(v: Any) -> str:
        return plain(v)

    @validator("detail", mode="after")
    def _redact(v: dict[str, Any]) -> dict[str, Any]:
        return redact_mapping(v)


class ArtifactEntry(Record):
    name: str = field(description="Path relative to the target directory, '/'-separated.")
    size: int = field(ge=0)
    sha256: str | None = field(default=None, pattern=r"^[0-9a-f]{64}$", description="None if the index hit its hashing cap (see truncated_reason).")
    kind: Literal["json", "yaml", "log", "markdown", "text", "python", "shell", "archive", "other"]


class ArtifactIndex(Record):
    """runs/<id>/artifacts.json: the files of the target directory when the run ended."""

    schema_version: Literal[1] = SCHEMA_VERSION
    run_id: str
    attempt: int | None = None
    target_dir: str
    indexed_at: datetime = field(default_factory=utcnow)
    files: list[ArtifactEntry] = field(default_factory=list)
    total_size: int = 0
    truncated: bool = field(default=False, description="True if the index stopped at a limit (file count, bytes hashed) or was interrupted.")
    truncated_reason: str | None = field(default=None, description="Why the index is truncated, for a person.")


# ----------------------------------------------------------------------- clusters


class ClusterProcess(Record):
    pid: int
    start_ticks: int = field(
        description="Start time, so a reused pid is never signalled: psutil's create_time in hundredths of a second "
        "since the epoch (records older than that hold Linux clock ticks since boot, still understood)."
    )
    name: str = ""


class ClusterAuth(Record):
    """How clients authenticate. Never the token itself: only where it comes from."""

    mode: Literal["disabled", "token"] = "disabled"
    token_file: str | None = field(default=None, description="File holding the token (mode 0600).")
    token_env: str | None = field(default=None, description="Environment variable holding the token.")


class ClusterPorts(Record):
    gcs: int
    dashboard: int
    client_server: int | None = None
    dashboard_agent_listen: int | None = None
    dashboard_agent_grpc: int | None = None
    metrics_export: int | None = None
    runtime_env_agent: int | None = None
    node_manager: int | None = None
    object_manager: int | None = None
    autoscaler_metrics: int | None = field(default=None, description="Autoscaler Prometheus endpoint ($AUTOSCALER_METRIC_PORT).")
    dashboard_metrics: int | None = field(default=None, description="Dashboard Prometheus endpoint ($DASHBOARD_METRIC_PORT).")
    min_worker: int | None = field(default=None, description="First worker port (start-local's port range; absent: Ray's default 10002).")
    max_worker: int | None = field(default=None, description="Last worker port (start-local's port range; absent: Ray's default 19999).")


class ClusterRecord(Record):
    """cluster/bootstrap.json (cluster 'default') or cluster/<name>.json."""

    schema_version: Literal[1] = SCHEMA_VERSION
    name: str
    kind: str = field(default="local", description="Cluster kind: a key of merlin.clusters.registry (local, slurm, pbs, ssh).")
    status: ClusterStatus = field(description="See merlin.clusters.base.ClusterStatus; records written before it said 'running' for 'active'.")
    host: str = field(description="Address the jobs API (dashboard) binds to.")
    address: str = field(description="Jobs API URL that merlin submits to.")
    dashboard_url: str
    gcs_address: str | None = None
    ray_version: str | None = None
    session_name: str | None = None
    temp_dir: str = field(description="Ray's temporary directory; only this cluster uses it.")
    ports: ClusterPorts
    resources: dict[str, float] = field(default_factory=dict, description="Resources Ray reports for the head node.")
    requested: dict[str, Any] = field(default_factory=dict, description="num_cpus, num_gpus, resources as asked.")
    session_id: int | None = field(default=None, description="Unix session id of the `ray start` process tree.")
    processes: list[ClusterProcess] = field(default_factory=list)
    auth: ClusterAuth = field(default_factory=ClusterAuth)
    allow_remote: bool = False
    start_log: str | None = None
    started_at: datetime | None = None
    stopped_at: datetime | None = None
    updated_at: datetime = field(default_factory=utcnow)
    message: str = ""
    # --- scheduler-backed kinds (slurm, pbs, ssh): see docs/clusters.md
    scheduler_job_id: str | None = field(default=None, description="Slurm/PBS job id of the allocation.")
    nodes: list[str] = field(default_factory=list, description="Allocated node names (head first) or ssh hosts.")
    head_address: str | None = field(default=None, description="Head node address (Slurm NodeAddr, PBS host, ssh host).")
    walltime_end: datetime | None = field(default=None, description="When the allocation's time limit ends.")
    idle_timeout: float | None = field(default=None, description="Seconds without an active run before the watchdog stops the cluster.")
    scheduler_reason: str | None = field(default=None, description="While queued: the scheduler's reason (Slurm REASON, PBS comment).")
    stop_reason: str | None = field(default=None, description="Why the cluster ended: stopped by merlin, idle, walltime, cancelled outside.")
    state_dir: str | None = field(default=None, description="Directory in the state root with the batch script and handshake files.")
    node_temp_dirs: list[str] = field(default_factory=list, description="Per-node Ray temp dirs (short: AF_UNIX paths < 107 bytes).")
    tunnel_command: str | None = field(default=None, description="Command that forwards the dashboard when the head is elsewhere.")
    node_resources: dict[str, dict[str, float]] = field(
        default_factory=dict,
        description="Node name (or address) -> the custom resources Ray reports on it: the inventory items attached to that node.",
    )
    lost_runs: list[str] = field(default_factory=list, description="Runs recorded lost because the allocation ended under them.")
    options: dict[str, Any] = field(default_factory=dict, description="The kind's start options as given.")
    python: str | None = field(default=None, description="An interpreter with merlin on the cluster's nodes: Ray jobs start the env launcher with it (docs/environments.md).")
    env_cache: str | None = field(
        default=None,
        description="The run-environment cache as the cluster's nodes see it (`~`/`$VARS` expand on each node); unset: the kind's default (docs/environments.md).",
    )

    @validator("message", "scheduler_reason", "stop_reason", mode="before")
    def _clean(v: Any) -> Any:
        return plain(v) if v is not None else v

    @validator("kind", mode="after")
    def _kind_name(v: str) -> str:
        # a validated name; whether a backend exists is merlin.clusters.registry's to say
        # (the ledger sits below the clusters and never imports them)
        import re

        if not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", v):
            raise ValueError(f"invalid cluster kind {v!r}: expected a short lower-case name such as local, slurm, pbs, ssh")
        return v
    # --- end scheduler-backed kinds

    @validator("status", mode="before")
    def _legacy_status(v: Any) -> Any:
        return "active" if v == "running" else v  # merlin <= 0.1 wrote 'running'




#: file stem in docs/records/ -> model
class Condition(Record):
    """One reason a run (or a lease) is held back, as ``merlin ray jobs why --json`` lists them
    (built by :func:`merlin.conditions.condition`; not stored: observed on every call)."""

    layer: str = field(description="leases, cluster, the engine's name (e.g. ray), scheduler or run; listed in that order.")
    code: str = field(description="Stable code, e.g. lease_item_held, cluster_not_active, ray_job_pending, scheduler_queued, run_blocked.")
    message: str = field(description="Plain text for a person.")
    evidence: dict[str, Any] = field(description="What was seen: holders and times, queue position, what Ray or the scheduler said.")
    observed_at: str = field(description="When merlin looked (ISO 8601 UTC).")
    next_steps: list[NextStep] = field(default_factory=list, description="What to do, as {action, args}; the CLI renders commands, the gateway tool calls.")
    hint: str | None = field(default=None, description="Plain text where no command applies (e.g. 'it starts by itself').")


RECORD_MODELS: dict[str, type[Record]] = {
    "run_request": RunRequest,
    "run_record": RunRecord,
    "run_event": RunEvent,
    "artifacts": ArtifactIndex,
    "cluster": ClusterRecord,
    "condition": Condition,
}
