"""``doctor``: is this machine ready to run merlin? One check record per question.

Each check answers ``ok``, ``warn`` (works, but something will bite) or ``fail``
(something merlin needs is broken), with what it found, the fix in words, and
the fix as next steps where merlin has a command for it. Nothing here prints or
spells a command: the front ends render the records.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from merlin.errors import MerlinError
from merlin.nextsteps import Action, step

if TYPE_CHECKING:
    from merlin.control.plane import Plane

#: the ports ``start-local`` takes when none are given (GCS, jobs API)
DEFAULT_PORTS = {"port": 6379, "dashboard_port": 8265}
#: free space under the state root below which a check warns, and fails
DISK_WARN, DISK_FAIL = 1 << 30, 100 << 20
#: the program each scheduler-backed cluster kind calls
SCHEDULER_PROGRAMS = {"slurm": "sbatch", "pbs": "qsub", "ssh": "ssh"}
STATUSES = ("ok", "warn", "fail")
MIN_PYTHON = (3, 11)
MIN_RAY = (2, 9)  # pyproject's ray extra


@dataclass
class Check:
    """One check: ``name`` (``python``, ``ray``, ``port 6379``, ``cluster lab``, ...), its status and why."""

    name: str
    status: str
    message: str
    fix: str = ""
    next_steps: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "message": self.message, "fix": self.fix, "next_steps": list(self.next_steps)}


@dataclass
class DoctorReport:
    checks: list[Check]

    @property
    def status(self) -> str:
        """The worst status of any check."""
        return max((c.status for c in self.checks), key=STATUSES.index, default="ok")

    def to_json(self) -> dict[str, Any]:
        counts = {s: sum(c.status == s for c in self.checks) for s in STATUSES}
        return {"status": self.status, "counts": counts, "checks": [c.to_json() for c in self.checks]}


def check_python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    if tuple(sys.version_info[:2]) < MIN_PYTHON:  # merlin itself may still import on an older one
        return Check("python", "fail", f"Python {version}; merlin needs 3.11 or newer", "install Python 3.11 or newer and recreate the environment")
    if sys.prefix == sys.base_prefix:
        return Check("python", "warn", f"Python {version} at {sys.executable}, not in a virtual environment",
                     "run merlin through the ./merlin wrapper, which keeps its own .venv")  # fmt: skip
    return Check("python", "ok", f"Python {version} in the virtual environment {sys.prefix}")


def check_ray() -> Check:
    try:
        import ray

        version = str(getattr(ray, "__version__", "unknown"))
    except Exception as exc:  # ImportError, or a broken install raising anything
        return Check("ray", "warn", f"Ray is not importable ({type(exc).__name__}: {exc}); the local engine works, clusters and the ray engine do not",
                     "install the ray extra into merlin's environment", [step(Action.INSTALL, package="ray[default]")])  # fmt: skip
    where = Path(ray.__file__).parent if getattr(ray, "__file__", None) else "?"
    if _older(version, MIN_RAY):
        return Check("ray", "warn", f"Ray {version} imports ({where}), but merlin needs Ray {'.'.join(map(str, MIN_RAY))} or newer",
                     "upgrade Ray in merlin's environment", [step(Action.INSTALL, package="ray[default]")])  # fmt: skip
    return Check("ray", "ok", f"Ray {version} imports ({where})")


def _older(version: str, least: tuple[int, ...]) -> bool:
    """Whether a version string's leading numbers are below ``least`` (an unreadable one is not judged)."""
    import re

    nums = re.match(r"(\d+)\.(\d+)", version)
    return nums is not None and (int(nums[1]), int(nums[2])) < least


def check_ports(plane: Plane) -> list[Check]:
    """The default ports are free, or held by a recorded cluster of this state root."""
    from merlin.clusters.net import free_ports, port_free

    ours = {}
    for name in plane.ledger.cluster_names():
        rec = plane.ledger.read_cluster(name)
        if rec is not None and rec.status in ("active", "starting") and getattr(rec, "ports", None) is not None:
            ours.update({rec.ports.gcs: name, rec.ports.dashboard: name})
    out = []
    for port in DEFAULT_PORTS.values():
        label = f"port {port}"
        if port in ours:
            out.append(Check(label, "ok", f"in use by cluster '{ours[port]}' of this state root"))
        elif port_free(port):
            out.append(Check(label, "ok", "free"))
        else:
            other = dict(zip(DEFAULT_PORTS, free_ports(2), strict=True))
            out.append(Check(label, "warn", "in use by another program (another Ray?): a cluster started on the default ports would be refused",
                             "start clusters on other ports, or inside a port range", [step(Action.START_CLUSTER, name="default", **other)]))  # fmt: skip
    return out


def check_clusters(plane: Plane) -> list[Check]:
    """Every active cluster answers with its token; every scheduler program a recorded kind needs is on PATH."""
    from merlin.clusters.auth import read_token

    out = []
    kinds = set()
    for name in plane.ledger.cluster_names():
        rec = plane.ledger.read_cluster(name)
        if rec is None:
            continue
        kinds.add(rec.kind)
        if rec.status not in ("active", "starting"):
            continue
        label = f"cluster {name}"
        try:
            read_token(rec.auth, name)
        except MerlinError as exc:
            out.append(Check(label, "fail", exc.message, "restore the cluster's token, or restart the cluster (a new one is made)",
                             [step(Action.STOP_CLUSTER, name=name), step(Action.START_CLUSTER, name=name)]))  # fmt: skip
            continue
        try:
            st = plane.cluster_status(name, sockets=False)
        except MerlinError as exc:
            out.append(Check(label, "fail", exc.message, "see the cluster's status", [step(Action.CLUSTER_STATUS, name=name)]))
            continue
        if st.state == "active" and "refused the token" in st.message:
            out.append(Check(label, "fail", st.message, "the token file does not match the cluster's: restart it", [step(Action.STOP_CLUSTER, name=name), step(Action.START_CLUSTER, name=name)]))
        elif st.state == "active":
            out.append(Check(label, "ok", f"{rec.kind}, answers at {rec.address}" + (" with its token" if rec.auth.mode == "token" else " (no token authentication)")))
        else:
            out.append(Check(label, "fail", f"recorded as {rec.status}, but {st.message}", "restart it, or stop it to forget it", st.next_steps or [step(Action.CLUSTER_STATUS, name=name)]))
    for kind in sorted(kinds & set(SCHEDULER_PROGRAMS)):
        program = SCHEDULER_PROGRAMS[kind]
        found = shutil.which(program)
        label = f"{program} ({kind})"
        if found:
            out.append(Check(label, "ok", f"{found}, for the {kind} clusters recorded here"))
        else:
            out.append(Check(label, "fail", f"{program} is not on PATH, and {kind} clusters are recorded here", f"install {program} or put it on PATH"))
    return out


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_state_root(root: Path) -> list[Check]:
    from merlin.units import human_bytes

    out = []
    base = _existing(root)
    if not root.exists():
        writable = os.access(base, os.W_OK | os.X_OK)
        out.append(Check("state root", "ok" if writable else "fail", f"{root} does not exist yet; {base} is {'' if writable else 'not '}writable, so it can{'' if writable else 'not'} be made",
                         "" if writable else f"make {base} writable or choose another state root"))  # fmt: skip
    elif not root.is_dir():
        out.append(Check("state root", "fail", f"{root} is not a directory", "choose a directory as the state root"))
    elif not os.access(root, os.R_OK | os.W_OK | os.X_OK):
        out.append(Check("state root", "fail", f"{root}: no permission to read and write it", f"give this user read and write access to {root} or choose another state root"))
    elif root.stat().st_mode & 0o002:
        out.append(Check("state root", "warn", f"{root} is writable by every user: anyone could change its records", "take away other users' write permission on it"))
    else:
        out.append(Check("state root", "ok", f"{root} is readable and writable"))
    usage = shutil.disk_usage(base)
    free = f"{human_bytes(usage.free)} free of {human_bytes(usage.total)} on {base}"
    if usage.free < DISK_FAIL:
        out.append(Check("disk", "fail", free, "free space: runs, logs and artifacts cannot be written"))
    elif usage.free < DISK_WARN:
        out.append(Check("disk", "warn", free, "free space soon: logs and artifacts grow with every run"))
    else:
        out.append(Check("disk", "ok", free))
    return out


def check_uv() -> Check:
    """The uv run environments build with (``merlin.envs.spec.find_uv``: ``$MERLIN_UV``, else merlin's own
    dependency): missing or broken, no run with packages can start."""
    try:
        from merlin.envs.spec import find_uv

        found: str | None = find_uv()
    except Exception:  # the uv package is missing from merlin's environment
        found = shutil.which("uv")
    if not found:
        return Check("uv", "warn", "uv is not installed: runs with a run environment cannot build it (runs without one are fine)",
                     "reinstall merlin's environment (uv is one of its dependencies), or set MERLIN_UV to a uv binary")  # fmt: skip
    try:
        version = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return Check("uv", "warn", f"uv at {found} does not run ({exc})", "point MERLIN_UV at a uv that runs, or reinstall merlin's environment")
    return Check("uv", "ok", f"{version or 'uv'} at {found}")


def run(plane: Plane) -> DoctorReport:
    """Every check, in the order a person fixes things: the interpreter, Ray, the state root, ports, clusters, tools."""
    checks = [check_python(), check_ray(), *check_state_root(plane.root), *check_ports(plane), *check_clusters(plane), check_uv()]
    return DoctorReport(checks)
