"""``python -m merlin.envs.launch --spec FILE --cache DIR [options] -- COMMAND...``

The one launcher every engine runs a command through (the local supervisor, Ray's
job entrypoint; Slurm and SSH nodes the same way). Given the runtime spec (the
``runtime`` object of run_request.json, as JSON) and the env cache, it builds or
reuses the env (``merlin.envs.build.ensure``), copies the working-dir snapshot
into place when given one, and runs COMMAND with the env's ``bin`` first on PATH,
``VIRTUAL_ENV`` set, ``PYTHONNOUSERSITE=1`` and ``PYTHONPATH``/``PYTHONHOME``
removed. Secret values are whatever its own environment holds (it passes them
on; it never writes them). Then it *becomes* the command (``exec``): no Python stays
between the command and the engine, so signals reach the command itself and its exit
code (or signal) is the run's. A warm env (its ready marker present) costs one
interpreter start, a few small imports, the marker check and the user mark: no
builder, no lock, no uv, no child process. A build that fails exits
:data:`BUILD_FAILED` with uv's error line on stderr, prefixed ``merlin-env: failed:``;
a command that cannot start exits 127.

Options: ``--spec-inline B64`` instead of ``--spec`` (the spec itself, base64 of its JSON: for
nodes that do not see the state root, e.g. SSH hosts), ``--snapshot MANIFEST --blobs DIR --into DIR`` (the working dir),
``--report FILE`` (writes ``{"env_id", "cache"}`` once the env is ready),
``--cache`` may hold ``~`` and ``$VARS``, expanded on the node (``$TMPDIR/merlin-envs``: a per-node cache),
``--quiet`` (no progress lines on stderr), ``--usage FILE`` (once the command has ended, writes its resource
use there: ``wall_s``, ``cpu_s`` (user + system CPU of its process tree) and ``max_rss_bytes``, from
``wait4(2)``; the run's record takes it when the run is seen to end). With ``--usage`` and no spec it only
measures: no env, the command as it is (how a Ray job without a runtime is wrapped). With ``--usage`` the
launcher stays the command's parent (to wait for it): it forwards SIGTERM, SIGINT and SIGHUP and exits
with the command's code (a command killed by a signal: the same signal); without it, it ``exec``s.
``--memory BYTES`` (the run's memory limit, on engines that only reserve it, as Ray does): the launcher
stays the parent, samples the resident memory of the command's tree as the local supervisor does
(``merlin.envs.memory_watch``) and ends it with SIGKILL once it is over, saying so on stderr in one
line that starts with :data:`MEMORY_LINE` (the engine reads it in the job's log: ``MEMORY_LIMIT``).
Like ``--usage``, it also works with no spec (no env: the command as it is).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

#: the launcher's exit code when the env could not be built (the command never ran)
BUILD_FAILED = 78
#: the names of the options that take a value (``quiet`` is the one flag)
VALUED = ("spec", "spec-inline", "cache", "snapshot", "blobs", "into", "report", "usage", "memory")
#: how the launcher's line about a command it ended for its memory starts (read back by the Ray engine)
MEMORY_LINE = "merlin-env: memory limit: "


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


def quick_options(args: list[str]) -> dict[str, str | bool] | None:
    """The options as :func:`merlin.envs.argv.launcher_argv` writes them (``--name value``, ``--quiet``),
    read without argparse (its import is a good part of a warm start); None for anything else,
    which :func:`parsed_options` leaves to argparse and its error lines."""
    out: dict[str, str | bool] = {"quiet": False}
    i = 0
    while i < len(args):
        name = args[i]
        if name == "--quiet":
            out["quiet"] = True
            i += 1
        elif name.startswith("--") and name[2:] in VALUED and i + 1 < len(args) and name[2:].replace("-", "_") not in out:
            out[name[2:].replace("-", "_")] = args[i + 1]
            i += 2
        else:
            return None
    if "spec" not in out and "spec_inline" not in out and "cache" not in out and ("usage" in out or "memory" in out):
        return out  # a measurer (or a memory watch) only
    if ("spec" in out) == ("spec_inline" in out) or "cache" not in out:
        return None
    return out


def parsed_options(args: list[str]) -> dict[str, str | bool]:
    quick = quick_options(args)
    if quick is not None:
        return quick
    import argparse

    p = argparse.ArgumentParser(prog="merlin.envs.launch")
    spec_from = p.add_mutually_exclusive_group()
    spec_from.add_argument("--spec")
    spec_from.add_argument("--spec-inline")
    cache_arg = p.add_argument("--cache")
    for name in VALUED[3:]:
        p.add_argument(f"--{name}")
    p.add_argument("--quiet", action="store_true")
    opts = p.parse_args(args)
    if not (opts.spec is None and opts.spec_inline is None and (opts.usage is not None or opts.memory is not None)):
        spec_from.required = cache_arg.required = True  # an env to launch: argparse says what is missing
        opts = p.parse_args(args)
    return {k: v for k, v in vars(opts).items() if v is not None}


def main(argv: list[str] | None = None) -> int:
    """Prepare the env, then become the command (``exec``): on a warm env (the ready marker is
    there) this imports no builder, takes no lock and starts no process; the command keeps this
    pid, so the env's user mark (pid, host, start time) holds while it runs, and its signals
    and exit code are its own."""
    args = sys.argv[1:] if argv is None else argv
    if "--" not in args:
        sys.stderr.write("merlin-env: no command: give it after a lone -- (see the merlin.envs.launch docstring)\n")
        return 2
    cut = args.index("--")
    command = args[cut + 1 :]
    opts = parsed_options(args[:cut])
    if not command:
        sys.stderr.write("merlin-env: no command after --\n")
        return 2
    usage = str(opts["usage"]) if opts.get("usage") else None
    memory = memory_option(opts.get("memory"))
    if memory == -1:
        return 2
    if not opts.get("spec") and not opts.get("spec_inline") and (usage is not None or memory is not None):
        return run(command, dict(os.environ), None, usage, memory)  # a measurer (or a memory watch) only: no env

    from merlin.envs.cache import EnvCache
    from merlin.envs.spec import env_id, inline_spec, needs_build, read_spec

    runtime = inline_spec(str(opts["spec_inline"])) if opts.get("spec_inline") else read_spec(Path(str(opts["spec"])))
    cache = EnvCache(Path(os.path.expandvars(os.path.expanduser(str(opts["cache"])))).absolute())
    report = Path(str(opts["report"])) if opts.get("report") else None
    quiet = bool(opts.get("quiet"))
    env_dir: Path | None = None
    user: Path | None = None
    if needs_build(runtime):
        eid = env_id(runtime)
        if not quiet:  # first word in the job's log: an engine that reads it knows the command has not started
            sys.stderr.write(f"merlin-env: preparing {eid}\n")
            sys.stderr.flush()
        for _ in range(3):
            if cache.ready(eid):
                cache.touch(eid)
                env_dir, how = cache.env_dir(eid), "hit"
            else:
                built = build(runtime, cache, eid, report, quiet)
                if built is None:
                    return BUILD_FAILED
                env_dir, how = built
            user = cache.add_user(eid)
            if cache.ready(eid):
                break
            user.unlink(missing_ok=True)  # pruned between the check and the mark: build it again
        if report is not None:
            write_report(report, {"state": "ready", "env_id": eid, "cache": how, "cache_dir": str(cache.root)})
        if not quiet:
            # the whole id: the engine reads it from the job's log where no report file can be written (--spec-inline)
            sys.stderr.write(f"merlin-env: environment {eid} ({'cache hit' if how == 'hit' else 'built'})\n")
            sys.stderr.flush()
    cwd = None
    if opts.get("snapshot"):
        from merlin.envs.snapshot import materialize

        cwd = materialize(Path(str(opts["snapshot"])), Path(str(opts["blobs"])), Path(str(opts["into"])))
    env = child_env(env_dir, dict(os.environ))
    try:
        return run(command, env, cwd, usage, memory) if usage is not None or memory is not None else become(command, env, cwd)
    finally:  # the command ended (measured), or could not start (exec does not return)
        if user is not None:
            user.unlink(missing_ok=True)


def build(runtime: dict, cache: object, eid: str, report: Path | None, quiet: bool) -> tuple[Path, str] | None:
    """The cold path: build (or wait for another's build of) the env under its lock, with progress
    lines on stderr; ``(env dir, "hit" | "built")``, or None when uv failed (its line on stderr)."""
    import time

    from merlin.envs.build import BuildFailed, ensure
    from merlin.envs.cache import EnvCache

    assert isinstance(cache, EnvCache)
    last: dict = {"line": None, "reported": False}

    def progress(state: dict) -> None:
        if report is not None and not last["reported"]:
            last["reported"] = True
            write_report(report, {"state": "building", "env_id": eid, "cache_dir": str(cache.root)})
        line = state.get("line")
        if not quiet and line and line != last["line"]:
            last["line"] = line
            # the whole id, as in the ready line: an engine that reads the job's log names the env it waits for
            sys.stderr.write(f"merlin-env: building {eid} ({time.time() - float(state.get('started_at') or time.time()):.0f}s): {line}\n")
            sys.stderr.flush()

    try:
        env_dir, _eid, how = ensure(runtime, cache, progress=progress)
    except BuildFailed as exc:
        if report is not None:  # read by the run's observer: the run is blocked, not failed (its command never ran)
            write_report(report, {"state": "failed", "env_id": eid, "line": exc.line, "no_space": exc.no_space, "cache_dir": str(cache.root)})
        sys.stderr.write(f"merlin-env: failed: {exc.line}\n")
        return None
    return env_dir, how


def write_report(path: Path, data: dict) -> None:
    """The report the run's observer reads (env id, hit or built): written whole, without fsync
    (it is read back within seconds by the same machine's observer, or written again by a retry)."""
    from merlin.atomic import atomic_write_json, dump_json, file_mode, replace_file

    try:
        replace_file(str(path), dump_json(data).encode("utf-8"), mode=file_mode(), fsync=False)
    except FileNotFoundError:
        atomic_write_json(path, data)


def become(command: list[str], env: dict[str, str], cwd: Path | None) -> int:
    """Become ``command`` (found on ``env``'s PATH, as a child would be), in ``cwd``; returns
    only when it cannot start: 127, with the reason on stderr."""
    try:
        if cwd is not None:
            os.chdir(cwd)
        sys.stdout.flush()
        sys.stderr.flush()
        os.execvpe(command[0], command, env)
    except OSError as exc:
        sys.stderr.write(f"merlin-env: cannot start {command[0]}: {exc.strerror or exc}\n")
    return 127


def memory_option(value: object) -> int | None:
    """``--memory BYTES`` as an int (None: not given; -1: not a positive whole number, said on stderr)."""
    if value is None or value is False:
        return None
    text = str(value)
    if not text.isdigit() or int(text) < 1:
        sys.stderr.write(f"merlin-env: a memory limit is a positive number of bytes, not {text!r}\n")
        return -1
    return int(text)


def run(command: list[str], env: dict[str, str], cwd: Path | None, usage: str | None = None, memory: int | None = None) -> int:
    """Start ``command``, forward signals to it, wait; its exit code (or its signal, raised on us).
    With ``usage``: the command's resource use is written there first (:func:`write_usage`).
    With ``memory``: the command's tree is ended (SIGKILL) once its resident memory is over it,
    and one line starting with :data:`MEMORY_LINE` says so on stderr."""
    import signal
    import subprocess
    import time

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
    if memory is not None:
        from merlin.envs.memory_watch import MemoryWatch

        with MemoryWatch([child.pid], memory) as watch:
            _pid, status, ru = os.wait4(child.pid, 0)
        if watch.over is not None:
            from merlin.envs.memory_watch import over_text

            sys.stderr.write(f"{MEMORY_LINE}{over_text(watch.over, memory)}\n")
            sys.stderr.flush()
    else:
        _pid, status, ru = os.wait4(child.pid, 0)  # the command's own use and its waited-for descendants'
    rc = child.returncode = os.waitstatus_to_exitcode(status)
    if usage:
        write_usage(Path(usage), time.monotonic() - t0, ru)
    if rc < 0:  # end as the command ended, so the run's end reads as the signal, not as exit 1
        try:
            signal.signal(-rc, signal.SIG_DFL)
        except (OSError, ValueError):  # SIGKILL and SIGSTOP have no handler to reset
            pass
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
