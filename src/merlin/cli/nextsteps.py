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
    from merlin.cli.entry import _state_root_arg

    root = _state_root_arg(list(args or []))
    return ["--state-root", root] if root else []


def _name(args: dict[str, Any]) -> list[str]:
    name = args.get("name", "default")
    return [] if name == "default" else ["--name", str(name)]


#: ``cluster start`` flags a non-local kind's recorded options map to (the rest are merlin's own bookkeeping)
START_FLAGS = ("nodes", "cpus_per_node", "gpus_per_node", "mem", "time", "partition", "account", "qos", "select", "walltime",
               "queue", "host", "jump", "user", "workers", "port", "object_store_memory", "env_cache")  # fmt: skip


def _start_words(a: dict[str, Any]) -> list[str]:
    """``cluster start-local`` with its ports and resources, or ``cluster start --kind K`` with the recorded options."""
    kind = a.get("kind")
    if kind and kind != "local":
        words = ["ray", "cluster", "start", "--kind", str(kind), *_name(a)]
        opts = dict(a.get("options") or {})
        for key in START_FLAGS:
            if opts.get(key) not in (None, "", [], ()):
                value = str(opts[key])
                if key in ("time", "walltime") and value.isdigit():  # recorded before the one duration grammar: Slurm read minutes, PBS seconds
                    value += "m" if key == "time" else "s"
                words += ["--ssh-port" if key == "port" else "--" + key.replace("_", "-"), value]
        words += sum((["--sbatch-arg", str(x)] for x in opts.get("sbatch_args") or []), [])
        if opts.get("idle_timeout"):
            words += ["--idle-timeout", f"{float(opts['idle_timeout']):g}s"]
        return words
    words = ["ray", "cluster", "start-local", *_name(a)]
    for key, flag in (("host", "--host"), ("port", "--gcs-port"), ("dashboard_port", "--dashboard-port"), ("num_cpus", "--num-cpus"), ("num_gpus", "--num-gpus")):
        if a.get(key) is not None:
            v = a[key]
            words += [flag, f"{v:g}" if isinstance(v, float) else str(v)]
    for k, v in sorted((a.get("resources") or {}).items()):
        words += ["--resource", f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}"]
    return words


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
        words = [*_start_words(a), *root]
    elif act == Action.CLUSTER_STATUS:
        words = ["ray", "cluster", "status", *_name(a), *root]
    elif act == Action.LIST_CLUSTERS:
        words = ["ray", "cluster", "list", *root]
    elif act == Action.INSTALL:
        return f".venv/bin/pip install {shlex.quote(a['package'])}"
    elif act == Action.TARGETGEN_EXECUTE:
        extra = ["--engine", a["engine"]] if a.get("engine") else []
        if a.get("cluster"):  # always spelled: a default taken from elsewhere must not move the run
            extra += ["--cluster", a["cluster"]]
        words = ["targetgen", "execute", "--target-dir", str(a["target_dir"]), *extra, *root]
    elif act == Action.TARGETGEN_ANSWER:
        words = ["targetgen", "answer", "--target-dir", str(a["target_dir"]), "--question-id", a["question_id"], "--choice", a["choice"]]
    elif act == Action.TARGETGEN_RESPOND:
        where = f" (prompt {a['prompt_file']})" if a.get("prompt_file") else ""
        return f"write {a['response_file']}{where}"
    elif act == Action.TARGETGEN_STATUS:
        words = ["targetgen", "status", "--target-dir", str(a["target_dir"])]
    elif act == Action.TARGETGEN_RETRY:
        words = ["targetgen", "retry", "--target-dir", str(a["target_dir"]), "--task", a["task"]]
    elif act in (Action.RUN_AGAIN, Action.SCHEDULER_QUERY):
        return shlex.join([str(x) for x in a["argv"]])
    elif act == Action.WHY:
        words = ["ray", "jobs", "why", a["run_id"], *root]
    elif act == Action.STOP_CLUSTER:
        words = ["ray", "cluster", "stop", *_name(a), *(["--force"] if a.get("force") else []), *root]
    elif act == Action.LEASES_LIST:
        words = ["ray", "resources", "list", *root]
    elif act == Action.LEASES_QUEUE:
        words = ["ray", "resources", "queue", *root]
    elif act == Action.LEASE_WHY:
        words = ["ray", "resources", "why", a["lease_id"], *root]
    elif act == Action.RESERVE:
        words = ["ray", "resources", "reserve", *[str(b) for b in a["bundles"]], *(["--priority", str(a["priority"])] if a.get("priority") else []), *root]
    elif act == Action.RELEASE:
        force = ["--force", "--reason", a.get("reason") or "WHY"] if a.get("force") else []
        words = ["ray", "resources", "release", a["lease_id"], *force, *root]
    elif act == Action.ITEM_HEALTH:
        words = ["ray", "resources", "health", a["item"], a["state"], "--reason", a.get("reason") or "WHY", *root]
    elif act == Action.DRAIN_ITEM:
        words = ["ray", "resources", "drain", a["item"], *(["--undo"] if a.get("undo") else []), *(["--reason", a["reason"]] if a.get("reason") else []), *root]
    elif act == Action.DEFINE_INVENTORY:
        words = ["ray", "resources", "define", str(a.get("file") or "FILE"), *root]
    elif act == Action.SWEEP_STATUS:
        words = ["sweep", "status", a["name"], *root]
    elif act == Action.SWEEP_RETRY:
        which = [*(["--failed"] if a.get("failed", True) else []), *(["--cancelled"] if a.get("cancelled") else [])]
        words = ["sweep", "retry", a["name"], *which, *root]
    else:  # pragma: no cover - every Action is handled above
        raise ValueError(act)
    return " ".join([me, *(quote(str(w)) for w in words)])


def quote(word: str) -> str:
    """A word as a shell reads it back: ``shlex.quote``, or bash's ``$'...'`` when it holds control
    characters (a path with ESC in it), so a printed command never carries a raw escape to the terminal."""
    if word.isprintable():
        return shlex.quote(word)
    out = []
    for ch in word:
        if ch == "\\" or ch == "'":
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
    return "$'" + "".join(out) + "'"


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


def condition_lines(c: dict[str, Any], argv: Iterable[str] | None = None, layer: bool = True) -> list[str]:
    """One condition of ``jobs why`` / ``resources why``: ``[layer/code] message``, its hint, its steps."""
    head = f"[{c['layer']}/{c['code']}]" if layer else f"[{c['code']}]"
    lines = [f"{head} {c['message']}"]
    if c.get("hint"):
        lines.append(f"    {c['hint']}")
    lines += [f"    {line}" for line in render_all(c.get("next_steps"), argv)]
    return lines


def say_next(steps: Iterable[dict[str, Any]] | None) -> None:
    """Print the steps of a result on stderr (the CLI's argv gives the context)."""
    import sys

    for line in render_all(steps, ARGV or sys.argv[1:]):
        sys.stderr.write(line + "\n")
