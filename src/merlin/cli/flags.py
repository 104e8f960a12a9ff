"""The CLI's spelling of an argument an error names (``MerlinError.argument``).

Below the front ends an error names an argument by its Python (and gateway)
name in backticks: ``"`force` needs a `reason`"``. The CLI's error boundary
spells each as the flag that sets it: ``--force needs a --reason``. Most are
``--`` and the name with ``-`` for ``_``; :data:`FLAGS` holds the others, and
:data:`COMMAND_FLAGS` the few a command spells its own way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

#: an argument name -> how the CLI spells it, where that is not ``--name-with-dashes``
FLAGS = {
    "resources": "--resource",
    "leases": "--lease",
    "labels": "--label",
    "sbatch_args": "--sbatch-arg",
    "command": "the command after --",
    "bundles": "BUNDLE",
    "capability": "CAPABILITY",
    "health": "STATE",
    "secret_env": "--secret-env",
    "runtime": "--env-file",
    "run_id": "RUN_ID",
    "max_retries_failure": "--retries",
    "max_retries_preemption": "--retries-infra",
}
#: a command (its words) -> the arguments it spells its own way
COMMAND_FLAGS: dict[tuple[str, ...], dict[str, str]] = {
    ("ray", "resources"): {"run_id": "--run-id"},
    ("targetgen", "execute"): {"run_id": "--run-id"},
    ("ray", "cluster", "start-local"): {"port": "--gcs-port"},  # the port each opens names it
    ("ray", "cluster", "start"): {"port": "--ssh-port"},
    # `jobs submit` builds a merlin.client JobRequest: its fields' names, spelled as the command's flags
    ("ray", "jobs", "submit"): {"cpu": "--num-cpus", "device": "--num-gpus", "ram": "--memory", "custom": "--resource", "env_vars": "--env"},
}


def flag(name: str, command: Sequence[str] = ()) -> str:
    """``target_dir`` -> ``--target-dir`` (or the spelling :data:`FLAGS` gives, or the
    command's own from :data:`COMMAND_FLAGS`)."""
    own = {**COMMAND_FLAGS.get(tuple(command[:2]), {}), **COMMAND_FLAGS.get(tuple(command[:3]), {})}
    return own.get(name) or FLAGS.get(name) or "--" + name.replace("_", "-")


def speller(argv: Sequence[str]) -> Callable[[str], str]:
    """:func:`flag` for the command ``argv`` runs (its leading words, up to the first option)."""
    words: list[str] = []
    for a in argv:
        if a.startswith("-"):
            break
        words.append(a)
    return lambda name: flag(name, words)
