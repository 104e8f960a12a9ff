"""A run's runtime at submit (docs/environments.md): what the caller gave, frozen into a RuntimeEnv.

The caller's object (``ControlPlane.submit(runtime=...)``, the gateway's ``runtime``,
the CLI's flags and ``--env-file``) has the RuntimeEnv fields, where files may be
given by path: ``requirements_file``, ``lock_file`` (a uv.lock brings its
pyproject.toml), and ``working_dir`` as a directory, snapshotted now. ``python``
defaults to the submitter's. Each secret name must be set in the submitter's
environment: its value is read at launch, never recorded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from merlin.errors import BadInput

if TYPE_CHECKING:  # pragma: no cover
    from merlin.control.plane import Plane
    from merlin.ledger.models import RunRequest, RuntimeEnv

FIELDS = ("python", "requirements", "requirements_file", "lockfile", "lockfile_name", "lock_file", "packages", "index_url",
          "find_links", "no_index", "working_dir", "env_vars", "secret_env", "image")  # fmt: skip
_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"  # compiled on first use (re's cache)


def _text(path: str | os.PathLike[str], argument: str) -> tuple[str, str]:
    p = Path(path).expanduser().resolve()
    try:
        return p.read_text(encoding="utf-8"), str(p)
    except FileNotFoundError:
        raise BadInput(f"`{argument}` {p} does not exist", argument=argument) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"`{argument}` {p} cannot be read: {getattr(exc, 'strerror', None) or exc}", argument=argument) from None


def _strings(value: Any, argument: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise BadInput(f"`{argument}` is a list of strings", argument=argument)


def prepare(cp: Plane, runtime: Any) -> tuple[RuntimeEnv | None, dict[str, str]]:
    """The RuntimeEnv to freeze into the request, from a RuntimeEnv or a mapping (None: inherited),
    and its env_vars with their real values (the record keeps them redacted)."""
    from merlin.envs.spec import default_python
    from merlin.ledger.models import RuntimeEnv

    if runtime is None:
        return None, {}
    if isinstance(runtime, RuntimeEnv):
        raw: dict[str, Any] = runtime.model_dump()
    elif isinstance(runtime, Mapping):
        raw = dict(runtime)
    elif hasattr(runtime, "model_dump"):  # e.g. merlin.client.EnvironmentConfig
        raw = dict(runtime.model_dump())
    else:
        raise BadInput("`runtime` is a mapping of the RuntimeEnv fields (docs/environments.md)", argument="runtime")
    unknown = sorted(set(raw) - set(FIELDS) - set(RuntimeEnv._fields()))
    if unknown:
        raise BadInput(f"`runtime` has unknown field(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}", argument="runtime")
    out: dict[str, Any] = {}
    python = raw.get("python")
    if python is not None and not re.fullmatch(r"[0-9]+\.[0-9]+", str(python)):
        raise BadInput(f"`python` {python!r} is not a version X.Y such as 3.11", argument="python")
    out["python"] = str(python) if python is not None else None
    if raw.get("requirements_file"):
        out["requirements"], out["requirements_path"] = _text(raw["requirements_file"], "requirements")
    elif raw.get("requirements") is not None:
        out["requirements"] = str(raw["requirements"])
        out["requirements_path"] = raw.get("requirements_path")
    if raw.get("lock_file"):
        out["lockfile"], out["lockfile_path"] = _text(raw["lock_file"], "lock")
        out["lockfile_name"] = Path(out["lockfile_path"]).name
        if out["lockfile_name"] == "uv.lock":
            out["lock_project"], _ = _text(Path(out["lockfile_path"]).with_name("pyproject.toml"), "lock")
    elif raw.get("lockfile") is not None:
        out["lockfile"] = str(raw["lockfile"])
        out["lockfile_name"] = raw.get("lockfile_name") or "pylock.toml"
        out["lock_project"] = raw.get("lock_project")
    name = out.get("lockfile_name")
    if name and not (name == "uv.lock" or re.fullmatch(r"pylock(\.[^.]+)?\.toml", name)):
        raise BadInput(f"`lock` {name}: a lockfile is a uv.lock or a pylock.toml", argument="lock")
    out["packages"] = _strings(raw.get("packages"), "with")
    out["index_url"] = _strings(raw.get("index_url"), "index_url")
    out["find_links"] = [str(Path(f).expanduser().resolve()) if "://" not in f else f for f in _strings(raw.get("find_links"), "find_links")]
    out["no_index"] = bool(raw.get("no_index"))
    env_vars = raw.get("env_vars") or {}
    if not isinstance(env_vars, Mapping):
        raise BadInput("`env_vars` is a mapping of names to values", argument="env_vars")
    out["env_vars"] = {str(k): str(v) for k, v in env_vars.items()}
    secrets = _strings(raw.get("secret_env"), "secret_env")
    for s in secrets:
        if not re.match(_NAME, s):
            raise BadInput(f"`secret_env` {s!r} is not an environment variable name", argument="secret_env")
        if s not in os.environ:
            raise BadInput(f"`secret_env` {s} is not set in this environment: export it, then submit again (its value is read at launch, never recorded)",
                           argument="secret_env")  # fmt: skip
    out["secret_env"] = secrets
    if out["python"] is None and (out.get("requirements") is not None or out.get("lockfile") or out["packages"]):
        out["python"] = default_python()  # an env is built: with the submitter's Python unless told
    if raw.get("image"):
        raise BadInput("`image`: merlin does not run containers yet; leave it out", argument="image")
    if raw.get("working_dir"):
        from merlin.envs.snapshot import snapshot

        wd = raw["working_dir"]
        if re.fullmatch(r"[0-9a-f]{64}", str(wd)) and cp.layout.snapshot(str(wd)).is_file():
            out["working_dir"], out["working_dir_source"] = str(wd), raw.get("working_dir_source")
        else:
            src = Path(wd).expanduser().resolve()
            out["working_dir"] = snapshot(src, cp.layout.blob, cp.layout.snapshots)
            out["working_dir_source"] = str(src)
    return RuntimeEnv(**{k: v for k, v in out.items() if v is not None}), dict(out["env_vars"])


def refresh_for_retry(cp: Plane, request: RunRequest) -> RunRequest:
    """A retry after a failed build reads the requirements and lockfile again from where they
    came from (the fix is an edit of that file); the request is rewritten when they changed."""
    from merlin.atomic import atomic_write_json

    rt = request.runtime
    if rt is None:
        return request
    changes: dict[str, Any] = {}
    for field, path_field in (("requirements", "requirements_path"), ("lockfile", "lockfile_path")):
        path = getattr(rt, path_field)
        if path:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if text != getattr(rt, field):
                changes[field] = text
    if not changes:
        return request
    fresh = request.model_copy(update={"runtime": rt.model_copy(update=changes)})
    atomic_write_json(cp.layout.request(request.run_id), fresh.model_dump(mode="json"))
    cp.ledger.append_event(request.run_id, "note", f"retry: {', '.join(sorted(changes))} read again from {', '.join(getattr(rt, f + '_path') for f in ('requirements', 'lockfile') if f in changes)}")
    return fresh


def summary(rt: RuntimeEnv | None) -> str | None:
    """One short line for the run record: ``python 3.11, requirements (2), 1 package, working dir``."""
    if rt is None:
        return None
    parts = [f"python {rt.python}"] if rt.python else []
    if rt.requirements:
        n = sum(1 for x in rt.requirements.splitlines() if x.strip() and not x.strip().startswith("#"))
        parts.append(f"requirements ({n})")
    if rt.lockfile:
        parts.append(rt.lockfile_name or "lockfile")
    if rt.packages:
        parts.append(f"{len(rt.packages)} package{'s' if len(rt.packages) != 1 else ''}")
    if rt.working_dir:
        parts.append(f"working dir {rt.working_dir[:12]}")
    if rt.secret_env:
        parts.append(f"secrets {', '.join(rt.secret_env)}")
    return ", ".join(parts)
