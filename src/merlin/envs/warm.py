"""The warm path before the launcher: a few lines of ``/bin/sh`` that run the command in a ready env
with no Python in between, and hand everything else to ``python -m merlin.envs.launch``.

``warm_prefix(runtime, cache, ...)`` returns ``["/bin/sh", "-c", SCRIPT, "merlin-env"]`` to put before
the launcher's own command line (or ``[]`` where the warm path does not apply). The script gets the
launcher's argv and the command as its arguments. When the env the submitter's spec names is ready
in the cache, and this node's ``uname -sm`` is the submitter's (the env id names the platform: a
cache shared by nodes of two kinds never hands one the other's env), it

1. marks the env in use: ``envs/<id>/.users/<host>-<pid>`` (host and pid: the pid is the command's,
   which ``exec`` keeps; prune never removes an env with a live mark), written beside and renamed;
2. checks the ready marker again (a prune between the check and the mark: the launcher instead);
3. writes the report (``cache: hit``) the engine reads, when there is one, and says
   ``merlin-env: environment <id> (cache hit)`` on stderr unless quiet (the engine reads it from the
   job's log where no report can be written);
4. sets the env as the launcher does (its ``bin`` first on PATH, ``VIRTUAL_ENV``,
   ``PYTHONNOUSERSITE=1``; ``PYTHONPATH``, ``PYTHONHOME`` unset) and ``exec``s the command.

Otherwise (no ready env, another platform, a mark that cannot be written) it ``exec``s the launcher,
which builds, waits for a build, or finds the env by the node's own env id (a node whose uv differs
from the submitter's names its envs with its own version). The warm path applies to a spec that
needs an env and no working-dir snapshot, in a cache given as an absolute path (``~`` and ``$VARS``
are the launcher's to expand on the node) whose paths need no JSON escaping. Secret values are
never in the script: they travel in the environment, as for the launcher.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SH = "/bin/sh"

SCRIPT = """py=$1 e={env}
[ -f "$e/{ready}" ] || exec "$@"
k=$(uname -snm)
case "$k" in {sysname}" "*" "{machine}) ;; *) exec "$@" ;; esac
s=${{k#* }}; s=${{s% *}}
[ -d "$e/{users}" ] || mkdir -p "$e/{users}" 2>/dev/null || exec "$@"
u="$e/{users}/$s-$$"; t="$e/{users}/.$s-$$.tmp"
printf '{{"host": "%s", "pid": %s, "via": "sh"}}\\n' "$s" "$$" 2>/dev/null > "$t" && mv -f "$t" "$u" || exec "$@"
[ -f "$e/{ready}" ] || {{ rm -f "$u"; exec "$@"; }}
{report}{say}export VIRTUAL_ENV="$e" PYTHONNOUSERSITE=1
PATH="$e/bin${{PATH:+:$PATH}}"; export PATH
unset PYTHONPATH PYTHONHOME MERLIN_SUPERVISOR_COMMAND __PYVENV_LAUNCHER__
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do shift; done
shift
{final}
"""


def plain_json(text: str) -> bool:
    return json.dumps(text) == f'"{text}"'


def warm_prefix(runtime: Mapping[str, Any], cache: str | os.PathLike[str], *, report: str | None, quiet: bool, usage: str | None = None,
                memory: int | None = None) -> list[str]:
    """``[/bin/sh, -c, SCRIPT, merlin-env]`` for this spec and cache, or ``[]`` (see the module).
    ``usage``: the attempt's resource use is measured (``Layout.usage_report``): the prepared command
    is handed to the launcher as a measurer only (``--usage FILE``: it starts the command and waits
    for it, no env work), the launcher's own interpreter the first argument after the script; ``memory``:
    the same, the launcher holding the command to that many bytes (``--memory``)."""
    from merlin.envs.cache import READY, USERS, EnvCache
    from merlin.envs.spec import env_id, needs_build

    text = str(cache)
    if not needs_build(runtime) or runtime.get("working_dir") or not text.startswith("/") or "$" in text:
        return []
    cache_ = EnvCache(Path(text))
    root = cache_.root
    eid = env_id(runtime)
    env = cache_.env_dir(eid)
    if not plain_json(str(env)) or (report is not None and not plain_json(report)):
        return []
    me = os.uname()  # `uname -snm` on the node: "sysname nodename machine", the first and last must be these
    lines = ""
    if report is not None:
        body = json.dumps({"state": "ready", "env_id": eid, "cache": "hit", "cache_dir": str(root)})
        tmp = f"{report}.sh.tmp"
        lines += f"printf '%s\\n' {shlex.quote(body)} 2>/dev/null > {shlex.quote(tmp)} && mv -f {shlex.quote(tmp)} {shlex.quote(report)}\n"
    say = "" if quiet else f"echo {shlex.quote(f'merlin-env: environment {eid} (cache hit)')} >&2\n"
    final = 'exec "$@"'
    if usage is not None or memory is not None:  # the launcher as a measurer only, started by its own interpreter ($py)
        measure = [*(["--usage", usage] if usage is not None else []), *(["--memory", str(int(memory))] if memory is not None else [])]
        final = f'exec "$py" {shlex.join(["-m", "merlin.envs.launch", *measure, "--quiet", "--"])} "$@"'
    script = SCRIPT.format(final=final, env=shlex.quote(str(env)), ready=READY, users=USERS, sysname=shlex.quote(me.sysname), machine=shlex.quote(me.machine), report=lines, say=say)
    return [SH, "-c", script, "merlin-env"]
