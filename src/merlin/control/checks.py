"""Input checks of the control plane: each refuses with a one-line ``BadInput``."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from merlin.errors import BadInput

_ENV_NAME_OK = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")

#: System trees a run must never use as its target directory, nor anything below them.
_SYSTEM_TREES = ("/proc", "/sys", "/dev", "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/boot")
#: Shared top-level directories: refused themselves (indexing them reads everyone's files); their subdirectories are fine.
_SHARED_DIRS = ("/home", "/Users", "/tmp", "/var", "/var/tmp", "/run", "/opt", "/srv", "/mnt", "/media", "/root", "/snap")


def check_target_dir(tdir: Path) -> Path:
    """Refuse a target directory that would index (and let a run write into) the system or a whole home."""
    tdir = Path(tdir)
    why = None
    if tdir == Path(tdir.anchor):
        why = "is the filesystem root"
    elif tdir == Path.home().resolve():
        why = "is your home directory itself"
    elif str(tdir) in _SHARED_DIRS:
        why = "is a shared system directory"
    else:
        tree = next((t for t in _SYSTEM_TREES if tdir == Path(t) or Path(t) in tdir.parents), None)
        if tree:
            why = f"is inside the system tree {tree}"
    if why:
        raise BadInput(f"--target-dir {tdir} {why}; choose a directory of its own, e.g. --target-dir ./out/NAME (or omit it)")
    return tdir


def check_env(env: Mapping[str, str] | None) -> dict[str, str]:
    out = {}
    for k, v in (env or {}).items():
        if not k or k[0].isdigit() or not set(k) <= _ENV_NAME_OK:
            raise BadInput(f"--env {k}=...: invalid environment variable name")
        out[k] = str(v)
    return out


def check_resources(num_cpus: float | None, num_gpus: float | None) -> None:
    for label, v in (("--num-cpus", num_cpus), ("--num-gpus", num_gpus)):
        if v is not None and v < 0:
            raise BadInput(f"{label} {v}: must be >= 0")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else 'no detail'}"
