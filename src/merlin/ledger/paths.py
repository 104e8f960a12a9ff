"""Where the ledger lives, and the checks that keep every path inside it.

Run ids, target names, cluster names and lease ids become directory and file
names, so each is validated against a strict pattern before any path is
built: nothing a user types can escape the state root. Imports nothing heavy.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from pathlib import Path

from merlin.errors import BadInput

DEFAULT_STATE_ROOT = Path("build/generated/ray")
STATE_ROOT_ENV = "MERLIN_STATE_ROOT"

_RUN_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{2,127}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_LEASE_ID = _RUN_ID


def resolve_state_root(state_root: str | os.PathLike[str] | None = None) -> Path:
    """``--state-root`` wins, then ``$MERLIN_STATE_ROOT``, then ``build/generated/ray``.

    The result is absolute so that records, supervisors and Ray jobs started in
    other working directories agree on one place.
    """
    from merlin.safety import check_state_root, no_nul

    raw = state_root if state_root not in (None, "") else os.environ.get(STATE_ROOT_ENV) or DEFAULT_STATE_ROOT
    no_nul(str(raw), "--state-root")
    return check_state_root(Path(raw).expanduser().resolve())


def _check(pattern: re.Pattern[str], value: str, what: str, hint: str) -> str:
    if not isinstance(value, str) or not pattern.match(value) or ".." in value:
        raise BadInput(f"invalid {what} {value!r}: {hint}")
    return value


def validate_run_id(run_id: str) -> str:
    return _check(_RUN_ID, run_id, "run id", "expected 3-128 characters of a-z, 0-9, '.', '_' or '-' (see `merlin ray jobs list`)")


def validate_name(name: str, what: str = "name") -> str:
    """Target, workflow and cluster names: letters, digits, '.', '_' and '-'."""
    return _check(_NAME, name, what, "use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit")


def validate_lease_id(lease_id: str) -> str:
    return _check(_LEASE_ID, lease_id, "lease id", "expected 3-128 characters of a-z, 0-9, '.', '_' or '-'")


def new_run_id(target: str) -> str:
    """``<target>-<UTC yyyymmdd-hhmmss>-<6 hex>``: sortable, readable, unique."""
    slug = re.sub(r"[^a-z0-9]+", "-", target.lower()).strip("-")[:40] or "run"
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return f"{slug}-{stamp}-{secrets.token_hex(3)}"


def inside(base: Path, relative: str) -> Path:
    """``base / relative`` resolved, or ``BadInput`` if it would leave ``base``.

    Used for artifact names, which come from users: absolute paths, ``..`` and
    symlinks that point outside are all refused.
    """
    if not relative or relative.startswith(("/", "\\")) or "\x00" in relative:
        raise BadInput(f"invalid name {relative!r}: give a path relative to the run's target directory")
    if ".." in relative.replace("\\", "/").split("/"):
        raise BadInput(f"invalid name {relative!r}: '..' would leave the run's target directory")
    base_resolved = base.resolve()
    candidate = (base_resolved / relative).resolve()
    if candidate != base_resolved and base_resolved not in candidate.parents:
        raise BadInput(f"invalid name {relative!r}: it points outside the run's target directory")
    return candidate


class Layout:
    """Every path of the ledger, in one place (see docs/ray.md)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def runs(self) -> Path:
        return self.root / "runs"

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

    def run_dir(self, run_id: str) -> Path:
        return self.runs / validate_run_id(run_id)

    def record(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "run_record.json"

    def request(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "run_request.json"

    def artifacts(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "artifacts.json"

    def events(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "events.jsonl"

    def lock(self, run_id: str) -> Path:
        return self.run_dir(run_id) / ".run.lock"

    def logs(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "logs"

    def default_target_dir(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "target"

    def cluster_record(self, name: str) -> Path:
        """``cluster/bootstrap.json`` for ``default``; ``cluster/<name>.json`` beside it otherwise."""
        validate_name(name, "cluster name")
        if name == "bootstrap":
            raise BadInput("invalid cluster name 'bootstrap': it is the default cluster's record; pick another name")
        return self.clusters / ("bootstrap.json" if name == "default" else f"{name}.json")

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
