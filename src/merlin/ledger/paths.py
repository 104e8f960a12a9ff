"""Where the ledger lives, and the checks that keep every path inside it.

Run ids, target names, cluster names and lease ids become directory and file
names, so each is validated against a strict pattern before any path is
built: nothing a user types can escape the state root. Imports nothing heavy.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from merlin.errors import BadInput

DEFAULT_STATE_ROOT = Path("build/generated/ray")
STATE_ROOT_ENV = "MERLIN_STATE_ROOT"

#: The rules as published in JSON Schemas (the gateway's inputs): the same patterns the checks below
#: apply, with their "never '..'" said as a look-ahead (ECMA-262 and Python read these alike).
RUN_ID_PATTERN = r"^(?!.*\.\.)[a-z0-9][a-z0-9_.-]{2,127}$"
NAME_PATTERN = r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
LEASE_ID_PATTERN = RUN_ID_PATTERN

_RUN_ID = re.compile(RUN_ID_PATTERN[:-1] + r"\Z")  # \Z: '$' would accept a trailing newline
_NAME = re.compile(NAME_PATTERN[:-1] + r"\Z")
_LEASE_ID = _RUN_ID


def resolve_state_root(state_root: str | os.PathLike[str] | None = None) -> Path:
    """``--state-root`` wins, then ``$MERLIN_STATE_ROOT``, then ``build/generated/ray``.

    The result is absolute so that records, supervisors and Ray jobs started in
    other working directories agree on one place.
    """
    from merlin.safety import check_state_root, no_nul

    raw = state_root if state_root not in (None, "") else os.environ.get(STATE_ROOT_ENV) or DEFAULT_STATE_ROOT
    no_nul(str(raw), "state_root")
    return check_state_root(Path(raw).expanduser().resolve())


def _check(pattern: re.Pattern[str], value: str, what: str, hint: str) -> str:
    if not isinstance(value, str) or not pattern.match(value) or ".." in value:
        raise BadInput(f"invalid {what} {value!r}: {hint}")
    return value


def validate_run_id(run_id: str) -> str:
    return _check(_RUN_ID, run_id, "run id", "expected 3-128 characters of a-z, 0-9, '.', '_' or '-' (list the runs to see theirs)")


def validate_name(name: str, what: str = "name") -> str:
    """Target, workflow and cluster names: letters, digits, '.', '_' and '-'."""
    return _check(_NAME, name, what, "use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit")


def validate_lease_id(lease_id: str) -> str:
    return _check(_LEASE_ID, lease_id, "lease id", "expected 3-128 characters of a-z, 0-9, '.', '_' or '-'")


def new_run_id(target: str) -> str:
    """``<target>-<UTC yyyymmdd-hhmmss>-<6 hex>``: sortable, readable, unique."""
    slug = re.sub(r"[^a-z0-9]+", "-", target.lower()).strip("-")[:40] or "run"
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return f"{slug}-{stamp}-{os.urandom(3).hex()}"  # os.urandom, as secrets.token_hex, without its imports


#: an artifact name: relative, no '..' segment, no NUL (the form ``inside`` checks before the disk)
ARTIFACT_NAME_PATTERN = r"^(?![/\\])(?!(?:.*[/\\])?\.\.(?:[/\\]|$))[^\x00]+$"


def check_relative(relative: str, argument: str | None = "name") -> str:
    """``relative`` if it is a relative path that cannot climb out by its form, else ``BadInput``
    naming ``argument``: the check that needs no disk, so it comes before any lookup."""
    if not relative or relative.startswith(("/", "\\")) or "\x00" in relative:
        raise BadInput(f"invalid name {relative!r}: give a path relative to the run's target directory", argument=argument)
    if ".." in relative.replace("\\", "/").split("/"):
        raise BadInput(f"invalid name {relative!r}: '..' would leave the run's target directory", argument=argument)
    return relative


def inside(base: Path, relative: str, argument: str | None = "name") -> Path:
    """``base / relative`` resolved, or ``BadInput`` (naming ``argument``) if it would leave ``base``.

    Used for artifact names, which come from users: absolute paths, ``..`` and
    symlinks that point outside are all refused.
    """
    check_relative(relative, argument)
    base_resolved = base.resolve()
    candidate = (base_resolved / relative).resolve()
    if candidate != base_resolved and base_resolved not in candidate.parents:
        raise BadInput(f"invalid name {relative!r}: it points outside the run's target directory", argument=argument)
    return candidate


#: Bumped when the state root's layout changes, so a later merlin can migrate an older one.
LAYOUT_VERSION = 1

STATE_ROOT_README = """\
# merlin state root

Written by merlin (see docs/ray.md, "Ledger layout"); plain JSON a person can read.
Every path here is named by merlin.ledger.paths.Layout alone.

- `layout_version`: the version of this layout (a later merlin migrates older ones)
- `runs/<run_id>/`: one run: `run_request.json` (what was asked, written once),
  `run_record.json` (where it is now), `events.jsonl` (every transition and its cause),
  `artifacts.json` (the target directory's files when it ended), `logs/attempt-N.log`,
  `target/` (the default target directory); with a run environment: `runtime_spec.json`,
  `env-attempt-N.json` (the env launcher's report), `work/attempt-N/` (a copy of the working-dir snapshot)
- `snapshots/<id>.json`: working-dir snapshots (their files are in `blobs/sha256/`); run
  environments live beside this root, in `<root>-envs/` (docs/environments.md)
- `names/<name>.json`: the run a job name was last given to (`{name, run_id}`), and its lock
- `cluster/`: cluster records (`bootstrap.json` is the cluster named `default`,
  `<name>.json` the others), `logs/<name>/` (their start logs), `tokens/` (generated tokens, mode 0600)
- `resources/leases/<lease_id>.json`: resource leases
- `sweeps/<name>/sweep.json`: a sweep (docs/sweeps.md): its spec, inputs and items; `driver.log`
- `keepers/<run_id>`: an empty file for each run with a retry keeper recorded (docs/retries.md)
- `retention/last.json`, `retention/prune.log`: when a retention policy last pruned by itself, and what each prune removed (docs/config.md)
- `crash/<time>-<pid>.log`: what an internal error left behind (version, command, traceback)
"""


class Layout:
    """Every path of the ledger, in one place (see docs/ray.md): nothing else spells a file name."""

    RECORD_NAME = "run_record.json"
    REQUEST_NAME = "run_request.json"
    #: the record file of the cluster named ``default`` (older merlin wrote only this one)
    DEFAULT_CLUSTER_FILE = "bootstrap.json"
    DEFAULT_CLUSTER = "default"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def layout_version_file(self) -> Path:
        return self.root / "layout_version"

    @property
    def readme(self) -> Path:
        return self.root / "README.md"

    def ensure(self) -> None:
        """On first use: the README that says what each directory holds, and the layout version."""
        if self.layout_version_file.is_file():
            return
        from merlin.atomic import make_dir, write_if_changed

        make_dir(self.root, private=True)  # 0700 unless $MERLIN_STATE_UMASK says otherwise
        write_if_changed(self.readme, STATE_ROOT_README.encode("utf-8"))
        write_if_changed(self.layout_version_file, f"{LAYOUT_VERSION}\n".encode())

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def pruning(self, run_id: str) -> Path:
        """``runs/.pruned-<run_id>-<pid>``: where a pruned run's directory is renamed, in one step out of
        the ledger, before its files are deleted (a name no run id can have)."""
        return self.runs / f".pruned-{validate_run_id(run_id)}-{os.getpid()}"

    @property
    def index(self) -> Path:
        """``index/``: the run index, a cache of the records the listings read (merlin.ledger.index)."""
        return self.root / "index"

    @property
    def index_file(self) -> Path:
        return self.index / "runs.json"

    @property
    def index_journal(self) -> Path:
        """``index/changed``: the run ids whose records changed since the index was saved, one a line."""
        return self.index / "changed"

    def job_name(self, name: str) -> Path:
        """``names/<name>.json``: the run a job name was last given to (merlin.control.names)."""
        return self.root / "names" / f"{validate_name(name, 'job name')}.json"

    def job_name_lock(self, name: str) -> Path:
        return self.root / "names" / f"{validate_name(name, 'job name')}.lock"

    @property
    def clusters(self) -> Path:
        return self.root / "cluster"

    @property
    def resources(self) -> Path:
        return self.root / "resources"

    @property
    def leases(self) -> Path:
        return self.resources / "leases"

    @property
    def book(self) -> Path:
        """The lease book's scheduling state, a journal whose last whole line is current (docs/leases.md)."""
        return self.resources / "book.jsonl"

    @property
    def inventory(self) -> Path:
        return self.resources / "inventory.json"

    @property
    def book_lock(self) -> Path:
        """The lease book's flock (:attr:`book_lockdir` instead on filesystems without flock: leases/locks.py)."""
        return self.resources / ".book.lock"

    @property
    def book_lockdir(self) -> Path:
        """The lease book's atomic-mkdir lock, where flock is unsafe (NFS, Lustre, GPFS)."""
        return self.resources / ".book.lockdir"

    @property
    def book_flushed(self) -> Path:
        """``<seq> <nonce>`` of the last pass whose outbox is on disk (a hint: stale only costs a repair)."""
        return self.resources / ".flushed"

    @property
    def sweeps(self) -> Path:
        return self.root / "sweeps"

    def sweep_dir(self, name: str) -> Path:
        return self.sweeps / name

    def sweep_record(self, name: str) -> Path:
        return self.sweep_dir(name) / "sweep.json"

    def sweep_lock(self, name: str) -> Path:
        """Held while the sweep's record is read and written (briefly)."""
        return self.sweep_dir(name) / "sweep.lock"

    def sweep_driver_lock(self, name: str) -> Path:
        """Held by the sweep's one driver for its whole life: free means no driver."""
        return self.sweep_dir(name) / "driver.lock"

    def sweep_driver_log(self, name: str) -> Path:
        return self.sweep_dir(name) / "driver.log"

    def sweep_driver_started(self, name: str) -> Path:
        """The last driver a look started (pid and start), alive before it takes ``driver.lock``."""
        return self.sweep_dir(name) / "driver.started"

    def run_dir(self, run_id: str) -> Path:
        return self.runs / validate_run_id(run_id)

    def record(self, run_id: str) -> Path:
        return self.run_dir(run_id) / self.RECORD_NAME

    def run_result(self, run_id: str) -> Path:
        """``$MERLIN_RUN_DIR/result.json``: what a sweep item may write (a flat JSON object, docs/sweeps.md)."""
        return self.run_dir(run_id) / "result.json"

    def request(self, run_id: str) -> Path:
        return self.run_dir(run_id) / self.REQUEST_NAME

    def artifacts(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "artifacts.json"

    def events(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "events.jsonl"

    def lock(self, run_id: str) -> Path:
        return self.run_dir(run_id) / ".run.lock"

    def logs(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "logs"

    @staticmethod
    def attempt_log_name(attempt: int) -> str:
        """``logs/attempt-N.log``, relative to the run directory (as attempts record it)."""
        return f"logs/attempt-{int(attempt)}.log"

    def attempt_log(self, run_id: str, attempt: int) -> Path:
        """The log of one attempt: written by the local supervisor, kept from Ray when a run ends."""
        return self.run_dir(run_id) / self.attempt_log_name(attempt)

    def supervisor_log(self, run_id: str) -> Path:
        return self.logs(run_id) / "supervisor.log"

    def retry_keeper_lock(self, run_id: str) -> Path:
        """Held by the run's retry keeper while it lives: one keeper per run (docs/retries.md)."""
        return self.run_dir(run_id) / ".retry-keeper.lock"

    @property
    def retry_keepers(self) -> Path:
        """``keepers/``: one empty file per run that has a retry keeper recorded, so the next look
        finds the runs whose keeper may have died without reading every record (docs/retries.md)."""
        return self.root / "keepers"

    def retry_keeper_mark(self, run_id: str) -> Path:
        return self.retry_keepers / validate_run_id(run_id)

    def retry_keeper_log(self, run_id: str) -> Path:
        return self.logs(run_id) / "retry-keeper.log"

    @property
    def retention_stamp(self) -> Path:
        """``retention/last.json``: when the retention policy's last prune began (its mtime, and the
        policy it applied); ``retention/prune.log`` holds each prune's report (merlin.control.retention)."""
        return self.root / "retention" / "last.json"

    @property
    def retention_log(self) -> Path:
        return self.root / "retention" / "prune.log"

    def default_target_dir(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "target"

    def cluster_record(self, name: str) -> Path:
        """``cluster/bootstrap.json`` for ``default``; ``cluster/<name>.json`` beside it otherwise."""
        validate_name(name, "cluster name")
        if name == Path(self.DEFAULT_CLUSTER_FILE).stem:
            raise BadInput(f"invalid cluster name {name!r}: it is the default cluster's record; pick another name")
        return self.clusters / (self.DEFAULT_CLUSTER_FILE if name == self.DEFAULT_CLUSTER else f"{name}.json")

    def cluster_name_of(self, path: Path) -> str | None:
        """The cluster a file under ``cluster/`` records (None for anything else)."""
        if path.suffix != ".json" or path.name.startswith("."):
            return None
        return self.DEFAULT_CLUSTER if path.name == self.DEFAULT_CLUSTER_FILE else path.stem

    def cluster_lock(self, name: str) -> Path:
        validate_name(name, "cluster name")
        return self.clusters / f".{name}.lock"

    def cluster_logs(self, name: str) -> Path:
        validate_name(name, "cluster name")
        return self.clusters / "logs" / name

    def cluster_token(self, name: str) -> Path:
        validate_name(name, "cluster name")
        return self.clusters / "tokens" / f"{name}.token"

    def cluster_state_dir(self, name: str) -> Path:
        """Scheduler-backed clusters (slurm, pbs, ssh): batch script, handshake and pid files."""
        validate_name(name, "cluster name")
        return self.clusters / "state" / name

    def lease(self, lease_id: str) -> Path:
        return self.leases / f"{validate_lease_id(lease_id)}.json"

    def lease_events(self, lease_id: str) -> Path:
        return self.leases / f"{validate_lease_id(lease_id)}.events.jsonl"

    def lease_records(self) -> list[Path]:
        """Every lease record on disk (``leases/<lease_id>.json``), not their event logs."""
        return list(self.leases.glob("*.json")) if self.leases.is_dir() else []

    @property
    def blobs(self) -> Path:
        """``blobs/sha256/``: every run's artifacts, one file per digest (see ledger/artifacts.py's snapshot)."""
        return self.root / "blobs" / "sha256"

    def blob(self, digest: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return self.blobs / digest[:2] / digest

    @property
    def snapshots(self) -> Path:
        """``snapshots/``: working-dir manifests (``<id>.json``); their files are blobs (merlin.envs.snapshot)."""
        return self.root / "snapshots"

    def snapshot(self, snapshot_id: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", snapshot_id):
            raise ValueError(f"not a snapshot id: {snapshot_id!r}")
        return self.snapshots / f"{snapshot_id}.json"

    def run_workdir(self, run_id: str, attempt: int) -> Path:
        """The copy of a run's working-dir snapshot its attempt runs in."""
        return self.run_dir(run_id) / "work" / f"attempt-{attempt}"

    def env_report(self, run_id: str, attempt: int) -> Path:
        """What the env launcher of an attempt says: building or ready, the env id, cache hit or built."""
        return self.run_dir(run_id) / f"env-attempt-{attempt}.json"

    def usage_report(self, run_id: str, attempt: int) -> Path:
        """An attempt's resource use as the launcher measured it where the command ran (wall, CPU, peak RSS)."""
        return self.run_dir(run_id) / f"usage-attempt-{attempt}.json"

    def runtime_spec(self, run_id: str) -> Path:
        """The run's runtime spec as the launcher reads it (no secret values)."""
        return self.run_dir(run_id) / "runtime_spec.json"

    @property
    def merlin_wheels(self) -> Path:
        """merlin's own wheels, built from the submitter's checkout for TargetGen runs' envs
        (``merlin-<version>-<source digest>/``): in the state root, which Slurm/PBS nodes see."""
        return self.root / "wheels"

    def env_cache(self) -> Path:
        """The env cache: $MERLIN_ENV_CACHE, else ``<state root>-envs`` beside the state root."""
        chosen = os.environ.get("MERLIN_ENV_CACHE")
        if chosen:
            return Path(chosen).expanduser().resolve()
        return self.root.parent / f"{self.root.name}-envs"

    @property
    def gateway_token(self) -> Path:
        """``gateway/token``: the gateway server's bearer token (mode 0600; merlin.gateway.auth)."""
        return self.root / "gateway" / "token"

    @property
    def gateway_audit(self) -> Path:
        """``gateway/audit.jsonl``: one line per mutating request to the gateway (docs/gateway.md)."""
        return self.root / "gateway" / "audit.jsonl"

    @property
    def crash(self) -> Path:
        return self.root / "crash"

    def crash_log(self) -> Path:
        """``crash/<UTC yyyymmddThhmmss>-<pid>.log``: one file per internal error."""
        return self.crash / f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.getpid()}.log"
