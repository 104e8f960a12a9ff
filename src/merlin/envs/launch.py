"""``python -m merlin.envs.launch --spec FILE --cache DIR [options] -- COMMAND...``

The one launcher every engine runs a command through (the local supervisor, Ray's
job entrypoint; Slurm and SSH nodes the same way). Given the runtime spec (the
``runtime`` object of run_request.json, as JSON) and the env cache, it builds or
reuses the env (``merlin.envs.build.ensure``), copies the working-dir snapshot
into place when given one, and runs COMMAND with the env's ``bin`` first on PATH,
``VIRTUAL_ENV`` set, ``PYTHONNOUSERSITE=1`` and ``PYTHONPATH``/``PYTHONHOME``
removed. Secret values are whatever its own environment holds (it passes them
on; it never writes them). It forwards SIGTERM, SIGINT and SIGHUP to the command,
waits, and exits with the command's code (a command killed by a signal: the same
signal). A build that fails exits :data:`BUILD_FAILED` with uv's error line on
stderr, prefixed ``merlin-env: failed:``.

Options: ``--spec-inline B64`` instead of ``--spec`` (the spec itself, base64 of its JSON: for
nodes that do not see the state root, e.g. SSH hosts), ``--snapshot MANIFEST --blobs DIR --into DIR`` (the working dir),
``--report FILE`` (writes ``{"env_id", "cache"}`` once the env is ready),
``--cache`` may hold ``~`` and ``$VARS``, expanded on the node (``$TMPDIR/merlin-envs``: a per-node cache),
``--quiet`` (no progress lines on stderr), ``--usage FILE`` (once the command has ended, writes its resource
use there: ``wall_s``, ``cpu_s`` (user + system CPU of its process tree) and ``max_rss_bytes``, from
``wait4(2)``; the run's record takes it when the run is seen to end). With ``--usage`` and no spec it only
measures: no env, the command as it is (how a Ray job without a runtime is wrapped).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

#: the launcher's exit code when the env could not be built (the command never ran)
BUILD_FAILED = 78


def child_env(env_dir: Path | None, base: dict[str, str]) -> dict[str, str]:
    """The command's environment: the env's bin first, VIRTUAL_ENV, no user site, no PYTHONPATH."""
    env = dict(base)
    for name in ("PYTHONPATH", "PYTHONHOME", "MERLIN_SUPERVISOR_COMMAND", "__PYVENV_LAUNCHER__"):
        env.pop(name, None)
    env["PYTHONNOUSERSITE"] = "1"
    if env_dir is not None:
        env["VIRTUAL_ENV"] = str(env_dir)
        env["PATH"] = os.pathsep.join([str(env_dir / "bin"), *[p for p in env.get("PATH", "").split(os.pathsep) if p]])
    return env


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--" not in args:
        sys.stderr.write("merlin-env: no command: give it after a lone -- (see the merlin.envs.launch docstring)\n")
        return 2
    cut = args.index("--")
    command = args[cut + 1 :]
    p = argparse.ArgumentParser(prog="merlin.envs.launch")
    spec_from = p.add_mutually_exclusive_group()
    spec_from.add_argument("--spec")
    spec_from.add_argument("--spec-inline")
    cache_arg = p.add_argument("--cache")
    p.add_argument("--snapshot")
    p.add_argument("--blobs")
    p.add_argument("--into")
    p.add_argument("--report")
    p.add_argument("--usage")
    p.add_argument("--quiet", action="store_true")
    opts = p.parse_args(args[:cut])
    if not command:
        sys.stderr.write("merlin-env: no command after --\n")
        return 2
    if opts.spec is None and opts.spec_inline is None and opts.usage is not None:
        return run(command, dict(os.environ), None, opts.usage)  # a measurer only: no env
    spec_from.required = cache_arg.required = True  # an env to launch: argparse says what is missing
    opts = p.parse_args(args[:cut])

    from merlin.envs.cache import EnvCache
    from merlin.envs.spec import inline_spec, needs_build, read_spec

    runtime = inline_spec(opts.spec_inline) if opts.spec_inline else read_spec(Path(opts.spec))
    cache = EnvCache(Path(os.path.expandvars(os.path.expanduser(opts.cache))).absolute())
    env_dir: Path | None = None
    user: Path | None = None
    if needs_build(runtime):
        from merlin.envs.build import BuildFailed, ensure

        last: dict = {"line": None, "reported": False}

        def progress(state: dict) -> None:
            if opts.report and not last["reported"]:
                from merlin.atomic import atomic_write_json
                from merlin.envs.spec import env_id

                last["reported"] = True
                atomic_write_json(Path(opts.report), {"state": "building", "env_id": env_id(runtime), "cache_dir": str(cache.root)})
            line = state.get("line")
            if not opts.quiet and line and line != last["line"]:
                last["line"] = line
                sys.stderr.write(f"merlin-env: building ({time.time() - float(state.get('started_at') or time.time()):.0f}s): {line}\n")
                sys.stderr.flush()

        for _ in range(3):
            try:
                env_dir, eid, how = ensure(runtime, cache, progress=progress)
            except BuildFailed as exc:
                sys.stderr.write(f"merlin-env: failed: {exc.line}\n")
                return BUILD_FAILED
            user = cache.add_user(eid)
            if cache.ready(eid):
                break
            user.unlink(missing_ok=True)  # pruned between the check and the mark: build it again
        if opts.report:
            from merlin.atomic import atomic_write_json

            atomic_write_json(Path(opts.report), {"state": "ready", "env_id": eid, "cache": how, "cache_dir": str(cache.root)})
        if not opts.quiet:
            sys.stderr.write(f"merlin-env: environment {eid[:12]} ({'cache hit' if how == 'hit' else 'built'})\n")
            sys.stderr.flush()
    cwd = None
    if opts.snapshot:
        from merlin.envs.snapshot import materialize

        cwd = materialize(Path(opts.snapshot), Path(opts.blobs), Path(opts.into))
    try:
        return run(command, child_env(env_dir, dict(os.environ)), cwd, opts.usage)
    finally:
        if user is not None:
            try:
                user.unlink()
            except OSError:
                pass


def run(command: list[str], env: dict[str, str], cwd: Path | None, usage: str | None = None) -> int:
    """Start ``command``, forward signals to it, wait; its exit code (or its signal, raised on us).
    With ``usage``: the command's resource use is written there first (:func:`write_usage`)."""
    t0 = time.monotonic()
    try:
        child = subprocess.Popen(command, env=env, cwd=str(cwd) if cwd else None)
    except OSError as exc:
        sys.stderr.write(f"merlin-env: cannot start {command[0]}: {exc.strerror or exc}\n")
        return 127

    def forward(signum: int, _frame: object) -> None:
        try:
            child.send_signal(signum)
        except ProcessLookupError:
            pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    _pid, status, ru = os.wait4(child.pid, 0)  # the command's own use and its waited-for descendants'
    rc = child.returncode = os.waitstatus_to_exitcode(status)
    if usage:
        write_usage(Path(usage), time.monotonic() - t0, ru)
    if rc < 0:
        signal.signal(-rc, signal.SIG_DFL)
        os.kill(os.getpid(), -rc)
    return rc


def write_usage(path: Path, wall: float, ru: object) -> None:
    """``{wall_s, cpu_s, max_rss_bytes}`` of a waited-for command (the keys an attempt's ``usage`` has); never fails the run."""
    try:
        from merlin.atomic import atomic_write_json

        cpu = float(getattr(ru, "ru_utime", 0.0)) + float(getattr(ru, "ru_stime", 0.0))
        rss = int(getattr(ru, "ru_maxrss", 0)) * (1 if sys.platform == "darwin" else 1024)
        atomic_write_json(path, {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "max_rss_bytes": float(rss)})
    except Exception as exc:  # a full disk, an unwritable run dir: the command's result stands
        sys.stderr.write(f"merlin-env: could not record the resource use: {exc}\n")


def read_usage(path: Path) -> dict[str, float] | None:
    """What :func:`write_usage` wrote (None if nothing, or not that shape)."""
    data = report_line(path)
    if not isinstance(data, dict) or not all(isinstance(data.get(k), (int, float)) for k in ("wall_s", "cpu_s", "max_rss_bytes")):
        return None
    return {k: float(data[k]) for k in ("wall_s", "cpu_s", "max_rss_bytes")}


def report_line(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


if __name__ == "__main__":
    sys.exit(main())
