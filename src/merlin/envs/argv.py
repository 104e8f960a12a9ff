"""The launcher's command line for a run (what each engine puts before the command)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from merlin.atomic import write_if_changed

#: RuntimeEnv fields the launcher never reads (values travel in the run's environment, or are records only)
NOT_IN_SPEC = ("env_vars",)


def spec_bytes(runtime: Mapping[str, Any]) -> bytes:
    return json.dumps({k: v for k, v in runtime.items() if k not in NOT_IN_SPEC}, sort_keys=True, indent=1).encode("utf-8")


def launcher_argv(
    layout: Any,
    run_id: str,
    attempt: int,
    runtime: Mapping[str, Any],
    *,
    python: str | None = None,
    cache: Path | str | None = None,
    quiet: bool = False,
    inline: bool = False,
    usage: bool = False,
    memory: int | None = None,
) -> list[str]:
    """``[python, -m, merlin.envs.launch, --spec ..., --cache ..., (--snapshot ...), --]``, after the
    warm path's ``[/bin/sh, -c, SCRIPT, merlin-env]`` where it applies (``merlin.envs.warm``: a ready
    env runs the command with no Python in between, anything else reaches the launcher); writes the
    run's spec file (``Layout.runtime_spec``) first. ``python``: an interpreter that has merlin on the
    node; ``cache``: the env cache as the node sees it (``~``/``$VARS`` expand there).
    ``inline``: for nodes that do not see the state root (SSH hosts): the spec rides on the command
    line, and there is no report file (nor a working dir: the caller refuses one). ``memory``: the
    launcher holds the command to that many bytes (for engines that only reserve memory)."""
    from merlin.envs.warm import warm_prefix

    spec = layout.runtime_spec(run_id)
    body = spec_bytes(runtime)
    write_if_changed(spec, body)
    where = str(cache or layout.env_cache())
    argv = [python or sys.executable, "-m", "merlin.envs.launch"]
    if inline:
        import base64

        compact = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode("utf-8")
        argv += ["--spec-inline", base64.b64encode(compact).decode("ascii"), "--cache", where, *memory_option(memory), *(["--quiet"] if quiet else []), "--"]
        return [*warm_prefix(runtime, where, report=None, quiet=quiet, memory=memory), *argv]
    argv += ["--spec", str(spec), "--cache", where]
    wd = runtime.get("working_dir")
    if wd:
        argv += ["--snapshot", str(layout.snapshot(wd)), "--blobs", str(layout.blobs), "--into", str(layout.run_workdir(run_id, attempt))]
    report = str(layout.env_report(run_id, attempt))
    argv += ["--report", report]
    measure = str(layout.usage_report(run_id, attempt)) if usage else None
    if measure is not None:
        argv += ["--usage", measure]
    argv += memory_option(memory)
    if quiet:
        argv.append("--quiet")
    return [*warm_prefix(runtime, where, report=report, quiet=quiet, usage=measure, memory=memory), *argv, "--"]


def memory_option(memory: int | None) -> list[str]:
    return ["--memory", str(int(memory))] if memory is not None else []


def usage_argv(layout: Any, run_id: str, attempt: int, *, python: str | None = None, usage: bool = True, memory: int | None = None) -> list[str]:
    """The launcher as a measurer only (no env): ``[python, -m, merlin.envs.launch, --usage FILE, --quiet, --]``,
    the attempt's resource use written to ``Layout.usage_report`` (for nodes that see the state root;
    ``usage=False`` for others), and with ``memory`` the command held to that many bytes."""
    measure = ["--usage", str(layout.usage_report(run_id, attempt))] if usage else []
    return [python or sys.executable, "-m", "merlin.envs.launch", *measure, *memory_option(memory), "--quiet", "--"]
