"""Render next steps (:mod:`merlin.nextsteps`) as commands a user can paste.

Spelled the way the user invoked merlin (``$MERLIN_INVOKED_AS``, which the
``./merlin`` wrapper exports; ``merlin`` otherwise) and keeping the context of
the command line: a non-default ``--state-root`` is repeated.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable
from typing import Any

from merlin.nextsteps import Action

#: this process's command line, as main() received it (for the context flags)
ARGV: list[str] = []


def invoked_as() -> str:
    return os.environ.get("MERLIN_INVOKED_AS") or "merlin"


def state_root_flag(args: Iterable[str] | None) -> list[str]:
    """``--state-root X`` if the command line gave one (the environment carries $MERLIN_STATE_ROOT by itself)."""
    from merlin.cli.app import _state_root_arg

    root = _state_root_arg(list(args or []))
    return ["--state-root", root] if root else []


def _name(args: dict[str, Any]) -> list[str]:
    name = args.get("name", "default")
    return [] if name == "default" else ["--name", str(name)]


def command(s: dict[str, Any], argv: Iterable[str] | None = None) -> str:
    """One step as a shell command (or, for a file to write, a sentence)."""
    act = Action(s["action"])
    a = s.get("args", {})
    me = invoked_as()
    root = state_root_flag(argv)
    words: list[str]
    if act == Action.RETRY:
        words = ["ray", "jobs", "retry", a["run_id"], *(["--cluster", a["cluster"]] if a.get("cluster") else []), *root]
    elif act == Action.CANCEL:
        words = ["ray", "jobs", "cancel", a["run_id"], *root]
    elif act == Action.LOGS:
        words = ["ray", "jobs", "logs", a["run_id"], *(["--follow"] if a.get("follow") else []), *(["--attempt", str(a["attempt"])] if a.get("attempt") else []), *root]
    elif act == Action.STATUS:
        words = ["ray", "jobs", "status", a["run_id"], *root]
    elif act == Action.ARTIFACTS:
        words = ["ray", "artifacts", "list", a["run_id"], *root]
    elif act == Action.LIST_RUNS:
        words = ["ray", "jobs", "list", *sum((["--status", x] for x in a.get("status") or []), []), *root]
    elif act == Action.START_CLUSTER:
        words = ["ray", "cluster", "start-local", *_name(a)]
        for key, flag in (("host", "--host"), ("port", "--port"), ("dashboard_port", "--dashboard-port"), ("num_cpus", "--num-cpus"), ("num_gpus", "--num-gpus")):
            if a.get(key) is not None:
                v = a[key]
                words += [flag, f"{v:g}" if isinstance(v, float) else str(v)]
        for k, v in sorted((a.get("resources") or {}).items()):
            words += ["--resource", f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}"]
        words += root
    elif act == Action.CLUSTER_STATUS:
        words = ["ray", "cluster", "status", *_name(a), *root]
    elif act == Action.LIST_CLUSTERS:
        words = ["ray", "cluster", "list", *root]
    elif act == Action.INSTALL:
        return f".venv/bin/pip install {shlex.quote(a['package'])}"
    elif act == Action.TARGETGEN_EXECUTE:
        extra = ["--engine", a["engine"]] if a.get("engine") else []
        if a.get("cluster") and a["cluster"] != "default":
            extra += ["--cluster", a["cluster"]]
        words = ["targetgen", "execute", "--from-dir", str(a["target_dir"]), *extra, *(root if a.get("engine") else [])]
    elif act == Action.TARGETGEN_ANSWER:
        words = ["targetgen", "answer", "--target-dir", str(a["target_dir"]), "--question-id", a["question_id"], "--choice", a["choice"]]
    elif act == Action.TARGETGEN_RESPOND:
        where = f" (prompt {a['prompt_file']})" if a.get("prompt_file") else ""
        return f"write {a['response_file']}{where}"
    elif act == Action.TARGETGEN_STATUS:
        words = ["targetgen", "status", "--target-dir", str(a["target_dir"])]
    elif act == Action.TARGETGEN_RETRY:
        words = ["targetgen", "retry", "--target-dir", str(a["target_dir"]), "--task", a["task"]]
    elif act == Action.RUN_AGAIN:
        return shlex.join([str(x) for x in a["argv"]])
    else:  # pragma: no cover - every Action is handled above
        raise ValueError(act)
    return " ".join([me, *(shlex.quote(str(w)) for w in words)])


def render_all(steps: Iterable[dict[str, Any]] | None, argv: Iterable[str] | None = None) -> list[str]:
    """``next: COMMAND`` lines, one per step."""
    argv = list(argv or [])
    return [f"next: {command(s, argv)}" for s in (steps or [])]


def with_next(lines: list[str], steps: Iterable[dict[str, Any]] | None, argv: Iterable[str] | None = None) -> list[str]:
    """An error's lines with its next steps on the last one (an error stays one line)."""
    cmds = [command(s, list(argv or [])) for s in (steps or [])]
    if not cmds or not lines:
        return list(lines)
    return [*lines[:-1], lines[-1].rstrip() + "; next: " + "; then ".join(f"`{c}`" for c in cmds)]


def say_next(steps: Iterable[dict[str, Any]] | None) -> None:
    """Print the steps of a result on stderr (the CLI's argv gives the context)."""
    import sys

    for line in render_all(steps, ARGV or sys.argv[1:]):
        sys.stderr.write(line + "\n")
