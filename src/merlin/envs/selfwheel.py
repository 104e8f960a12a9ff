"""merlin itself in a run's env (a TargetGen run: it runs ``python -m merlin`` on a node that
may have no merlin venv), the submitter's version, from the submitter's install:

* an editable install (a checkout): a wheel built from the checkout (``uv build``, its build
  backend from the env's index options), once per version and
  content of its sources (``merlin-<version>-<digest>/`` under ``Layout.merlin_wheels``), named
  in the env by its path (``merlin @ file:///.../merlin-X-py3-none-any.whl``);
* any other install: ``merlin==<version>`` from the env's index options.

Its dependencies come from the env's index options like any package's.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse


def installed() -> tuple[str, Path | None]:
    """merlin's version and, for an editable install, its checkout."""
    from importlib import metadata

    dist = metadata.distribution("merlin")
    try:
        info = json.loads(dist.read_text("direct_url.json") or "{}")
    except ValueError:
        info = {}
    url = str(info.get("url") or "")
    if (info.get("dir_info") or {}).get("editable") and url.startswith("file://"):
        return dist.version, Path(unquote(urlparse(url).path))
    return dist.version, None


def source_digest(checkout: Path) -> str:
    """sha256 of what a wheel of the checkout holds: pyproject.toml and src/merlin (no caches)."""
    h = hashlib.sha256()
    files = [checkout / "pyproject.toml", *sorted(p for p in (checkout / "src" / "merlin").rglob("*") if p.is_file() and "__pycache__" not in p.parts)]
    for path in files:
        h.update(str(path.relative_to(checkout)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def requirement(wheels: Path, index_args: list[str] | None = None) -> str:
    """The requirement that puts the submitter's merlin in an env (builds its wheel if needed;
    ``index_args``: the env's own index options, where the build backend comes from)."""
    version, checkout = installed()
    if checkout is None:
        return f"merlin=={version}"
    out = wheels / f"merlin-{version}-{source_digest(checkout)[:16]}"
    built = sorted(out.glob("merlin-*.whl"))
    if not built:
        built = [_build(checkout, out, index_args or [])]
    return f"merlin @ {built[0].resolve().as_uri()}"


def _build(checkout: Path, out: Path, index_args: list[str]) -> Path:
    """``uv build --wheel`` of the checkout into a temp dir, renamed into place (one of two racing builds wins)."""
    from merlin.atomic import ensure_dir
    from merlin.envs.spec import find_uv

    ensure_dir(out.parent)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=out.parent))
    try:
        argv = [find_uv(), "build", "--wheel", "--quiet", "--out-dir", str(tmp), "--python", sys.executable, *index_args, str(checkout)]
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
        if proc.returncode != 0:
            from merlin.errors import Blocked

            lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
            raise Blocked(f"could not build merlin's wheel from {checkout} for the run's env: {lines[-1] if lines else f'uv exit {proc.returncode}'}")
        try:
            os.rename(tmp, out)
        except OSError:
            if not any(out.glob("merlin-*.whl")):
                raise
        return sorted(out.glob("merlin-*.whl"))[0]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
