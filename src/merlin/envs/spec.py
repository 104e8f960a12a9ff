"""The canonical spec of a run environment, its env id, and uv itself.

The spec file the launcher reads is the ``runtime`` record of run_request.json as a
plain JSON object (``RuntimeEnv.model_dump(mode="json")``), without ``env_vars``
values or any secret value: those travel in the run's environment.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def default_python() -> str:
    """The submitter's Python as X.Y."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def this_platform() -> str:
    """``sys.platform`` and the machine (``platform.machine()``'s value, read from ``os.uname``
    without importing ``platform``: the launcher's warm path computes it)."""
    return f"{sys.platform}-{os.uname().machine}"


@functools.cache
def find_uv() -> str:
    """uv's binary: ``$MERLIN_UV`` if set, else through uv's own helper (the PyPI ``uv`` package,
    a merlin dependency)."""
    if os.environ.get("MERLIN_UV"):
        return os.environ["MERLIN_UV"]
    from uv import find_uv_bin

    return str(find_uv_bin())


@functools.cache
def uv_version() -> str:
    """uv's version, from its package metadata (no process): the ``uv-X.Y.Z.dist-info`` beside
    the importable ``uv`` package, read by name (the launcher's warm path: ``importlib.metadata``
    scans every distribution on the path and costs more than the rest of a cache hit), else
    ``importlib.metadata``."""
    import importlib.util

    found = importlib.util.find_spec("uv")
    if found is not None and found.origin:
        site = Path(found.origin).parent.parent
        try:
            names = [e.name for e in os.scandir(site) if e.name.startswith("uv-") and e.name.endswith(".dist-info")]
        except OSError:
            names = []
        if len(names) == 1:
            return names[0][len("uv-") : -len(".dist-info")]
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("uv")
    except PackageNotFoundError:  # pragma: no cover - uv is a dependency
        return "unknown"


def canonical(runtime: Mapping[str, Any], *, uv: str | None = None, plat: str | None = None) -> dict[str, Any]:
    """What names an environment: python, platform, lockfile and requirements bytes, packages,
    index options and uv's version. Not env_vars, secret_env or working_dir."""
    return {
        "python": runtime.get("python") or default_python(),
        "platform": plat or this_platform(),
        "requirements": runtime.get("requirements") or "",
        "lockfile": runtime.get("lockfile") or "",
        "lockfile_name": runtime.get("lockfile_name") or "",
        "lock_project": runtime.get("lock_project") or "",
        "packages": sorted(runtime.get("packages") or []),
        "index_url": list(runtime.get("index_url") or []),
        "find_links": list(runtime.get("find_links") or []),
        "no_index": bool(runtime.get("no_index")),
        "uv": uv or uv_version(),
    }


def env_id(runtime: Mapping[str, Any], *, uv: str | None = None, plat: str | None = None) -> str:
    """sha256 (hex) of the canonical spec as sorted, compact JSON."""
    text = json.dumps(canonical(runtime, uv=uv, plat=plat), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def needs_build(runtime: Mapping[str, Any] | None) -> bool:
    """A runtime that asks for packages or a Python (a bare working_dir or secrets need no env)."""
    if not runtime:
        return False
    return bool(runtime.get("requirements") or runtime.get("lockfile") or runtime.get("packages") or runtime.get("python"))


def cache_root(layout: Any, override: str | os.PathLike[str] | None = None) -> Path:
    """The env cache: ``override``, else the Layout's (``$MERLIN_ENV_CACHE``, else ``<state root>-envs``)."""
    return Path(override).expanduser().resolve() if override else Path(layout.env_cache())


def read_spec(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a runtime spec is a JSON object")
    return data


def inline_spec(text: str) -> dict[str, Any]:
    """A spec given on the launcher's command line (``--spec-inline``): base64 of its JSON."""
    import base64

    data = json.loads(base64.b64decode(text.encode("ascii")).decode("utf-8"))
    if not isinstance(data, dict):
        raise ValueError("an inline runtime spec is a JSON object")
    return data
