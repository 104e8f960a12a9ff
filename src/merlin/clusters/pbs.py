"""Ray on a PBS allocation: ``merlin ray cluster start --kind pbs``.

Same shape as Slurm (see :mod:`merlin.clusters.batch`): merlin's own job
script, submitted with ``qsub``; the head on the first host of the
de-duplicated ``PBS_NODEFILE``, one ``pbsdsh -n INDEX`` task per other host
for a worker (ssh between compute nodes is often blocked); observed with
``qstat -f -F json`` (``-x`` so finished jobs still answer); cancelled with
``qdel``. While queued, the reason is the job's ``comment``.

Tested against a contract double (tests/doubles/pbs/), not a PBS server:
none installs here.
"""

from __future__ import annotations

import json
import re
import shlex
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from merlin.clusters.base import not_taken
from merlin.clusters.batch import BatchClusters, SchedJob
from merlin.errors import BadInput, Blocked

PENDING = set("QHWTSMU")
INSTALL_HINT = "install the PBS client commands (qsub, qstat, qdel, pbsdsh) or use the slurm kind"
_SAFE = re.compile(r"^[A-Za-z0-9_.:,=+/@%\-]+$")
#: OpenPBS Exit_status values (pbs_job_attributes(7B)): killed for walltime, qdel'd (256 + SIGTERM/SIGKILL)
EXIT_WALLTIME = -29
EXIT_DELETED = {271, 265}


def _pbs_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(" ".join(text.split()), "%a %b %d %H:%M:%S %Y").astimezone()
    except ValueError:
        return None


def _walltime(text: str | None) -> timedelta | None:
    if not text:
        return None
    parts = [int(p) for p in str(text).split(":") if p.isdigit()]
    while len(parts) < 3:
        parts.insert(0, 0)
    h, m, s = parts[-3:]
    return timedelta(hours=h, minutes=m, seconds=s)


def exec_hosts(exec_host: str | None) -> list[str]:
    """``n1/0*2+n2/0`` -> ``['n1', 'n2']`` (one entry per host, first-seen order)."""
    out: list[str] = []
    for chunk in (exec_host or "").split("+"):
        host = chunk.split("/")[0].strip()
        if host and host not in out:
            out.append(host)
    return out


def parse_qstat_json(data: dict[str, Any]) -> dict[str, SchedJob]:
    """``qstat -f -F json [-x]`` -> job id -> :class:`SchedJob`."""
    out = {}
    for jid, j in (data.get("Jobs") or {}).items():
        state = str(j.get("job_state") or "U")
        exit_status = j.get("Exit_status")
        comment = str(j.get("comment") or "")
        phase = "pending" if state in PENDING else "running" if state == "R" else "ending" if state == "E" else "ended"
        end = None
        if phase == "running":
            start = _pbs_time(j.get("stime"))
            wall = _walltime((j.get("Resource_List") or {}).get("walltime"))
            end = start + wall if start and wall else None
        out[jid] = SchedJob(
            job_id=jid,
            state=state,
            phase=phase,
            reason=comment if phase == "pending" else "",
            nodes=exec_hosts(j.get("exec_host")),
            end_time=end,
            walltime_hit=exit_status == EXIT_WALLTIME or "walltime" in comment.lower() and phase == "ended",
            cancelled=exit_status in EXIT_DELETED or "deleted" in comment.lower(),
        )
    return out


def render_qsub(*, name: str, nodes: int, state_dir: Path, node_cmd: list[str], options: dict[str, Any]) -> str:
    directives = [f"-N merlin-{name}", f"-l select={options['select']}", "-l place=scatter", "-j oe", f"-o {state_dir}/job.out"]
    if options.get("walltime"):
        directives.append(f"-l walltime={options['walltime']}")
    if options.get("queue"):
        directives.append(f"-q {options['queue']}")
    if options.get("account"):
        directives.append(f"-A {options['account']}")
    node = " ".join(shlex.quote(a) for a in node_cmd + ["--cancel", "qdel"])
    return "\n".join(
        [
            "#!/bin/bash",
            f"# Ray cluster '{name}' written by merlin (kept in its state dir; see docs/clusters.md).",
            *[f"#PBS {d}" for d in directives],
            "set -u",
            "unset RAY_ADDRESS RAY_AUTH_TOKEN",
            "# PBS_NODEFILE has one line per chunk: hosts repeat. First occurrence of each host and its index:",
            "mapfile -t HOSTS < <(awk '!seen[$0]++' \"$PBS_NODEFILE\")",
            "mapfile -t IDX < <(awk '!seen[$0]++ {print NR-1}' \"$PBS_NODEFILE\")",
            f"NODE=({node} --job-id \"$PBS_JOBID\")",
            '"${NODE[@]}" head --index 0 --node "${HOSTS[0]}" &',
            'for ((i = 1; i < ${#HOSTS[@]}; i++)); do',
            '  pbsdsh -n "${IDX[$i]}" -- "${NODE[@]}" worker --index "$i" --node "${HOSTS[$i]}" &',
            "done",
            "wait",
            "",
        ]
    )


class PbsBackend(BatchClusters):
    """``--kind pbs``."""

    kind = "pbs"
    install_hint = INSTALL_HINT
    scheduler = "PBS"
    cancel_word = "qdel"

    def parse_options(self, options: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        select = str(options.pop("select", None) or "1:ncpus=1")
        if not _SAFE.match(select):
            raise BadInput(f"`select` {select!r}: expected chunks such as 2:ncpus=4:ngpus=1", argument="select")
        head = select.split(":")[0]
        nodes = int(head) if head.isdigit() else 1
        if nodes < 1:
            raise BadInput(f"`select` {select}: expected at least 1 chunk", argument="select")
        opts: dict[str, Any] = {"select": select, "object_store_memory": options.pop("object_store_memory", None)}
        for key in ("walltime", "queue", "account"):
            value = options.pop(key, None)
            if value not in (None, ""):
                if not _SAFE.match(str(value)):
                    raise BadInput(f"`{key}` {value!r}: use letters, digits and : , = + / @ % - _ . only", argument=key)
                opts[key] = str(value)
        options.pop("idle_timeout", None)
        if options:
            raise not_taken("pbs", options)
        return nodes, opts

    def render_script(self, **kwargs: Any) -> str:
        return render_qsub(**kwargs)

    def submit_script(self, script: Path, state_dir: Path) -> str:
        res = self._run(["qsub", str(script)], cwd=str(state_dir))
        if res.returncode != 0:
            first = (res.stderr.strip().splitlines() or ["(no message)"])[-1]
            raise BadInput(f"qsub refused the job: {first} (script: {script})")
        return res.stdout.strip()

    def query(self, job_id: str) -> SchedJob | None:
        res = self._run(["qstat", "-f", "-F", "json", "-x", job_id])
        if res.returncode != 0:
            if "unknown job id" in res.stderr.lower():
                return None
            raise Blocked(f"qstat failed: {res.stderr.strip() or res.returncode}")
        try:
            return parse_qstat_json(json.loads(res.stdout)).get(job_id)
        except ValueError:
            raise Blocked(f"qstat -F json printed no JSON: {res.stdout[:120]!r}") from None

    def hold_conditions(self, record: Any, observed_at: str) -> list[dict[str, Any]]:
        """``jobs why``'s scheduler layer: a queued allocation and PBS's ``comment`` (free text)."""
        from merlin.clusters.why import scheduler_queued

        hint = "wait, or stop it and start it with a smaller select or another queue"
        return scheduler_queued(record, observed_at, self.scheduler, hint, ["qstat", "-f", str(record.scheduler_job_id)])

    def cancel(self, job_id: str) -> None:
        res = self._run(["qdel", job_id])
        if res.returncode != 0 and "unknown job id" not in res.stderr.lower() and "finished" not in res.stderr.lower():
            raise Blocked(f"qdel {job_id} failed: {res.stderr.strip()}")


