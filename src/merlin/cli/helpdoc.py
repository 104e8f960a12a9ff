"""Help like gh's: an Examples section on every command and metavars that say what to type.

:func:`polish` runs on each command group as ``cli/lazy.py`` loads it: every command
gets its :data:`EXAMPLES` as the help's last section, and every option or argument
without a metavar of its own gets one from :data:`METAVARS` (by its name) or from its
type (``N``, ``PATH``), never a type name (``<str>``) or ``{run_id}``.
``tests/test_cli_help.py`` walks the whole tree: every command has examples, each
example parses, and no help screen shows a type name.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperArgument

RUN = "demo-20261207-101500-a1b2c3"
#: a command's words after ``merlin`` -> its examples (each a command line, then what it does)
EXAMPLES: dict[str, list[tuple[str, str]]] = {
    "": [("merlin targetgen validate capability.yaml", "check a capability spec"), ("merlin ray jobs list --since 1h", "runs of the last hour")],
    "targetgen": [("merlin targetgen plan capability.yaml -o overlay.yaml", "plan a target")],
    "targetgen validate": [("merlin targetgen validate capability.yaml -o overlay.yaml", "check a spec and its overlay")],
    "targetgen schema": [("merlin targetgen schema capability > capability.schema.json", "the capability spec's JSON Schema")],
    "targetgen plan": [("merlin targetgen plan capability.yaml -o overlay.yaml --out-dir build/plans", "write the plan under build/plans/")],
    "targetgen explain": [("merlin targetgen explain capability.yaml -o overlay.yaml", "why each task is in the plan")],
    "targetgen orchestrate": [("merlin targetgen orchestrate capability.yaml -o overlay.yaml", "write the execution bundle")],
    "targetgen execute": [
        ("merlin targetgen execute capability.yaml -o overlay.yaml", "run here until a gate"),
        ("merlin targetgen execute --target-dir build/generated/targetgen/demo --engine ray --cluster lab --wait", "resume as a Ray run"),
    ],
    "targetgen answer": [("merlin targetgen answer --target-dir build/generated/targetgen/demo --question-id q1 --choice yes", "answer a question")],
    "targetgen retry": [("merlin targetgen retry --target-dir build/generated/targetgen/demo --task build --reason 'fixed the toolchain'", "run a task again")],
    "targetgen status": [("merlin targetgen status --target-dir build/generated/targetgen/demo", "where the target stands")],
    "ray": [("merlin ray cluster start-local --name lab", "start a local Ray head"), ("merlin ray jobs list", "list runs")],
    "doctor": [("merlin doctor", "check the environment: one line per check, with the fix"), ("merlin doctor --sweep --json", "and sweep SIGKILL debris, as JSON")],
    "sweep": [("merlin sweep list", "every sweep with its progress")],
    "sweep submit": [
        ("merlin sweep submit sims --inputs 'configs/*.yaml' --parallel 4 --lease firesim_fpga:1 -- ./run_sim.sh {input}", "one run per config, 4 at once"),
        ("merlin sweep submit ladder --range 0-29 --retries 1 -- ./verify.sh --kernel {input}", "30 kernels, each retried once on failure"),
    ],
    "sweep status": [("merlin sweep status sims", "counts, slots in use, throughput, ETA, failures")],
    "sweep summary": [("merlin sweep summary sims --csv > results.csv", "one row per input with its result.json fields")],
    "sweep retry": [("merlin sweep retry sims --failed", "new runs for the failed items only")],
    "sweep cancel": [("merlin sweep cancel sims", "running items end, queued ones never start")],
    "sweep list": [("merlin sweep list --json", "every sweep, as JSON")],
    "envs": [("merlin envs list", "the run environments in the cache")],
    "envs build": [("merlin envs build runtime.yaml", "build an env now, so its first run starts at once")],
    "envs show": [("merlin envs show 3f2a9c1d", "one env: its spec, size and runs")],
    "envs list": [("merlin envs list --json", "every env, as JSON")],
    "envs prune": [("merlin envs prune --older-than 7d --max-size 20G", "drop unused envs, then the least recently used")],
    "ray cluster env": [("eval \"$(merlin ray cluster env lab)\"", "point ray job submit/list, ray status and the SDK at cluster lab")],
    "ray cluster": [("merlin ray cluster list", "every recorded cluster")],
    "ray cluster start": [
        ("merlin ray cluster start --kind slurm --name hpc --nodes 2 --time 2h --partition debug", "a Ray cluster in a Slurm allocation"),
        ("merlin ray cluster start --kind ssh --name lab --host head.lab --ssh-port 2222", "a Ray head over ssh"),
    ],
    "ray cluster start-local": [("merlin ray cluster start-local --name lab --gcs-port 6380 --dashboard-port 8266", "a second local head beside the default")],
    "ray cluster status": [("merlin ray cluster status --name lab", "is it up, and where")],
    "ray cluster stop": [("merlin ray cluster stop --name lab", "stop it and record that")],
    "ray cluster list": [("merlin ray cluster list --json", "every cluster, as JSON")],
    "ray jobs": [("merlin ray jobs list --status failed --since 1d", "what failed today")],
    "ray jobs why": [(f"merlin ray jobs why {RUN[:13]}", "what holds a run back (a unique prefix will do)")],
    "ray jobs submit": [
        ("merlin ray jobs submit --target demo --workflow smoke -- python -c 'print(1)'", "run a command, locally"),
        ("merlin ray jobs submit --target demo --workflow smoke --engine ray --cluster lab --wait -- make test", "on Ray, and wait"),
    ],
    "ray jobs list": [
        ("merlin ray jobs list --status failed --status lost --since 1d", "what failed or was lost in the last day"),
        ("merlin ray jobs list --engine ray --cluster lab --sort updated", "Ray runs on lab, last updated first"),
    ],
    "ray jobs status": [(f"merlin ray jobs status {RUN}", "one run, after asking its engine")],
    "ray jobs events": [(f"merlin ray jobs events {RUN[:13]} --follow", "its history, then new events as they come")],
    "ray jobs prune": [
        ("merlin ray jobs prune --older-than 30d --dry-run", "what would go"),
        ("merlin ray jobs prune --older-than 7d --status failed --status cancelled", "remove old failures"),
    ],
    "ray jobs logs": [(f"merlin ray jobs logs {RUN} --follow", "stream its output until it ends")],
    "ray jobs cancel": [(f"merlin ray jobs cancel {RUN}", "stop it")],
    "ray jobs retry": [(f"merlin ray jobs retry {RUN} --cluster lab --wait", "a new attempt on another cluster")],
    "ray jobs watch": [("merlin ray jobs watch --timeout 10m", "every active run, live, for up to 10 minutes")],
    "ray artifacts": [(f"merlin ray artifacts list {RUN}", "what a run produced")],
    "ray artifacts list": [(f"merlin ray artifacts list {RUN} --json", "its files, with digests")],
    "ray artifacts fetch": [(f"merlin ray artifacts fetch {RUN} report.json --to /tmp/report.json", "copy one out (digest checked)")],
    "ray resources": [("merlin ray resources list", "the inventory and who holds what")],
    "ray resources define": [("merlin ray resources define inventory.yaml", "load the inventory")],
    "ray resources list": [("merlin ray resources list --json", "items and leases, as JSON")],
    "ray resources reserve": [("merlin ray resources reserve fpga:1 --ttl 2h", "reserve one fpga item for two hours")],
    "ray resources run": [("merlin ray resources run fpga:1 -- ./flash.sh", "hold a lease while a command runs")],
    "ray resources renew": [("merlin ray resources renew lease-20261207-a1b2c3 --ttl 1h", "keep it another hour")],
    "ray resources release": [("merlin ray resources release lease-20261207-a1b2c3", "give it back")],
    "ray resources cancel": [("merlin ray resources cancel lease-20261207-a1b2c3", "withdraw a waiting request")],
    "ray resources revoke": [("merlin ray resources revoke lease-20261207-a1b2c3 --reason 'board on fire'", "take it away (admin)")],
    "ray resources show": [("merlin ray resources show lease-20261207-a1b2c3", "one lease")],
    "ray resources queue": [("merlin ray resources queue", "waiting requests in serving order")],
    "ray resources why": [("merlin ray resources why lease-20261207-a1b2c3", "why a request waits")],
    "ray resources drain": [("merlin ray resources drain fpga-0 --reason maintenance", "grant nothing more on an item")],
    "ray resources health": [("merlin ray resources health fpga-0 down --reason 'no link'", "mark an item down")],
    "config": [("merlin config show", "every setting and where it came from")],
    "config show": [("merlin config show", "each value with its origin"), ("merlin config show --json", "the same, as JSON")],
    "completion": [("eval \"$(merlin completion bash)\"", "tab completion in this bash"), ("merlin completion fish > ~/.config/fish/completions/merlin.fish", "for fish, once")],
    "mcp": [("merlin mcp", "serve MCP on stdin/stdout (for an agent)")],
    "serve": [("merlin serve --port 8765", "the HTTP gateway on 127.0.0.1:8765")],
}

#: a parameter's name -> what to type, where the name alone does not say it
METAVARS = {
    "run_id": "RUN_ID", "run_ids": "RUN_ID", "lease_id": "LEASE_ID", "name": "NAME", "cluster": "NAME", "item": "ITEM_ID",
    "target": "TARGET", "workflow": "WORKFLOW", "command": "COMMAND", "bundles": "POOL[:COUNT][,k=v]", "lease": "POOL[:COUNT][,k=v]",
    "resource": "KEY=N", "env": "KEY=VALUE", "label": "KEY=VALUE", "target_dir": "DIR", "out_dir": "DIR", "from_dir": "DIR",
    "capability": "CAPABILITY", "overlay": "FILE", "file": "FILE", "token_file": "FILE", "token_env": "VAR", "to": "PATH", "socket": "PATH",
    "mem": "SIZE", "object_store_memory": "BYTES", "max_body": "BYTES", "host": "HOST", "jump": "HOST", "allow_host": "HOST",
    "workers": "HOST,...", "user": "USER", "partition": "PARTITION", "account": "ACCOUNT", "qos": "QOS", "queue": "QUEUE",
    "sbatch_arg": "OPTION", "select": "CHUNKS", "question_id": "QUESTION_ID", "choice": "CHOICE", "note": "TEXT", "reason": "TEXT",
    "task": "TASK_ID", "cache": "DIR", "max_size": "SIZE", "env_id": "ENV_ID", "pid": "PID", "cors_origin": "ORIGIN", "rate_limit": "PER_SECOND", "state": "STATE", "text": "TEXT",
}


class PlainArgument(TyperArgument):
    """An argument shown by its metavar alone (``RUN_ID``, ``[RUN_ID]...``), not ``{run_id}``."""

    def make_metavar(self, ctx: Any, *, usage: bool = False) -> str:
        var = self.metavar or (self.name or "").upper()
        if self.nargs != 1 and not var.endswith("..."):
            var += "..."
        return f"[{var}]" if usage and not self.required else var


def _metavar(param: Any) -> str:
    if param.name in METAVARS:
        return METAVARS[param.name]
    if "port" in (param.name or ""):
        return "PORT"
    kind = getattr(param.type, "name", "")
    if kind in ("integer", "int", "float"):
        return "N"
    if kind == "path":
        return "PATH"
    return (param.name or "value").upper()


def examples_text(path: str) -> str | None:
    rows = EXAMPLES.get(path)
    if not rows:
        return None
    from merlin.cli.nextsteps import invoked_as

    me = invoked_as()  # spelled as invoked (./merlin), so each example pastes and works
    shown = [(me + cmd[len("merlin"):] if cmd.startswith("merlin ") else cmd.replace("$(merlin ", f"$({me} "), what) for cmd, what in rows]
    # \b: click keeps the block as written (no rewrapping), so each command stays one line
    return "\b\nExamples:\n" + "\n".join(f"  # {what}\n  $ {cmd}" for cmd, what in shown)


def polish(cmd: Any, path: str) -> Any:
    """Examples and metavars on ``cmd`` (the command at ``path``: its words after ``merlin``) and below it."""
    if getattr(cmd, "_merlin_polished", False):
        return cmd
    cmd._merlin_polished = True
    cmd.merlin_path = path
    text = examples_text(path)
    if text and not cmd.epilog:
        cmd.epilog = text
    for param in getattr(cmd, "params", []):
        if param.param_type_name == "argument" and isinstance(param, TyperArgument):
            param.__class__ = PlainArgument
            if param.metavar is None:
                param.metavar = _metavar(param)
        elif param.param_type_name == "option" and param.metavar is None and not getattr(param, "is_flag", False):
            param.metavar = _metavar(param)
    for name, sub in (getattr(cmd, "commands", None) or {}).items():
        polish(sub, f"{path} {name}".strip())
    return cmd
