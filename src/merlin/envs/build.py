"""Build an environment with uv, once per env id, never half-built.

:func:`ensure` returns a ready env: from the cache (``hit``), or built now
(``built``) into ``tmp/`` and renamed into ``envs/<env id>`` with its ready
marker inside, under the env id's lock (``cache.EnvCache.lock``, a ``merlin.dirlock.MkdirLock``). Two first
runs of one spec build once: the second waits for the first and reuses its env,
or, if the first fails, reports the same uv error line. A build killed midway
leaves a temp dir and a stale lock, both cleared by the next builder.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from merlin.atomic import atomic_write_json, atomic_write_text, ensure_dir
from merlin.envs.cache import READY, EnvCache
from merlin.envs.spec import canonical, env_id, find_uv, uv_version
from merlin.errors import NoSpace

Progress = Callable[[dict[str, Any]], None]


#: how uv (and merlin's own writes) say a filesystem is full or over quota
NO_SPACE_SIGNS = ("no space left", "os error 28", "quota exceeded", "os error 122", "over its disk quota")


def no_space(line: str) -> bool:
    """Does this error line say the disk is full (ENOSPC) or over quota (EDQUOT)?"""
    low = line.lower()
    return any(sign in low for sign in NO_SPACE_SIGNS)


class BuildFailed(Exception):
    """uv could not build the env: ``line`` is uv's own error line; ``no_space``: it says the
    filesystem is full (the fix is space, not the requirements)."""

    def __init__(self, env: str, line: str) -> None:
        super().__init__(line)
        self.env_id = env
        self.line = line
        self.no_space = no_space(line)


class BuildStopped(Exception):
    """``should_stop`` said so (the run was cancelled while its env built)."""


def uv_env(cache: EnvCache) -> dict[str, str]:
    """uv's environment: its cache beside the envs (hardlinks), no Python downloads, no colour."""
    env = dict(os.environ)
    env.setdefault("UV_CACHE_DIR", str(cache.uv_cache))
    env.setdefault("UV_PYTHON_DOWNLOADS", "never")
    env["NO_COLOR"] = "1"
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    return env


def ensure(
    runtime: Mapping[str, Any],
    cache: EnvCache,
    *,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    poll: float = 0.2,
) -> tuple[Path, str, str]:
    """``(env dir, env id, "hit" | "built")``; raises :class:`BuildFailed` or :class:`BuildStopped`."""
    eid = env_id(runtime)
    if cache.ready(eid):
        cache.touch(eid)
        return cache.env_dir(eid), eid, "hit"
    waited_since: float | None = None
    while True:
        if cache.ready(eid):
            return cache.env_dir(eid), eid, "hit"
        lock = cache.lock(eid)
        if lock.try_acquire():
            try:
                if cache.ready(eid):
                    return cache.env_dir(eid), eid, "hit"
                cache.clear_tmp(eid)
                _build(runtime, eid, cache, progress, should_stop)
                return cache.env_dir(eid), eid, "built"
            finally:
                lock.release()
        state = cache.read_state(eid) or {}
        if waited_since is None:
            waited_since = time.time()
        elif state.get("state") == "failed" and float(state.get("updated_at") or 0) >= waited_since:
            raise BuildFailed(eid, str(state.get("error") or "the build failed"))  # the build we waited for failed
        if progress is not None and state.get("state") == "building":
            progress(state)
        if should_stop is not None and should_stop():
            raise BuildStopped(eid)
        time.sleep(poll)


def _build(runtime: Mapping[str, Any], eid: str, cache: EnvCache, progress: Progress | None, should_stop: Callable[[], bool] | None) -> None:
    started = time.time()
    try:
        tmp = cache.new_tmp(eid)
    except OSError as exc:
        from merlin.errors import is_no_space

        if not is_no_space(exc):
            raise
        raise BuildFailed(eid, f"{cache.tmp_dir}: {exc.strerror}") from None
    venv = tmp / "venv"
    spec = canonical(runtime)
    state = {"state": "building", "started_at": started, "line": "creating the virtual environment", "pid": os.getpid()}
    _note(cache, eid, **state)
    if progress is not None:
        progress(state)
    uv = find_uv()
    env = uv_env(cache)
    try:
        _run([uv, "venv", "--relocatable", "--no-config", "--quiet", "--python", spec["python"], str(venv)], env, tmp, eid, cache, started, progress, should_stop)
        install = install_args(runtime, tmp, env)
        if install:
            _run([uv, "pip", "install", "--no-config", "--python", str(venv / "bin" / "python"), *install], env, tmp, eid, cache, started, progress, should_stop)
        atomic_write_json(venv / READY, {"env_id": eid, "spec": spec, "built_at": time.time(), "seconds": round(time.time() - started, 3)})
        final = cache.env_dir(eid)
        ensure_dir(final.parent)
        if final.exists():  # a partial leftover (an interrupted prune): never ready, so never used
            shutil.rmtree(final, ignore_errors=True)
        os.rename(venv, final)
    except (BuildFailed, NoSpace) as exc:  # uv's verdict, or merlin's own write (the ready marker) on a full disk
        failed = exc if isinstance(exc, BuildFailed) else BuildFailed(eid, exc.message)
        shutil.rmtree(tmp, ignore_errors=True)  # first: on a full disk, the state file needs that space
        _note(cache, eid, state="failed", started_at=started, error=failed.line, no_space=failed.no_space, finished_at=time.time())
        if failed is exc:
            raise
        raise failed from None
    except BaseException:  # stopped (a cancel), or merlin's own error: not uv's verdict, so a waiting run builds again
        _note(cache, eid, state="stopped", started_at=started, finished_at=time.time())
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _note(cache, eid, state="ready", started_at=started, finished_at=time.time(), seconds=round(time.time() - started, 3), uv=uv_version())


def _note(cache: EnvCache, eid: str, **fields: Any) -> None:
    """The env's state file (progress, the verdict), best effort: on a full disk it may not be
    written, and the build's own outcome must still reach its run."""
    try:
        cache.write_state(eid, **fields)
    except (OSError, NoSpace):
        pass


def install_args(runtime: Mapping[str, Any], tmp: Path, env: Mapping[str, str]) -> list[str]:
    """``uv pip install`` arguments: requirement files written into ``tmp``, packages, index options.
    A lockfile installs exactly what it pins, from where it says: a ``pylock.toml`` as it is
    (``uv pip install -r pylock.toml``), a ``uv.lock`` exported to one first (``uv export
    --format pylock.toml``, in a project made of the lock and its ``pyproject.toml``)."""
    argv: list[str] = []
    if runtime.get("requirements"):
        atomic_write_text(tmp / "requirements.txt", runtime["requirements"])
        argv += ["-r", str(tmp / "requirements.txt")]
    lock = runtime.get("lockfile")
    if lock:
        name = runtime.get("lockfile_name") or "pylock.toml"
        if name == "uv.lock":
            project = tmp / "project"
            ensure_dir(project)
            atomic_write_text(project / "uv.lock", lock)
            atomic_write_text(project / "pyproject.toml", runtime.get("lock_project") or "")
            exported = tmp / "pylock.toml"  # uv.lock's own sources, versions and hashes (a requirements.txt would keep only names and versions)
            proc = subprocess.run(
                [find_uv(), "export", "--frozen", "--no-emit-project", "--no-header", "--format", "pylock.toml", "-o", str(exported)],
                cwd=project, env=dict(env), capture_output=True, text=True,
            )  # fmt: skip
            if proc.returncode != 0:
                raise BuildFailed("", error_line(proc.stderr.splitlines()) or "uv could not read the uv.lock")
            argv += ["-r", str(exported)]
        else:
            atomic_write_text(tmp / name, lock)
            argv += ["-r", str(tmp / name)]
    argv += list(runtime.get("packages") or [])
    if not argv:
        return []
    indexes = list(runtime.get("index_url") or [])
    if indexes:
        argv += ["--default-index", indexes[0]]
        for extra in indexes[1:]:
            argv += ["--index", extra]
    for where in runtime.get("find_links") or []:
        argv += ["--find-links", where]
    if runtime.get("no_index"):
        argv.append("--no-index")
    return argv


def error_line(lines: list[str]) -> str:
    """uv's own error, one line: ``error: ...`` with its ``cause:`` (or ``×`` with ``╰─▶``) lines."""
    picked: list[str] = []
    for i, raw in enumerate(lines):
        text = raw.strip()
        if text.startswith("error:") or text.startswith("×"):
            picked.append(text.removeprefix("error:").lstrip("× ").strip())
            for more in lines[i + 1 : i + 8]:
                m = more.strip().lstrip("│").strip()
                for mark in ("cause:", "╰─▶", "Caused by:"):
                    if m.startswith(mark):
                        picked.append(m.removeprefix(mark).strip())
                        break
                else:
                    if m.startswith("help:") or not m:
                        break
                    if len(picked) > 1:
                        picked[-1] += " " + m
            break
    if not picked:
        picked = [x.strip() for x in lines if x.strip()][-1:]
    return ": ".join(picked)[:600]


def _run(
    argv: list[str], env: Mapping[str, str], cwd: Path, eid: str, cache: EnvCache, started: float,
    progress: Progress | None, should_stop: Callable[[], bool] | None,
) -> None:  # fmt: skip
    """Run uv, turning each output line into the state file's ``line`` (at most twice a second)."""
    proc = subprocess.Popen(argv, cwd=cwd, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, errors="replace")
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    seen: list[str] = []
    last_write = 0.0
    done = False
    while not done:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            line = ""
        if line is None:
            done = True
        elif line.strip():
            seen.append(line)
        now = time.time()
        if seen and now - last_write >= 0.5 or now - last_write >= 5.0:  # the heartbeat, even when uv is silent
            last_write = now
            state = {"state": "building", "started_at": started, "line": seen[-1].strip() if seen else "starting uv", "pid": os.getpid()}
            _note(cache, eid, **state)
            if progress is not None:
                progress(state)
        if should_stop is not None and should_stop():
            proc.kill()
            proc.wait()
            raise BuildStopped(eid)
    if proc.wait() != 0:
        raise BuildFailed(eid, error_line(seen) or f"uv exited with code {proc.returncode}")
