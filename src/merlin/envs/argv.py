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
    layout: Any, run_id: str, attempt: int, runtime: Mapping[str, Any], *, python: str | None = None, cache: Path | None = None, quiet: bool = False
) -> list[str]:
    """``[python, -m, merlin.envs.launch, --spec ..., --cache ..., (--snapshot ...), --]``; writes the
    run's spec file (``Layout.runtime_spec``) first. ``python``: an interpreter that has merlin."""
    spec = layout.runtime_spec(run_id)
    write_if_changed(spec, spec_bytes(runtime))
    argv = [python or sys.executable, "-m", "merlin.envs.launch", "--spec", str(spec), "--cache", str(cache or layout.env_cache())]
    wd = runtime.get("working_dir")
    if wd:
        argv += ["--snapshot", str(layout.snapshot(wd)), "--blobs", str(layout.blobs), "--into", str(layout.run_workdir(run_id, attempt))]
    argv += ["--report", str(layout.env_report(run_id, attempt))]
    if quiet:
        argv.append("--quiet")
    return [*argv, "--"]
